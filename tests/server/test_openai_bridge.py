"""OpenAI chat requests through the one bridge, against the real CLI and the recording upstream."""
import base64
import json

import pytest

from claude_nb.protocol.errors import AnthropicError
from claude_nb.protocol.openai import openai_error, translate_chat_request
from server_ext.handlers.openai import chat_chunks, chat_completion
from tests.support.fake_upstream import Reply

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def chat(**body):
    body.setdefault("model", "sonnet")
    return translate_chat_request(body)


async def test_completion_system_prompt_and_usage(bridge, upstream):
    runs = []
    bridge.run_listeners.append(runs.append)
    out = await chat_completion(bridge, chat(
        max_tokens=64, messages=[{"role": "developer", "content": "Answer in one word."},
                                 {"role": "user", "content": "hello there"}]))
    assert out["object"] == "chat.completion"
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "You said: hello there",
                                            "refusal": None, "annotations": []}
    assert out["choices"][0]["finish_reason"] == "stop"
    sent = upstream.message_requests[-1]
    assert "Answer in one word." in sent.system_text()
    assert sent.user_texts() == ["hello there"]
    assert sent.body["max_tokens"] == 64
    # usage is the run's own, the same figures the usage ledger records
    assert out["usage"]["completion_tokens"] == runs[0].usage["output_tokens"]
    assert out["usage"]["prompt_tokens"] == (runs[0].usage["input_tokens"]
                                             + runs[0].usage["cache_read_input_tokens"]
                                             + runs[0].usage["cache_creation_input_tokens"])
    assert runs[0].status == "succeeded"


async def test_stream_with_usage_chunk(bridge, upstream):
    upstream.push(Reply.text("streamed in small pieces", output_tokens=7))
    request = chat(stream=True, stream_options={"include_usage": True},
                   messages=[{"role": "user", "content": "go"}])
    chunks = [c async for c in chat_chunks(bridge, request)]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "streamed in small pieces"
    assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")) > 2
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "stop" and finishes.count("stop") == 1
    last = chunks[-1]
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 7
    assert all(c["usage"] is None for c in chunks[:-1])
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")


async def test_tool_call_round_trip(bridge, upstream):
    upstream.push(Reply.tool_use("mcp__client__get_weather", {"city": "Paris"}, text="Checking."))
    first = await chat_completion(bridge, chat(
        tools=[WEATHER], tool_choice="required",
        messages=[{"role": "user", "content": "Weather in Paris?"}]))
    sent = upstream.message_requests[-1]
    assert "mcp__client__get_weather" in [t["name"] for t in sent.body.get("tools", [])]
    assert "calling one of the available tools" in sent.system_text()      # required -> any
    choice = first["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Checking."
    [call] = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


# Known core bug (bridge/transcript.py, not this module): on `--resume` the CLI 2.1.197 drops an
# assistant turn whose tool_use has no tool_result inside the transcript, and then the stdin
# tool_result has nothing to answer ("No response requested." / "(no content)" reach upstream).
async def test_tool_result_follow_up_reaches_upstream(bridge, upstream):
    call = {"id": "toolu_fake1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    upstream.push(Reply.text("It is 18C in Paris."))
    second = await chat_completion(bridge, chat(tools=[WEATHER], messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "18C and sunny"}]))
    assert second["choices"][0]["message"]["content"] == "It is 18C in Paris."
    sent = upstream.message_requests[-1]
    roles = [m["role"] for m in sent.conversation()]
    assert roles[:3] == ["user", "assistant", "user"]
    tool_use = [b for b in sent.conversation()[1]["content"] if b.get("type") == "tool_use"]
    assert tool_use[0]["id"] == call["id"] and tool_use[0]["input"] == {"city": "Paris"}
    results = [b for m in sent.conversation() if m["role"] == "user" and isinstance(m["content"], list)
               for b in m["content"] if b.get("type") == "tool_result"]
    assert results[0]["tool_use_id"] == call["id"]
    assert "18C and sunny" in json.dumps(results[0]["content"])


async def test_tool_call_streams_as_delta_tool_calls(bridge, upstream):
    upstream.push(Reply.tool_use("mcp__client__get_weather", {"city": "Oslo", "unit": "celsius"}))
    chunks = [c async for c in chat_chunks(bridge, chat(
        stream=True, tools=[WEATHER], messages=[{"role": "user", "content": "Oslo?"}]))]
    calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert calls[0]["id"] and calls[0]["function"]["name"] == "get_weather" and calls[0]["index"] == 0
    arguments = "".join(tc["function"].get("arguments") or "" for tc in calls)
    assert json.loads(arguments) == {"city": "Oslo", "unit": "celsius"}
    assert len(calls) > 2            # the arguments arrive in pieces, as they stream
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_json_schema_response_format(bridge, upstream):
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    upstream.push(Reply.tool_use("StructuredOutput", {"answer": 42}))
    out = await chat_completion(bridge, chat(
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
        messages=[{"role": "user", "content": "6 times 7?"}]))
    assert json.loads(out["choices"][0]["message"]["content"]) == {"answer": 42}
    assert out["choices"][0]["finish_reason"] == "stop"
    assert "tool_calls" not in out["choices"][0]["message"]
    sent = upstream.message_requests[-1]
    structured = [t for t in sent.client_tools() if t["name"] == "StructuredOutput"]
    assert structured and structured[0]["input_schema"]["properties"] == schema["properties"]


async def test_json_object_instructs_json(bridge, upstream):
    upstream.push(Reply.text('{"ok": true}'))
    out = await chat_completion(bridge, chat(response_format={"type": "json_object"},
                                             messages=[{"role": "user", "content": "status as json"}]))
    assert json.loads(out["choices"][0]["message"]["content"]) == {"ok": True}
    assert "valid JSON object" in upstream.message_requests[-1].system_text()


async def test_images_reach_upstream(bridge, upstream):
    await chat_completion(bridge, chat(messages=[{"role": "user", "content": [
        {"type": "text", "text": "Describe both."},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}]))
    sent = upstream.message_requests[-1]
    images = [b for m in sent.conversation() if m["role"] == "user" and isinstance(m["content"], list)
              for b in m["content"] if b.get("type") == "image"]
    assert {"type": "base64", "media_type": "image/png", "data": PNG} in [i["source"] for i in images]
    assert {"type": "url", "url": "https://example.com/cat.jpg"} in [i["source"] for i in images]


async def test_stop_and_length_finish_reasons(bridge, upstream):
    upstream.push(Reply.text("alpha beta STOP gamma"))
    out = await chat_completion(bridge, chat(stop=["STOP"], messages=[{"role": "user", "content": "x"}]))
    assert out["choices"][0]["message"]["content"] == "alpha beta "
    assert out["choices"][0]["finish_reason"] == "stop"

    upstream.push(Reply.text("cut short", stop_reason="max_tokens"))
    out = await chat_completion(bridge, chat(max_completion_tokens=5,
                                             messages=[{"role": "user", "content": "x"}]))
    assert out["choices"][0]["finish_reason"] == "length"
    assert upstream.message_requests[-1].body["max_tokens"] == 5


async def test_upstream_errors_keep_their_status_in_openai_shape(bridge, upstream):
    upstream.push(Reply.error(429, "rate_limit_error", "slow down"))
    with pytest.raises(AnthropicError) as info:
        await chat_completion(bridge, chat(messages=[{"role": "user", "content": "x"}]))
    status, body = openai_error(info.value)
    assert status == 429
    assert body["error"]["type"] == "rate_limit_error" and body["error"]["code"] == "rate_limit_exceeded"
    assert "slow down" in body["error"]["message"]


async def test_prefill_is_refused_clearly(bridge, upstream):
    request = chat(messages=[{"role": "user", "content": "x"}, {"role": "assistant", "content": "Sure:"}])
    with pytest.raises(AnthropicError) as info:
        await chat_completion(bridge, request)
    status, body = openai_error(info.value)
    assert status == 400 and "last message" in body["error"]["message"]
    assert upstream.message_requests == []
