"""LangChain's ChatAnthropic pointed at the Jupyter server, against the real CLI: what a
LangChain user relies on (answers, streaming, tool calls and their round trip, structured
output)."""
from __future__ import annotations

import pytest
from pydantic import BaseModel

from tests.support.fake_upstream import Reply

langchain_anthropic = pytest.importorskip("langchain_anthropic")
from langchain_core.messages import HumanMessage, ToolMessage  # noqa: E402
from langchain_core.tools import tool  # noqa: E402


@tool
def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    return f"sunny in {city}"


class Planet(BaseModel):
    name: str
    moons: int


@pytest.fixture
def llm(sdk_base, token, cli_env):
    return langchain_anthropic.ChatAnthropic(model="claude-sonnet-4-6", base_url=sdk_base.rstrip("/"),
                                             api_key=token, max_retries=0, max_tokens=256,
                                             temperature=0.2)


async def test_invoke_and_stream(llm, upstream):
    reply = await llm.ainvoke("hello from langchain")
    assert reply.content == "You said: hello from langchain"
    assert reply.usage_metadata["output_tokens"] > 0
    upstream.push(Reply.text("one two three four five six"))
    pieces = [chunk.content async for chunk in llm.astream("count")]
    text = "".join(p if isinstance(p, str) else "".join(b.get("text", "") for b in p) for p in pieces)
    assert text == "one two three four five six" and len([p for p in pieces if p]) >= 2


async def test_tool_call_round_trip(llm, upstream):
    with_tools = llm.bind_tools([get_weather])
    upstream.push(Reply.tool_use("mcp__client__get_weather", {"city": "Paris"}))
    question = HumanMessage("What is the weather in Paris?")
    call = await with_tools.ainvoke([question])
    assert [(c["name"], c["args"]) for c in call.tool_calls] == [("get_weather", {"city": "Paris"})]
    result = ToolMessage(get_weather.invoke(call.tool_calls[0]["args"]),
                         tool_call_id=call.tool_calls[0]["id"])
    upstream.push(Reply.text("It is sunny in Paris."))
    final = await with_tools.ainvoke([question, call, result])
    assert final.content == "It is sunny in Paris."
    sent = upstream.message_requests[-1]
    tool_results = [b for m in sent.conversation() if m["role"] == "user" and isinstance(m["content"], list)
                    for b in m["content"] if b.get("type") == "tool_result"]
    assert len(tool_results) == 1 and "sunny in Paris" in str(tool_results[0]["content"])


async def test_structured_output(llm, upstream):
    upstream.push(Reply.tool_use("mcp__client__Planet", {"name": "Mars", "moons": 2}))
    planet = await llm.with_structured_output(Planet).ainvoke("Facts about Mars")
    assert planet == Planet(name="Mars", moons=2)
    assert [t["name"] for t in upstream.message_requests[-1].client_tools()] == ["mcp__client__Planet"]
