"""The OpenAI route, plan quota and metrics, served by Jupyter: the official `openai` SDK
pointed at {server}/v1 with the Jupyter token as its key, the real CLI behind it."""
import asyncio
import base64
import json

import openai
import pytest
from pydantic import BaseModel
from tornado.httpclient import HTTPClientError

from tests.support.fake_upstream import Reply

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture
def client(sdk_base, token):
    # Async: the server runs on this test's event loop; a blocking client would stall it.
    return openai.AsyncOpenAI(base_url=sdk_base + "v1", api_key=token, max_retries=0)



async def test_create(client, cli_env, upstream):
    raw = await client.chat.completions.with_raw_response.create(
        model="sonnet", max_tokens=64, temperature=0.2, seed=1,
        messages=[{"role": "system", "content": "Answer briefly."},
                  {"role": "user", "content": "hello from openai"}])
    completion = raw.parse()
    assert completion.choices[0].message.content == "You said: hello from openai"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model.startswith("claude-")
    assert completion.usage.completion_tokens == 12 and completion.usage.total_tokens > 12
    assert raw.headers["claude-nb-ignored"] == "temperature,seed"
    assert completion._request_id == raw.headers["request-id"] and completion._request_id.startswith("req_")
    sent = upstream.message_requests[-1]
    assert "Answer briefly." in sent.system_text() and sent.body["max_tokens"] == 64


async def test_stream_with_usage(client, cli_env, upstream):
    upstream.push(Reply.text("one two three four five", output_tokens=5))
    stream = await client.chat.completions.create(
        model="sonnet", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "count"}])
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four five"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5


async def test_stream_ends_with_done_and_a_clean_finish(jp_fetch, claude_app, cli_env, upstream, caplog):
    # OpenAI's stream ends with `data: [DONE]`; clients that wait for it must get it.
    resp = await jp_fetch("v1", "chat", "completions", method="POST", body=json.dumps(
        {"model": "sonnet", "stream": True, "messages": [{"role": "user", "content": "hi"}]}))
    assert resp.code == 200
    assert resp.body.endswith(b"data: [DONE]\n\n")
    # (a client of an earlier test, collected now, may complain that its own loop is closed:
    # that is not this server's)
    assert not [r for r in caplog.records if (r.exc_info or "Uncaught exception" in r.getMessage())
                and "Event loop is closed" not in r.getMessage()]


async def test_tool_call(client, cli_env, upstream):
    upstream.push(Reply.tool_use("mcp__client__get_weather", {"city": "Paris"}))
    completion = await client.chat.completions.create(
        model="sonnet", tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}},
        messages=[{"role": "user", "content": "Weather in Paris?"}])
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    assert "get_weather" in upstream.message_requests[-1].system_text()   # the forced tool is named


async def test_tool_call_stream_accumulates_in_the_sdk(client, cli_env, upstream):
    upstream.push(Reply.tool_use("mcp__client__get_weather", {"city": "Oslo"}))
    async with client.chat.completions.stream(
            model="sonnet", tools=[WEATHER], messages=[{"role": "user", "content": "Oslo?"}]) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Oslo"}
    assert final.choices[0].finish_reason == "tool_calls"


async def test_tool_result_round_trip(client, cli_env, upstream):
    upstream.push(Reply.tool_use("mcp__client__get_weather", {"city": "Paris"}),
                  Reply.text("18C in Paris."))
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    first = await client.chat.completions.create(model="sonnet", tools=[WEATHER], messages=messages)
    call = first.choices[0].message.tool_calls[0]
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "18C"}]
    second = await client.chat.completions.create(model="sonnet", tools=[WEATHER], messages=messages)
    assert second.choices[0].message.content == "18C in Paris."
    sent = upstream.message_requests[-1]
    assert any(b.get("type") == "tool_result" and b["tool_use_id"] == call.id
               for m in sent.conversation() if isinstance(m["content"], list) for b in m["content"])


class Answer(BaseModel):
    answer: int
    unit: str


async def test_json_schema_parse(client, cli_env, upstream):
    upstream.push(Reply.tool_use("StructuredOutput", {"answer": 42, "unit": "apples"}))
    completion = await client.chat.completions.parse(
        model="sonnet", response_format=Answer, messages=[{"role": "user", "content": "6*7 apples?"}])
    assert completion.choices[0].message.parsed == Answer(answer=42, unit="apples")
    tools = {t["name"]: t for t in upstream.message_requests[-1].client_tools()}
    assert set(tools["StructuredOutput"]["input_schema"]["properties"]) == {"answer", "unit"}


async def test_image(client, cli_env, upstream):
    await client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}])
    sent = upstream.message_requests[-1]
    images = [b["source"] for m in sent.conversation() if isinstance(m["content"], list)
              for b in m["content"] if b.get("type") == "image"]
    assert images == [{"type": "base64", "media_type": "image/png", "data": PNG}]


async def test_models_list(client, cli_env):
    models = [m async for m in client.models.list()]
    ids = [m.id for m in models]
    assert "claude-sonnet-5" in ids and all(m.object == "model" and m.owned_by == "anthropic" for m in models)
    one = await client.models.retrieve("claude-sonnet-5")
    assert one.id == "claude-sonnet-5" and one.created > 0


# -- errors, in OpenAI's shape ----------------------------------------------------------------

async def test_bad_requests_name_the_param(client, cli_env, upstream):
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="sonnet", n=2, messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 400
    assert info.value.body["param"] == "n" and info.value.body["type"] == "invalid_request_error"
    assert info.value.request_id.startswith("req_")
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="sonnet", logprobs=True,
                                             messages=[{"role": "user", "content": "x"}])
    assert info.value.body["param"] == "logprobs"
    with pytest.raises(openai.NotFoundError) as info:
        await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert info.value.body["code"] == "model_not_found"
    assert upstream.message_requests == []


async def test_raw_error_shapes(jp_fetch, claude_app, cli_env, upstream):
    for raw, status, param in ((b"{oops", 400, None),
                               (json.dumps({"model": "sonnet"}).encode(), 400, "messages")):
        try:
            resp = await jp_fetch("v1", "chat", "completions", method="POST", body=raw)
        except HTTPClientError as err:
            resp = err.response
        body = json.loads(resp.body)
        assert resp.code == status and set(body) == {"error"}
        assert set(body["error"]) == {"message", "type", "param", "code"} and body["error"]["param"] == param


async def test_wrong_key_is_401_in_openai_shape(sdk_base, cli_env):
    bad = openai.AsyncOpenAI(base_url=sdk_base + "v1", api_key="not-the-token", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        await bad.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "x"}])
    assert info.value.body["type"] == "authentication_error"


async def test_upstream_rate_limit_is_429(client, cli_env, upstream):
    upstream.push(Reply.error(429, "rate_limit_error", "slow down"))
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "x"}])
    assert info.value.body["code"] == "rate_limit_exceeded"
    # streamed: the failure comes before the first chunk, so it is still a plain HTTP 429
    upstream.push(Reply.error(429, "rate_limit_error", "slow down"))
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model="sonnet", stream=True,
                                             messages=[{"role": "user", "content": "x"}])


async def test_error_after_the_stream_began(client, cli_env, upstream):
    upstream.push(Reply.text("this answer is cut in the middle of it", drop_after_chars=12))
    stream = await client.chat.completions.create(model="sonnet", stream=True,
                                                  messages=[{"role": "user", "content": "x"}])
    received = []
    with pytest.raises(openai.APIError) as info:
        async for chunk in stream:
            received.append(chunk)
    # the chunks already sent stay sent; then the SDK raises on the error event instead of
    # handing back a truncated answer as if it were whole
    text = "".join(c.choices[0].delta.content or "" for c in received if c.choices)
    assert received and "this answer is cut in the middle of it".startswith(text)
    assert text != "this answer is cut in the middle of it"
    assert info.value.body["type"] == "server_error" and info.value.body["message"]


async def test_client_leaving_a_stream_ends_the_cli(client, claude_app, cli_env, upstream):
    upstream.push(Reply.text("word " * 400, delay_per_chunk=0.05))
    bridge = claude_app.bridge
    stream = await client.chat.completions.create(model="sonnet", stream=True,
                                                  messages=[{"role": "user", "content": "talk"}])
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    procs = list(bridge.live)
    assert len(procs) == 1
    await stream.close()           # the client hangs up mid-answer
    for _ in range(200):           # wait for the state, not for a time
        if not bridge.live and not procs[0].alive:
            break
        await asyncio.sleep(0.05)
    assert not bridge.live and not procs[0].alive
