"""Request fidelity: every Messages API feature reaches the model whole, or is emulated and
declared (docs/compatibility.md). Each test runs the real CLI against the recording upstream and
checks what the client sent against what the upstream received, streaming and not."""
import base64
import json
import subprocess
import sys

import jsonschema
import pytest

from claude_nb.bridge import bridge as bridge_module
from claude_nb.bridge.events import EventTranslator, MessageAccumulator
from claude_nb.bridge.plan import MCP_SERVER_SCRIPT
from claude_nb.protocol.errors import AnthropicError, InvalidRequest
from claude_nb.protocol.validation import ignored_fields, validate_message_request
from tests.support.fake_upstream import Reply

MODES = ["stream", "create"]

# A 1x1 PNG and a minimal PDF: small enough that the CLI passes them on byte for byte.
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")).decode()
PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF").decode()

WEATHER = {"name": "get_weather", "description": "Current weather for a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}
CLOCK = {"name": "get_time", "description": "Local time in a timezone.",
         "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}}}


def body(messages, **extra):
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    return {"model": "sonnet", "max_tokens": 1000, "messages": messages} | extra


async def ask(bridge, request, mode):
    """(client events or None, final message) for one request, streaming or not."""
    if mode == "create":
        return None, await bridge.create(request)
    events = [e async for e in bridge.stream(request)]
    assert events[-1]["type"] == "claude_nb.final_usage"
    events = events[:-1]
    assert_wellformed(events)
    acc = MessageAccumulator()
    for event in events:
        acc.add(event)
    return events, acc.message


def assert_wellformed(events):
    """The event grammar the SDKs rely on (docs: Messages streaming)."""
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    assert events[0]["message"]["content"] == [] and events[0]["message"]["stop_reason"] is None
    open_index, next_index = None, 0
    for event in events[1:-1]:
        kind = event["type"]
        if kind == "content_block_start":
            assert open_index is None and event["index"] == next_index
            open_index, next_index = event["index"], next_index + 1
        elif kind == "content_block_delta":
            assert event["index"] == open_index
        elif kind == "content_block_stop":
            assert event["index"] == open_index
            open_index = None
        elif kind == "message_delta":
            assert open_index is None and isinstance(event["usage"]["output_tokens"], int)
        else:
            raise AssertionError(f"unexpected event {kind}")
    assert [e["type"] for e in events].count("message_delta") == 1


# What CLIs newer than 2.1.197 append to a resumed last turn that starts with tool_result (they
# take a blank resume prompt as unset; docs/compatibility.md): a zero-width space, no words.
RESUME_FILLER = "\u200b"


def upstream_turns(upstream):
    """The last upstream request's turns, without the CLI's date reminder and system notes."""
    turns = []
    for m in upstream.message_requests[-1].conversation():
        blocks = [{k: v for k, v in b.items() if k != "cache_control"} for b in m["content"]
                  if not (b.get("type") == "text" and (b["text"].startswith("<system-reminder>")
                                                       or b["text"] == RESUME_FILLER))]
        turns.append({"role": m["role"], "content": blocks})
    return turns


def deltas(events, kind):
    return [e["delta"] for e in events if e["type"] == "content_block_delta"
            and e["delta"]["type"] == kind]


def wants_structured_output(rec):
    return any(t["name"] == "StructuredOutput" for t in (rec.body or {}).get("tools") or [])


@pytest.fixture
def processes(monkeypatch):
    """Every CliProcess the bridge starts, to check how it ended."""
    started = []

    class Recording(bridge_module.CliProcess):
        async def start(self):
            started.append(self)
            return await super().start()

    monkeypatch.setattr(bridge_module, "CliProcess", Recording)
    return started


# -- multi-turn -----------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
async def test_tool_use_and_tool_result_turns_go_back_as_real_turns(bridge, upstream, mode):
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": [
                {"type": "text", "text": "18 C, sunny"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}]},
    ]
    upstream.push(Reply.text("It is 18 C and sunny in Paris."))
    _, message = await ask(bridge, body(messages, tools=[WEATHER]), mode)
    assert message["content"] == [{"type": "text", "text": "It is 18 C and sunny in Paris."}]
    assert len(upstream.message_requests) == 1
    assert upstream_turns(upstream) == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_01", "name": "mcp__client__get_weather",
             "input": {"city": "Paris"}}]},
        {"role": "user", "content": messages[2]["content"]},
    ]


@pytest.mark.parametrize("mode", MODES)
async def test_images_and_documents_in_earlier_and_last_turns_arrive_unchanged(bridge, upstream, mode):
    attachments = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
         "title": "Report", "context": "Q3 figures"},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain notes"},
         "title": "Notes", "citations": {"enabled": True}},
        {"type": "document", "source": {"type": "content", "content": [
            {"type": "text", "text": "first chunk"}, {"type": "text", "text": "second chunk"}]}},
    ]
    first = attachments + [{"type": "text", "text": "Summarise these."}]
    last = attachments[::-1] + [{"type": "text", "text": "And now in reverse?"}]
    messages = [{"role": "user", "content": first},
                {"role": "assistant", "content": "They are a report, notes and chunks."},
                {"role": "user", "content": last}]
    await ask(bridge, body(messages), mode)
    assert upstream_turns(upstream) == [
        {"role": "user", "content": first},
        {"role": "assistant", "content": [{"type": "text", "text": "They are a report, notes and chunks."}]},
        {"role": "user", "content": last},
    ]


@pytest.mark.parametrize("mode", MODES)
async def test_documents_and_images_in_a_single_turn_arrive_unchanged(bridge, upstream, mode):
    content = [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "a,b\n1,2"},
         "title": "table.csv"},
        {"type": "document", "source": {"type": "content", "content": "inline content document"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "text", "text": "What is in them?"},
    ]
    await ask(bridge, body([{"role": "user", "content": content}]), mode)
    assert upstream_turns(upstream) == [{"role": "user", "content": content}]


@pytest.mark.parametrize("mode", MODES)
async def test_thinking_blocks_with_signatures_in_earlier_turns_are_kept(bridge, upstream, mode):
    earlier = [{"type": "thinking", "thinking": "The user wants a number.", "signature": "EqQBsig=="},
               {"type": "redacted_thinking", "data": "EmwKAhgBEgy3redacted"},
               {"type": "text", "text": "42"}]
    messages = [{"role": "user", "content": "Pick a number."},
                {"role": "assistant", "content": earlier},
                {"role": "user", "content": "Why that one?"}]
    await ask(bridge, body(messages, thinking={"type": "adaptive"}), mode)
    assert upstream_turns(upstream)[1] == {"role": "assistant", "content": earlier}


async def test_a_last_turn_that_looks_like_a_cli_interrupt_marker_is_still_answered(bridge, upstream):
    # The CLI does not answer a resumed turn that is exactly its own interrupt marker: that
    # turn goes on stdin instead of in the transcript.
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "[Request interrupted by user]"}]
    message = await bridge.create(body(messages))
    assert message["content"][0]["text"] == "You said: [Request interrupted by user]"
    assert [t["role"] for t in upstream_turns(upstream)] == ["user", "assistant", "user"]


# -- thinking and effort --------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
async def test_thinking_streams_back_with_its_signature(bridge, upstream, mode):
    upstream.push(Reply.thinking("Two and two make four.", "4"))
    request = body("2+2?", thinking={"type": "enabled", "budget_tokens": 2000}, max_tokens=4000)
    events, message = await ask(bridge, request, mode)
    assert message["content"] == [
        {"type": "thinking", "thinking": "Two and two make four.", "signature": "sig_0"},
        {"type": "text", "text": "4"}]
    if events is not None:
        block0 = [e for e in events if e.get("index") == 0]
        kinds = [e["type"] if e["type"] != "content_block_delta" else e["delta"]["type"] for e in block0]
        assert kinds[0] == "content_block_start" and kinds[-2:] == ["signature_delta", "content_block_stop"]
        assert set(kinds[1:-2]) == {"thinking_delta"}


@pytest.mark.parametrize("model, sent", [
    # Models that take a budget get it; the newest ones think adaptively and ignore it.
    ("claude-opus-4-5-20251101", {"type": "enabled", "budget_tokens": 2000}),
    ("claude-sonnet-4-6", {"type": "enabled", "budget_tokens": 2000}),
    ("claude-opus-4-6", {"type": "enabled", "budget_tokens": 2000}),
    ("sonnet", {"type": "adaptive"}),
    ("claude-opus-5-5", {"type": "adaptive"}),
])
async def test_thinking_budget_reaches_upstream_as_the_model_allows(bridge, upstream, model, sent):
    request = body("hi", thinking={"type": "enabled", "budget_tokens": 2000}, max_tokens=4000)
    request["model"] = model
    await bridge.create(request)
    assert upstream.message_requests[-1].body["thinking"] == sent


@pytest.mark.parametrize("model, sent", [
    ("sonnet", {"type": "adaptive"}),
    ("claude-opus-4-6", {"type": "adaptive"}),
    # Models without adaptive thinking get the largest budget max_tokens allows.
    ("claude-opus-4-5-20251101", {"type": "enabled", "budget_tokens": 3999}),
])
async def test_adaptive_thinking_reaches_upstream(bridge, upstream, model, sent):
    request = body("hi", thinking={"type": "adaptive"}, max_tokens=4000)
    request["model"] = model
    await bridge.create(request)
    assert upstream.message_requests[-1].body["thinking"] == sent


@pytest.mark.parametrize("display", ["summarized", "omitted"])
async def test_thinking_display_reaches_upstream(bridge, upstream, display):
    await bridge.create(body("hi", thinking={"type": "adaptive", "display": display}))
    assert upstream.message_requests[-1].body["thinking"] == {"type": "adaptive", "display": display}


async def test_an_unknown_thinking_display_is_a_400(bridge, upstream):
    with pytest.raises(InvalidRequest) as info:
        await bridge.create(body("hi", thinking={"type": "adaptive", "display": "verbose"}))
    assert "thinking.display" in info.value.message and upstream.message_requests == []


@pytest.mark.parametrize("thinking", [None, {"type": "disabled"}])
@pytest.mark.parametrize("mode", MODES)
async def test_no_thinking_unless_asked(bridge, upstream, thinking, mode):
    request = body("hi") if thinking is None else body("hi", thinking=thinking)
    _, message = await ask(bridge, request, mode)
    assert not upstream.message_requests[-1].asks_for_thinking()
    assert [b["type"] for b in message["content"]] == ["text"]


@pytest.mark.parametrize("model", ["sonnet", "opus", "claude-opus-5-5", "claude-sonnet-4-6"])
async def test_no_thinking_unless_asked_whatever_the_model(bridge, upstream, model):
    # Newer CLIs turn `disabled` into `adaptive` for models they hold cannot switch thinking
    # off; upstream must still get a request that does not think (no `thinking`, or disabled).
    request = body("hi")
    request["model"] = model
    await bridge.create(request)
    assert not upstream.message_requests[-1].asks_for_thinking()


@pytest.mark.parametrize("effort", ["low", "medium", "high", "xhigh", "max"])
async def test_effort_reaches_upstream(bridge, upstream, effort):
    await bridge.create(body("hi", output_config={"effort": effort}))
    assert upstream.message_requests[-1].body["output_config"] == {"effort": effort}


@pytest.mark.parametrize("model, sent", [
    ("sonnet", None), ("claude-sonnet-5-5", None), ("claude-opus-4-6", None),
    # The CLI insists on its own "launch effort" for these (xhigh for Opus 4.7): the API's
    # default, high, is sent instead.
    ("claude-opus-4-7", "high"), ("claude-opus-4-8", "high"), ("claude-fable-5-2", "high"),
])
async def test_without_effort_upstream_gets_the_apis_default(bridge, upstream, model, sent):
    request = body("hi")
    request["model"] = model
    await bridge.create(request)
    assert (upstream.message_requests[-1].body.get("output_config") or {}).get("effort") == sent


async def test_effort_leaves_the_users_claude_code_settings_alone(bridge, upstream, cli_env):
    # `claude --effort` would record "unpin launch effort" flags in the user's .claude.json.
    await bridge.create(body("hi", output_config={"effort": "low"}))
    settings = json.loads((cli_env["config_dir"] / ".claude.json").read_text())
    assert not [key for key in settings if "Effort" in key]


# -- stop sequences (emulated) --------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
async def test_stop_sequence_across_chunk_boundaries_ends_the_message(bridge, upstream, processes, mode):
    # The fake upstream streams 4 characters a chunk: "STOP-HERE" spans three chunks.
    upstream.push(Reply.text("Alpha beta gamma STOP-HERE and this must never be seen", delay_per_chunk=0.01))
    events, message = await ask(bridge, body("go", stop_sequences=["never", "STOP-HERE"]), mode)
    assert message["content"] == [{"type": "text", "text": "Alpha beta gamma "}]
    assert message["stop_reason"] == "stop_sequence" and message["stop_sequence"] == "STOP-HERE"
    assert message["usage"]["output_tokens"] > 0
    if events is not None:
        sent = "".join(d["text"] for d in deltas(events, "text_delta"))
        assert sent == "Alpha beta gamma "
    assert len(processes) == 1 and processes[0].proc.returncode is not None


@pytest.mark.parametrize("mode", MODES)
async def test_text_without_the_stop_sequence_is_sent_whole(bridge, upstream, mode):
    upstream.push(Reply.text("Ends with an almost match: STOP-HER"))
    events, message = await ask(bridge, body("go", stop_sequences=["STOP-HERE"]), mode)
    assert message["content"] == [{"type": "text", "text": "Ends with an almost match: STOP-HER"}]
    assert message["stop_reason"] == "end_turn" and message["stop_sequence"] is None


def upstream_text_events(text: str, size: int) -> list[dict]:
    chunks = [text[i:i + size] for i in range(0, len(text), size)]
    return ([{"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 3, "output_tokens": 1}}},
             {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}]
            + [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": c}}
               for c in chunks]
            + [{"type": "content_block_stop", "index": 0},
               {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}},
               {"type": "message_stop"}])


@pytest.mark.parametrize("size", range(1, 12))
def test_stop_sequences_are_found_at_every_chunking(size):
    text = "one two <<END>> three <END"
    translator = EventTranslator(stop_sequences=["<END>", "<<END>>", "zzz"])
    events = [out for e in upstream_text_events(text, size) for out in translator.feed(e)]
    assert_wellformed(events)
    # "<END>" completes before "<<END>>" does: generation stops there, as at the API.
    assert "".join(d["text"] for d in deltas(events, "text_delta")) == "one two <"
    assert events[-2]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "<END>"}
    assert translator.cut and events[-2]["usage"]["output_tokens"] > 0


# -- client tools ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
async def test_client_tool_call_comes_back_to_the_client(bridge, upstream, mode):
    runs = []
    bridge.run_listeners.append(runs.append)
    upstream.push(Reply.tool_use("mcp__client__get_weather", {"city": "Paris"}, text="Checking."))
    events, message = await ask(bridge, body("Weather in Paris?", tools=[WEATHER, CLOCK]), mode)
    assert message["stop_reason"] == "tool_use"
    assert message["content"][0] == {"type": "text", "text": "Checking."}
    tool_use = message["content"][1]
    assert tool_use["type"] == "tool_use" and tool_use["name"] == "get_weather"
    assert tool_use["input"] == {"city": "Paris"} and tool_use["id"]
    if events is not None:
        start = next(e for e in events if e["type"] == "content_block_start" and e["index"] == 1)
        assert start["content_block"]["input"] == {}
        pieces = [e["delta"]["partial_json"] for e in events
                  if e["type"] == "content_block_delta" and e["index"] == 1]
        assert all(e["delta"]["type"] == "input_json_delta" for e in events
                   if e["type"] == "content_block_delta" and e["index"] == 1)
        assert json.loads("".join(pieces)) == {"city": "Paris"}
    # One upstream request: the CLI did not run the tool and ask again; the run is billed.
    assert len(upstream.message_requests) == 1
    sent_tools = {t["name"]: t for t in upstream.message_requests[-1].client_tools()}
    assert set(sent_tools) == {"mcp__client__get_weather", "mcp__client__get_time"}
    assert sent_tools["mcp__client__get_weather"]["input_schema"] == WEATHER["input_schema"]
    assert sent_tools["mcp__client__get_weather"]["description"] == WEATHER["description"]
    assert len(runs) == 1 and runs[0].status == "succeeded"
    assert runs[0].cost_usd > 0 and not runs[0].cost_estimated


@pytest.mark.parametrize("mode", MODES)
async def test_parallel_tool_calls_both_reach_the_client_and_both_results_go_back(bridge, upstream, mode):
    upstream.push(Reply(blocks=[("tool_use", "mcp__client__get_weather", {"city": "Paris"}),
                                ("tool_use", "mcp__client__get_time", {"tz": "Europe/Paris"})],
                        stop_reason="tool_use"))
    request = body("Weather and time in Paris?", tools=[WEATHER, CLOCK])
    _, message = await ask(bridge, request, mode)
    calls = [(b["name"], b["input"]) for b in message["content"]]
    assert calls == [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "Europe/Paris"})]
    assert message["stop_reason"] == "tool_use"

    upstream.push(Reply.text("Sunny; the clock is broken."))
    follow_up = body(request["messages"] + [
        {"role": "assistant", "content": message["content"]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": message["content"][0]["id"], "content": "sunny"},
            {"type": "tool_result", "tool_use_id": message["content"][1]["id"], "content": "no clock",
             "is_error": True}]},
    ], tools=[WEATHER, CLOCK])
    _, answer = await ask(bridge, follow_up, mode)
    assert answer["content"] == [{"type": "text", "text": "Sunny; the clock is broken."}]
    turns = upstream_turns(upstream)
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert [b["name"] for b in turns[1]["content"]] == ["mcp__client__get_weather", "mcp__client__get_time"]
    assert [(b["content"], b.get("is_error")) for b in turns[2]["content"]] == [("sunny", None),
                                                                                ("no clock", True)]


@pytest.mark.parametrize("choice, instruction", [
    ({"type": "auto"}, None),
    ({"type": "any"}, "You must answer by calling one of the available tools."),
    ({"type": "tool", "name": "get_time"}, "You must answer by calling the tool `get_time`."),
    ({"type": "none"}, "Do not call any tool in this answer"),
])
@pytest.mark.parametrize("mode", MODES)
async def test_tool_choice_is_asked_for_in_the_system_prompt(bridge, upstream, choice, instruction, mode):
    upstream.push(Reply.tool_use("mcp__client__get_time", {"tz": "UTC"}))
    _, message = await ask(bridge, body("Time?", tools=[WEATHER, CLOCK], tool_choice=choice), mode)
    sent = upstream.message_requests[-1]
    assert {t["name"] for t in sent.client_tools()} == {"mcp__client__get_weather", "mcp__client__get_time"}
    assert "tool_choice" not in sent.body          # the CLI never sends one
    if instruction:
        assert instruction in sent.system_text()
    if choice["type"] == "none":
        # A call the model makes anyway is dropped: the client never gets a tool_use.
        assert message["content"] == [] and message["stop_reason"] == "end_turn"
    else:
        assert message["content"][0]["name"] == "get_time" and message["stop_reason"] == "tool_use"


@pytest.mark.parametrize("mode", MODES)
async def test_disable_parallel_tool_use_returns_one_call(bridge, upstream, mode):
    upstream.push(Reply(blocks=[("tool_use", "mcp__client__get_weather", {"city": "Paris"}),
                                ("tool_use", "mcp__client__get_weather", {"city": "Rome"})],
                        stop_reason="tool_use"))
    request = body("Weather in Paris and Rome?", tools=[WEATHER],
                   tool_choice={"type": "auto", "disable_parallel_tool_use": True})
    _, message = await ask(bridge, request, mode)
    assert [(b["name"], b["input"]) for b in message["content"]] == [("get_weather", {"city": "Paris"})]
    assert "Call at most one tool" in upstream.message_requests[-1].system_text()


@pytest.mark.parametrize("mode", MODES)
async def test_the_clis_own_tools_never_reach_the_client(bridge, upstream, mode):
    upstream.push(Reply(blocks=[("tool_use", "Read", {"file_path": "/etc/passwd"}), ("text", "Done.")],
                        stop_reason="tool_use"))
    _, message = await ask(bridge, body("Read a file", tools=[WEATHER]), mode)
    assert message["content"] == [{"type": "text", "text": "Done."}]
    assert message["stop_reason"] == "end_turn"
    assert len(upstream.message_requests) == 1


def test_the_tool_server_lists_client_tools_and_runs_nothing(tmp_path):
    tmp_path = tmp_path / "tool-server"
    tmp_path.mkdir()
    marker = tmp_path / "ran"
    tools = [{"name": "touch", "description": "creates a file",
              "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}}}]
    requests = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
         "params": {"name": "touch", "arguments": {"path": str(marker)}}},
    ]
    out = subprocess.run([sys.executable, MCP_SERVER_SCRIPT], input="\n".join(map(json.dumps, requests)),
                         capture_output=True, text=True, timeout=30, cwd=tmp_path,
                         env={"CLAUDE_NB_TOOLS": json.dumps(tools), "PATH": "/usr/bin:/bin"})
    replies = {r["id"]: r for r in map(json.loads, out.stdout.splitlines())}
    assert set(replies) == {1, 2, 3}
    assert replies[2]["result"]["tools"] == tools
    assert replies[3]["result"]["isError"] is True
    assert not marker.exists() and list(tmp_path.iterdir()) == []


# -- structured output ----------------------------------------------------------------------

PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}


@pytest.mark.parametrize("spelling", ["output_config", "output_format"])
@pytest.mark.parametrize("mode", MODES)
async def test_structured_output_returns_schema_valid_json_text(bridge, upstream, spelling, mode):
    upstream.responder = lambda rec: (
        Reply(blocks=[("text", "Here it is:"), ("tool_use", "StructuredOutput", {"name": "Ada", "age": 36})],
              stop_reason="tool_use")
        if wants_structured_output(rec) else Reply.text("plain text, no schema"))
    fmt = {"type": "json_schema", "schema": PERSON}
    request = (body("Who wrote the first program?", output_config={"format": fmt}) if spelling == "output_config"
               else body("Who wrote the first program?", output_format=fmt))
    events, message = await ask(bridge, request, mode)
    assert [b["type"] for b in message["content"]] == ["text"]
    answer = json.loads(message["content"][0]["text"])
    jsonschema.validate(answer, PERSON)
    assert answer == {"name": "Ada", "age": 36}
    assert message["stop_reason"] == "end_turn"
    sent = upstream.message_requests[-1].body
    structured_tool = next(t for t in sent["tools"] if t["name"] == "StructuredOutput")
    assert structured_tool["input_schema"] == PERSON
    assert len(upstream.message_requests) == 1
    if events is not None:
        assert len(deltas(events, "text_delta")) > 1      # streamed as it is generated


def test_structured_output_keeps_text_written_before_a_client_tool_call():
    translator = EventTranslator(client_tools=["get_weather"], structured=True)
    upstream = [
        {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 3, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me look."}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "toolu_1", "name": "mcp__client__get_weather", "input": {}}},
        {"type": "content_block_delta", "index": 1,
         "delta": {"type": "input_json_delta", "partial_json": '{"city": "Oslo"}'}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    ]
    events = [out for e in upstream for out in translator.feed(e)]
    assert translator.awaiting_verdict and translator.saw_client_tool
    events += translator.release()
    assert_wellformed(events)
    acc = MessageAccumulator()
    for event in events:
        acc.add(event)
    assert acc.message["content"] == [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}]
    assert acc.message["stop_reason"] == "tool_use"


@pytest.mark.parametrize("mode", MODES)
async def test_structured_output_that_fails_the_schema_is_an_error(bridge, upstream, mode):
    upstream.push(Reply(blocks=[("tool_use", "StructuredOutput", {"name": "Ada", "age": "old"})],
                        stop_reason="tool_use"))
    request = body("Who?", output_config={"format": {"type": "json_schema", "schema": PERSON}})
    events = []
    with pytest.raises(AnthropicError) as info:
        if mode == "create":
            await bridge.create(request)
        else:
            async for event in bridge.stream(request):
                events.append(event)
    assert info.value.status >= 500 and "schema" in info.value.message
    assert "message_stop" not in [e["type"] for e in events]


# -- fields that have no effect, and prefill ------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
async def test_ignored_fields_are_accepted_and_declared(bridge, upstream, mode):
    request = body("hi", temperature=0.2, top_p=0.5, top_k=5, metadata={"user_id": "u-1"},
                   service_tier="auto", tools=[{**WEATHER, "strict": True}])
    validate_message_request(request)
    assert ignored_fields(request) == ["temperature", "top_p", "top_k", "service_tier", "metadata",
                                       "tools.strict"]
    request["model"] = "claude-sonnet-4-6"   # takes a temperature: the CLI sends its own
    _, message = await ask(bridge, request, mode)
    assert message["content"][0]["text"] == "You said: hi"
    sent = upstream.message_requests[-1].body
    assert "top_p" not in sent and "top_k" not in sent and sent.get("temperature") != 0.2
    assert sent["metadata"] != {"user_id": "u-1"}
    assert "strict" not in sent["tools"][0]


def test_honoured_fields_are_not_declared_ignored():
    request = body("hi", system="Be brief.", stop_sequences=["x"], stream=True, tools=[WEATHER],
                   tool_choice={"type": "auto"}, thinking={"type": "adaptive"},
                   output_config={"effort": "low"}, temperature=None)
    assert ignored_fields(validate_message_request(request)) == []


async def test_prefill_is_refused_with_a_clear_400(bridge, upstream):
    messages = [{"role": "user", "content": "Name a colour."},
                {"role": "assistant", "content": "The colour is"}]
    with pytest.raises(InvalidRequest) as info:
        await bridge.create(body(messages))
    assert info.value.status == 400 and "Prefill" in info.value.message
    assert upstream.message_requests == []
