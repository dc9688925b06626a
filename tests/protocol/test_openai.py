"""The OpenAI chat translation, both ways, as pure functions (no CLI)."""
import base64
import json

import pytest

from claude_nb.protocol.errors import AnthropicError, ApiFailure, Overloaded, RateLimited
from claude_nb.protocol.models import DEFAULT_MAX_TOKENS
from claude_nb.protocol.openai import (JSON_OBJECT_INSTRUCTION, ChatChunkTranslator,
                                       ChatRequestError, completion_from_message, openai_error,
                                       translate_chat_request, usage_from_anthropic)

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake-png-bytes").decode()


def translate(**body):
    body.setdefault("model", "sonnet")
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return translate_chat_request(body)


def refused(**body) -> ChatRequestError:
    with pytest.raises(AnthropicError) as info:
        translate(**body)
    return info.value


# -- messages ---------------------------------------------------------------------------------

def test_system_and_developer_join_the_system_prompt_in_order():
    chat = translate(messages=[{"role": "system", "content": "Be brief."},
                               {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
                               {"role": "user", "content": "hi"}])
    assert chat.messages_body["system"] == "Be brief.\n\nUse French."
    assert chat.messages_body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


def test_defaults_and_max_tokens_names():
    assert translate().messages_body["max_tokens"] == DEFAULT_MAX_TOKENS
    assert translate(max_tokens=77).messages_body["max_tokens"] == 77
    # the newer name wins when a client sends both
    assert translate(max_tokens=77, max_completion_tokens=99).messages_body["max_tokens"] == 99
    err = refused(max_completion_tokens=0)
    assert err.status == 400 and err.param == "max_completion_tokens"
    assert refused(max_tokens="12").param == "max_tokens"


def test_assistant_tool_calls_and_tool_results_round_trip_as_blocks():
    chat = translate(
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}}}}],
        messages=[
            {"role": "user", "content": "Weather in Paris and Oslo?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
                {"id": "call_2", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "4C"}]},
            {"role": "user", "content": "Which is warmer?"},
        ])
    turns = chat.messages_body["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Oslo"}}]
    # consecutive tool messages and the next user message merge into one user turn, results first
    assert turns[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
        {"type": "tool_result", "tool_use_id": "call_2", "content": "4C"},
        {"type": "text", "text": "Which is warmer?"}]
    assert chat.messages_body["tools"] == [{"name": "get_weather", "input_schema": {
        "type": "object", "properties": {"city": {"type": "string"}}}}]


def test_tool_message_must_answer_a_pending_call():
    err = refused(messages=[{"role": "user", "content": "x"},
                            {"role": "tool", "tool_call_id": "call_9", "content": "r"}])
    assert err.status == 400 and err.param == "messages[1].role"
    err = refused(messages=[
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                                              "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "user", "content": "never answered"}])
    assert err.param == "messages[1].tool_calls" and "call_1" in err.message


def test_tool_call_arguments_must_be_a_json_object():
    err = refused(messages=[
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                                              "function": {"name": "f", "arguments": "{nope"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "r"}])
    assert err.param == "messages[1].tool_calls[0].function.arguments"


def test_foreign_tool_ids_are_mapped_the_same_way_on_both_sides():
    chat = translate(messages=[
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "call:a.b", "type": "function",
                                              "function": {"name": "f", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "call:a.b", "content": "r"}])
    turns = chat.messages_body["messages"]
    assert turns[1]["content"][0]["id"] == turns[2]["content"][0]["tool_use_id"] == "call_a_b"
    assert turns[1]["content"][0]["input"] == {}


def test_images_from_data_urls_and_http_urls():
    chat = translate(messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}])
    blocks = chat.messages_body["messages"][0]["content"]
    assert blocks[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    assert blocks[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}


@pytest.mark.parametrize("url, code", [
    ("data:image/bmp;base64," + PNG, "invalid_image_format"),
    ("data:image/png," + PNG, "invalid_image_url"),
    ("data:image/png;base64,###", "invalid_image_url"),
    ("file:///etc/passwd", "invalid_image_url"),
])
def test_bad_images_name_the_part(url, code):
    err = refused(messages=[{"role": "user", "content": [
        {"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": url}}]}])
    assert err.status == 400 and err.param == "messages[0].content[1].image_url.url" and err.code == code


def test_pdf_and_text_files_become_documents():
    pdf = base64.b64encode(b"%PDF-1.4 fake").decode()
    text = base64.b64encode("a,b\n1,2\n".encode()).decode()
    chat = translate(messages=[{"role": "user", "content": [
        {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{pdf}", "filename": "r.pdf"}},
        {"type": "file", "file": {"file_data": f"data:text/csv;base64,{text}", "filename": "t.csv"}},
        {"type": "file", "file": {"file_id": "file_abc"}},
        {"type": "text", "text": "summarise"}]}])
    blocks = chat.messages_body["messages"][0]["content"]
    assert blocks[0] == {"type": "document", "title": "r.pdf",
                         "source": {"type": "base64", "media_type": "application/pdf", "data": pdf}}
    assert blocks[1]["source"] == {"type": "text", "media_type": "text/plain", "data": "a,b\n1,2\n"}
    assert blocks[2] == {"type": "document", "source": {"type": "file", "file_id": "file_abc"}}


def test_audio_input_is_refused_by_name():
    err = refused(messages=[{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}])
    assert err.param == "messages[0].content[0].type" and "audio" in err.message


def test_empty_assistant_turns_are_dropped_and_prefill_is_left_to_the_bridge():
    chat = translate(messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": ""},
                               {"role": "user", "content": "b"}])
    assert [t["role"] for t in chat.messages_body["messages"]] == ["user"]
    assert [b["text"] for b in chat.messages_body["messages"][0]["content"]] == ["a", "b"]


def test_roles_and_shapes_are_checked():
    assert refused(messages=[]).param == "messages"
    assert refused(messages=[{"role": "robot", "content": "x"}]).param == "messages[0].role"
    assert refused(messages=[{"role": "function", "name": "f", "content": "x"}]).param == "messages[0].role"
    assert refused(messages=[{"role": "system", "content": "only a system prompt"}]).param == "messages"
    assert refused(messages=[{"role": "user"}]).param == "messages[0].content"


# -- parameters -------------------------------------------------------------------------------

def test_stop_becomes_stop_sequences():
    assert translate(stop="END").messages_body["stop_sequences"] == ["END"]
    assert translate(stop=["a", "b"]).messages_body["stop_sequences"] == ["a", "b"]
    assert "stop_sequences" not in translate(stop=None).messages_body
    assert refused(stop=["1", "2", "3", "4", "5"]).param == "stop"
    assert refused(stop=[1]).param == "stop"


def test_stream_options():
    chat = translate(stream=True, stream_options={"include_usage": True})
    assert chat.stream and chat.include_usage
    assert not translate(stream=True).include_usage
    assert refused(stream_options={"include_usage": True}).param == "stream_options"


@pytest.mark.parametrize("choice, expected", [
    ("auto", {"type": "auto"}),
    ("none", {"type": "none"}),
    ("required", {"type": "any"}),
    ({"type": "function", "function": {"name": "lookup"}}, {"type": "tool", "name": "lookup"}),
])
def test_tool_choice_mapping(choice, expected):
    tools = [{"type": "function", "function": {"name": "lookup", "description": "Look up a word"}}]
    body = translate(tools=tools, tool_choice=choice).messages_body
    assert body["tool_choice"] == expected
    assert body["tools"] == [{"name": "lookup", "description": "Look up a word",
                              "input_schema": {"type": "object", "properties": {}}}]


def test_parallel_tool_calls_false_disables_parallel_use():
    tools = [{"type": "function", "function": {"name": "lookup"}}]
    assert translate(tools=tools, parallel_tool_calls=False).messages_body["tool_choice"] == {
        "type": "auto", "disable_parallel_tool_use": True}
    assert translate(tools=tools, tool_choice="required", parallel_tool_calls=False
                     ).messages_body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_tool_errors_name_the_field():
    tools = [{"type": "function", "function": {"name": "lookup"}}]
    assert refused(tools=tools, tool_choice={"type": "function", "function": {"name": "other"}}
                   ).param == "tool_choice.function.name"
    assert refused(tool_choice="required").param == "tool_choice"
    assert refused(tools=[{"type": "web_search"}]).param == "tools[0].type"
    assert refused(tools=[{"type": "function", "function": {"name": "bad name"}}]).param == "tools[0].function.name"
    assert refused(tools=tools + tools).param == "tools[1].function.name"
    assert refused(tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}]
                   ).param == "tools[0].function.parameters.type"


def test_response_format():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    body = translate(response_format={"type": "json_schema", "json_schema": {
        "name": "num", "schema": schema, "strict": True}}).messages_body
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    body = translate(messages=[{"role": "system", "content": "Be terse."},
                               {"role": "user", "content": "hi"}],
                     response_format={"type": "json_object"}).messages_body
    assert body["system"] == "Be terse.\n\n" + JSON_OBJECT_INSTRUCTION
    assert "output_config" not in translate(response_format={"type": "text"}).messages_body
    assert refused(response_format={"type": "json_schema"}).param == "response_format.json_schema"
    assert refused(response_format={"type": "xml"}).param == "response_format.type"


def test_reasoning_effort_maps_to_thinking_and_effort():
    body = translate(reasoning_effort="minimal").messages_body
    assert body["thinking"] == {"type": "adaptive"} and body["output_config"] == {"effort": "low"}
    assert translate(reasoning_effort="none").messages_body["thinking"] == {"type": "disabled"}
    assert refused(reasoning_effort="extreme").param == "reasoning_effort"


@pytest.mark.parametrize("field, value", [
    ("n", 2), ("logprobs", True), ("top_logprobs", 3), ("logit_bias", {"50256": -100}),
    ("audio", {"voice": "alloy", "format": "wav"}), ("modalities", ["text", "audio"]),
    ("prediction", {"type": "content", "content": "x"}), ("web_search_options", {}),
    ("functions", [{"name": "f"}]), ("function_call", "auto"),
])
def test_unsupported_fields_are_a_400_naming_the_field(field, value):
    err = refused(**{field: value})
    assert err.status == 400 and err.param == field and field in err.message
    status, body = openai_error(err)
    assert status == 400 and body["error"]["param"] == field
    assert body["error"]["type"] == "invalid_request_error"


def test_harmless_defaults_of_unsupported_fields_pass():
    chat = translate(n=1, logprobs=False, modalities=["text"], logit_bias={})
    assert chat.ignored == []


def test_ignored_fields_are_declared_but_type_checked():
    chat = translate(temperature=0.3, top_p=0.9, seed=7, presence_penalty=0.1, user="u1",
                     metadata={"k": "v"}, store=False, service_tier="auto")
    assert chat.ignored == ["temperature", "top_p", "seed", "presence_penalty", "user", "metadata",
                            "store", "service_tier"]
    assert "temperature" not in chat.messages_body
    assert refused(temperature=3).param == "temperature"
    assert refused(seed="7").param == "seed"


def test_unknown_fields_and_models():
    err = refused(frobnicate=True)
    assert err.param == "frobnicate" and "Unrecognized request argument" in err.message
    err = refused(model="gpt-4o")
    assert err.status == 404 and err.param == "model"
    status, body = openai_error(err)
    assert status == 404 and body["error"]["code"] == "model_not_found"
    assert refused(model="").param == "model"


# -- responses --------------------------------------------------------------------------------

MESSAGE = {"id": "msg_01ABC", "type": "message", "role": "assistant", "model": "claude-sonnet-5",
           "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"},
                       {"type": "text", "text": "Let me check. "},
                       {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "é"}}],
           "stop_reason": "tool_use", "stop_sequence": None,
           "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100,
                     "cache_creation_input_tokens": 20}}


def test_completion_from_message():
    out = completion_from_message(MESSAGE, created=123)
    assert out["id"] == "chatcmpl-01ABC" and out["object"] == "chat.completion"
    assert out["created"] == 123 and out["model"] == "claude-sonnet-5"
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check. "
    assert choice["message"]["reasoning_content"] == "hmm"
    assert choice["message"]["tool_calls"] == [{"id": "toolu_1", "type": "function", "function": {
        "name": "lookup", "arguments": json.dumps({"q": "é"}, ensure_ascii=False)}}]
    assert out["usage"]["prompt_tokens"] == 130 and out["usage"]["completion_tokens"] == 5
    assert out["usage"]["total_tokens"] == 135
    assert out["usage"]["prompt_tokens_details"]["cached_tokens"] == 100


def test_tool_only_answer_has_null_content():
    message = {**MESSAGE, "content": [MESSAGE["content"][2]]}
    assert completion_from_message(message)["choices"][0]["message"]["content"] is None


@pytest.mark.parametrize("stop, finish", [("end_turn", "stop"), ("stop_sequence", "stop"),
                                          ("max_tokens", "length"), ("tool_use", "tool_calls"),
                                          ("refusal", "content_filter")])
def test_finish_reasons(stop, finish):
    message = {**MESSAGE, "content": [{"type": "text", "text": "x"}], "stop_reason": stop}
    assert completion_from_message(message)["choices"][0]["finish_reason"] == finish


def anthropic_events():
    return [
        {"type": "message_start", "message": {"id": "msg_01XYZ", "model": "claude-sonnet-5",
                                              "content": [], "usage": {"input_tokens": 9, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "toolu_7", "name": "lookup", "input": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"q":'}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '"x"}'}},
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {
            "type": "tool_use", "id": "toolu_8", "name": "now", "input": {}}},
        {"type": "content_block_stop", "index": 2},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}},
        {"type": "message_stop"},
        {"type": "claude_nb.final_usage", "usage": {"input_tokens": 900, "output_tokens": 30,
                                                     "cache_read_input_tokens": 0,
                                                     "cache_creation_input_tokens": 0}},
    ]


def test_chunks_carry_text_tool_calls_and_finish():
    tr = ChatChunkTranslator(created=5)
    chunks = [c for e in anthropic_events() for c in tr.feed(e)]
    assert all(c["id"] == "chatcmpl-01XYZ" and c["object"] == "chat.completion.chunk" for c in chunks)
    assert all("usage" not in c for c in chunks)     # include_usage off: no usage key at all
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": "", "refusal": None}
    assert "".join(d.get("content") or "" for d in deltas) == "Hello"
    calls = [tc for d in deltas for tc in d.get("tool_calls") or []]
    assert calls[0] == {"index": 0, "id": "toolu_7", "type": "function",
                        "function": {"name": "lookup", "arguments": ""}}
    assert "".join(tc["function"]["arguments"] for tc in calls if tc["index"] == 0) == '{"q":"x"}'
    # a call with no streamed arguments still ends up with valid JSON
    assert "".join(tc["function"]["arguments"] for tc in calls if tc["index"] == 1) == "{}"
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "tool_calls"
    assert sum(1 for c in chunks if c["choices"][0]["finish_reason"]) == 1


def test_include_usage_adds_a_final_usage_chunk_from_the_run():
    tr = ChatChunkTranslator(include_usage=True)
    chunks = [c for e in anthropic_events() for c in tr.feed(e)]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == usage_from_anthropic({"input_tokens": 900, "output_tokens": 30})
    assert chunks[-1]["usage"]["total_tokens"] == 930


def test_thinking_streams_as_reasoning_content():
    tr = ChatChunkTranslator()
    tr.feed({"type": "message_start", "message": {"id": "msg_1", "model": "m", "usage": {}}})
    out = tr.feed({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "thinking_delta", "thinking": "step 1"}})
    assert out[0]["choices"][0]["delta"] == {"reasoning_content": "step 1"}
    assert tr.feed({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "signature_delta", "signature": "x"}}) == []


@pytest.mark.parametrize("exc, status, kind, code", [
    (RateLimited("slow down"), 429, "rate_limit_error", "rate_limit_exceeded"),
    (Overloaded("busy"), 503, "server_error", "overloaded"),
    (ApiFailure("boom"), 500, "server_error", None),
    (AnthropicError("who are you", status=401), 401, "authentication_error", "invalid_api_key"),
    (AnthropicError("too big", status=413), 413, "invalid_request_error", "request_too_large"),
])
def test_error_shapes(exc, status, kind, code):
    got_status, body = openai_error(exc)
    assert got_status == status
    assert body == {"error": {"message": exc.message, "type": kind, "param": None, "code": code}}
