"""Message threads (beta `message-threads-2026-08-12`) through the official SDK, the real CLI
and the recording upstream.

What a user relies on: `client.beta.messages.thread(...)` and the SDK's `tool_runner` work as
against the API; a continue answers with the whole conversation as context (upstream receives
every turn and the thread's system prompt), on the CLI process the thread kept when it has
one; a thread the server no longer holds costs nothing but a replay, which the SDK does by
itself; and each thread error has the shape the SDK recovers from.
"""
import asyncio
import json

import anthropic
import pytest
from anthropic import beta_tool

from fake_upstream import Reply
from helpers import post

SYSTEM = "You are a terse assistant for thread tests."


def sdk(sdk_base, token, **kw):
    return anthropic.AsyncAnthropic(base_url=sdk_base, api_key=token, max_retries=0, **kw)


def pool_of(claude_app):
    return claude_app.bridge.pool


async def wait_until(condition, timeout=30.0, what="condition"):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.05)


# -- through the SDK ------------------------------------------------------------------------
async def test_thread_send_twice_continues_on_the_kept_process(cli_env, upstream, sdk_base, token,
                                                               claude_app):
    client = sdk(sdk_base, token)
    thread = client.beta.messages.thread(model="sonnet", max_tokens=64, system=SYSTEM)
    first = await thread.send({"role": "user", "content": "remember the number 42"})
    assert first.content[0].text == "You said: remember the number 42"
    assert thread.previous_message_id == first.id
    second = await thread.send({"role": "user", "content": "which number?"})
    assert second.content[0].text == "You said: which number?"
    assert second.id != first.id and thread.previous_message_id == second.id

    # The continue carried only the new turn; upstream still got every turn and the system.
    last = upstream.message_requests[-1]
    assert last.user_texts() == ["remember the number 42", "which number?"]
    assistant = [m for m in last.messages if m["role"] == "assistant"]
    assert [b["text"] for m in assistant for b in m["content"] if b.get("type") == "text"] == \
        ["You said: remember the number 42"]
    assert SYSTEM in last.system_text()
    # ... answered by the process the first turn left: one line on its stdin.
    assert pool_of(claude_app).counts["session_hits"] == 1
    assert claude_app.threads.counts == {"created": 1, "continued": 1, "dropped": 0}


async def test_thread_stream_twice(cli_env, upstream, sdk_base, token, claude_app):
    client = sdk(sdk_base, token)
    thread = client.beta.messages.thread(model="sonnet", max_tokens=64, system=SYSTEM)
    texts = []
    for prompt in ("first streamed turn", "second streamed turn"):
        async with thread.stream({"role": "user", "content": prompt}) as stream:
            pieces = [piece async for piece in stream.text_stream]
            message = await stream.get_final_message()
        texts.append("".join(pieces))
        assert message.content[0].text == texts[-1]
        assert thread.previous_message_id == message.id
    assert texts == ["You said: first streamed turn", "You said: second streamed turn"]
    last = upstream.message_requests[-1]
    assert last.user_texts() == ["first streamed turn", "second streamed turn"]
    assert SYSTEM in last.system_text()
    assert pool_of(claude_app).counts["session_hits"] == 1


async def test_tool_runner_threads_by_default(cli_env, upstream, sdk_base, token, claude_app):
    calls = []

    @beta_tool
    def get_weather(city: str) -> str:
        """The weather in a city.

        Args:
            city: the city's name
        """
        calls.append(city)
        return f"sunny in {city}"

    upstream.push(Reply.tool_use("mcp__client__get_weather", {"city": "Paris"}),
                  Reply.text("It is sunny in Paris."))
    sent = []

    def run():
        client = anthropic.Anthropic(base_url=sdk_base, api_key=token, max_retries=0)
        client._client.event_hooks["request"].append(
            lambda request: sent.append(json.loads(request.content)))
        runner = client.beta.messages.tool_runner(
            model="sonnet", max_tokens=256, system=SYSTEM, tools=[get_weather],
            messages=[{"role": "user", "content": "What is the weather in Paris?"}])
        return list(runner)
    messages = await asyncio.to_thread(run)     # the sync SDK, off the server's loop

    assert calls == ["Paris"]
    assert messages[0].stop_reason == "tool_use" and messages[-1].content[0].text == "It is sunny in Paris."
    # Threaded: a create with the whole conversation, then a continue with the tool result only.
    assert [s["thread"]["type"] for s in sent] == ["create", "continue"]
    assert sent[1]["thread"]["previous_message_id"] == messages[0].id
    assert "system" not in sent[1] and "tools" not in sent[1]
    assert [m["content"][0]["type"] for m in sent[1]["messages"]] == ["tool_result"]
    # Upstream got the question, the call and its result, with the thread's tools and system.
    last = upstream.message_requests[-1]
    kinds = [b.get("type") for m in last.messages if isinstance(m["content"], list)
             for b in m["content"]]
    assert "tool_use" in kinds and "tool_result" in kinds
    assert "What is the weather in Paris?" in last.user_texts()
    assert any(t.get("name") == "mcp__client__get_weather" for t in last.body.get("tools", []))
    assert SYSTEM in last.system_text()
