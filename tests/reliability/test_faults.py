"""Faults survived: clients that leave, an upstream that drops, refuses or hangs, and a CLI
that crashes, babbles, quits or is missing. Every failure reaches the client as Anthropic's
error (an HTTP error before the stream, an `event: error` after), never as a cut answer passed
off as whole; the process is ended, the concurrency slot returned, the server keeps serving."""
from __future__ import annotations

import asyncio
import json

import anthropic
import pytest

from tests.support.fake_upstream import Reply
from tests.support import proctable
from tests.support.reliability import assert_envelope, body, sse_events

TIMEOUT = 5.0       # c.ClaudeBridge.request_timeout where a test waits for it
SHORT_TIMEOUT = {"request_timeout": TIMEOUT, "pool_enabled": False}


async def served_ok(api, claude_app, prompt="still there?"):
    """A following request through the real CLI gets its own answer; the slot came back."""
    resp = await api.post("v1/messages", body(prompt))
    assert resp.status == 200, resp.body
    assert resp.json()["content"][0]["text"] == "You said: " + prompt
    assert claude_app.bridge.limiter.active == 0
    assert not claude_app.bridge.live


def assert_error_reached_client(resp, *, streaming: bool, status=None, error_type=None):
    """The client got an Anthropic error: the HTTP status before the stream began, else an
    `event: error` as the last event, and never a `message_stop` (a whole-looking answer)."""
    if resp.status != 200:
        assert not streaming or resp.headers.get("content-type", "").startswith("application/json")
        error = assert_envelope(resp.json(), error_type=error_type)
        if status is not None:
            assert resp.status == status, (resp.status, error)
        assert 400 <= resp.status < 600
        return error
    assert streaming, f"a failed non-streaming request answered 200: {resp.body[:300]!r}"
    events = sse_events(resp.body)
    names = [name for name, _ in events]
    assert "message_stop" not in names, names
    assert names and names[-1] == "error", names
    error = assert_envelope(events[-1][1], error_type=error_type)
    return error


async def wait_for(check, timeout=30.0):
    value = await proctable.settle(lambda: not check(), timeout=timeout)
    assert not value, "condition not reached"


# -- the client leaves ---------------------------------------------------------------------

@pytest.mark.parametrize("moment", ["mid_stream", "before_first_event", "json_request"])
async def test_client_leaving_ends_its_cli_process(api, claude_app, cli_env, upstream, moment):
    """Whenever the client disconnects, its CLI process is gone within 5 s, reaped (no
    zombie), its slot returned, and the next client is served."""
    bridge = claude_app.bridge
    if moment == "mid_stream":
        upstream.push(Reply.text("word " * 400, delay_per_chunk=0.05))
    else:
        upstream.push(Reply.text("late answer", hang=30))
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    payload = json.dumps(body("leave early", stream=moment != "json_request")).encode()
    writer.write(f"POST {api.path('v1/messages')} HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {api.token}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
                 + payload)
    await writer.drain()
    if moment == "mid_stream":
        seen = b""
        while b"text_delta" not in seen:
            seen += await asyncio.wait_for(reader.read(4096), 60)
    else:
        await wait_for(lambda: bridge.live and upstream.message_requests)
    pids = [p.pid for p in bridge.live]
    assert len(pids) == 1
    writer.close()
    # the brief's bound: the process is gone within 5 seconds of the client leaving
    assert not await proctable.settle(lambda: proctable.left_behind(pids), timeout=5.0)
    assert not await proctable.settle(proctable.zombies, timeout=5.0)
    assert not bridge.live
    assert not await proctable.settle(lambda: bridge.limiter.active, timeout=5.0)
    await served_ok(api, claude_app)


# -- the upstream fails --------------------------------------------------------------------

@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("status,error_type", [(429, "rate_limit_error"), (529, "overloaded_error"),
                                               (500, "api_error")])
async def test_upstream_error_status_reaches_client(api, claude_app, cli_env, upstream, status,
                                                    error_type, streaming):
    upstream.push(Reply.error(status, error_type, f"scripted {status}"))
    resp = await api.post("v1/messages", body("x", stream=streaming))
    error = assert_error_reached_client(resp, streaming=streaming, status=status, error_type=error_type)
    assert f"scripted {status}" in error["message"]
    assert claude_app.bridge.limiter.active == 0
    await served_ok(api, claude_app)


@pytest.mark.parametrize("status,error_type", [(529, "overloaded_error"), (429, "rate_limit_error")])
async def test_upstream_error_after_stream_began_is_an_error_event(api, claude_app, cli_env, upstream,
                                                                   monkeypatch, status, error_type):
    """Once pings committed the 200, an upstream refusal arrives as `event: error`."""
    monkeypatch.setattr("server_ext.handlers.base.PING_EVERY", 0.2)
    upstream.push(Reply.error(status, error_type, "late refusal", hang=2.0))
    resp = await api.post("v1/messages", body("x", stream=True))
    assert resp.status == 200
    assert sse_events(resp.body)[0][0] == "ping"
    error = assert_error_reached_client(resp, streaming=True, error_type=error_type)
    assert "late refusal" in error["message"]
    await served_ok(api, claude_app)


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("drop_after", [0, 8, 60])
async def test_upstream_dropping_mid_answer_never_passes_as_whole(api, claude_app, cli_env, upstream,
                                                                  streaming, drop_after):
    answer = "this answer is long enough to be cut somewhere in the middle of it " * 2
    upstream.push(Reply.text(answer, drop_after_chars=drop_after))
    resp = await api.post("v1/messages", body("x", stream=streaming))
    assert_error_reached_client(resp, streaming=streaming)
    if resp.status == 200:
        text = "".join(d["delta"].get("text", "") for n, d in sse_events(resp.body)
                       if n == "content_block_delta")
        assert text != answer and answer.startswith(text)
    await served_ok(api, claude_app)


async def test_sdk_never_returns_a_cut_message(api, claude_app, cli_env, upstream, sdk_base, token):
    """Through the official SDK: neither `create` nor the stream helper yields a Message."""
    client = anthropic.AsyncAnthropic(base_url=sdk_base, api_key=token, max_retries=0)
    upstream.push(Reply.text("half of a long story " * 5, drop_after_chars=20))
    with pytest.raises(anthropic.APIStatusError):
        await client.messages.create(**body("x"))
    upstream.push(Reply.text("half of a long story " * 5, drop_after_chars=20))
    with pytest.raises(anthropic.APIStatusError):
        async with client.messages.stream(**body("x")) as stream:
            await stream.get_final_message()
    await served_ok(api, claude_app)


@pytest.mark.parametrize("bridge_config", [SHORT_TIMEOUT])
@pytest.mark.parametrize("where", ["before_answer", "mid_answer"])
@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "json"])
async def test_upstream_hanging_times_out(api, claude_app, cli_env, upstream, bridge_config,
                                          where, streaming):
    """A hung upstream: the client gets `timeout_error` (504) after request_timeout, long
    before the upstream would have answered."""
    assert claude_app.bridge.request_timeout == TIMEOUT       # the config reached the bridge
    if where == "before_answer":
        upstream.push(Reply.text("never in time", hang=40))
    else:
        upstream.push(Reply.text("slow " * 20, delay_per_chunk=5))
    resp = await api.post("v1/messages", body("x", stream=streaming), timeout=35)
    error = assert_error_reached_client(resp, streaming=streaming, error_type="timeout_error")
    assert "request_timeout" in error["message"]
    if resp.status != 200:
        assert resp.status == 504
    # the follow-up is not about timing; and on a loaded machine the CLI may have been ended
    # before its request reached the upstream, leaving the hanging reply unused
    claude_app.bridge.request_timeout = 120
    upstream.reset()
    await served_ok(api, claude_app)


@pytest.mark.parametrize("bridge_config", [SHORT_TIMEOUT])
async def test_hung_upstream_after_pings_is_timeout_event(api, claude_app, cli_env, upstream,
                                                          monkeypatch, bridge_config):
    monkeypatch.setattr("server_ext.handlers.base.PING_EVERY", 0.5)
    upstream.push(Reply.text("never in time", hang=40))
    resp = await api.post("v1/messages", body("x", stream=True), timeout=35)
    assert resp.status == 200 and sse_events(resp.body)[0][0] == "ping"
    assert_error_reached_client(resp, streaming=True, error_type="timeout_error")


# -- the CLI misbehaves --------------------------------------------------------------------

CLI_FAULTS = ["crash", "crash_before_answer", "garbage", "garbage_result", "garbage_success",
              "exit_early", "exit_at_once", "partial_then_exit", "partial_then_success"]
HANGING_CLI = ["hang", "hang_mid_answer", "grandchild"]


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("mode", CLI_FAULTS)
async def test_misbehaving_cli_gives_clean_error(api, claude_app, fake_cli, streaming, mode):
    cli = fake_cli(mode)
    resp = await api.post("v1/messages", body("are you well?", stream=streaming))
    error = assert_error_reached_client(resp, streaming=streaming)
    assert error["type"] == "api_error"
    assert "Internal server error" not in error["message"], error     # handled, not a traceback
    assert cli.pids(), "the fake CLI was not launched"
    assert not await proctable.settle(lambda: proctable.left_behind(cli.pids()))
    assert claude_app.bridge.limiter.active == 0
    fake_cli.real()
    await served_ok(api, claude_app)


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "json"])
async def test_cli_dying_before_reading_a_large_prompt(api, claude_app, fake_cli, streaming):
    """The CLI exits at once while the server still writes a 2 MB prompt to its stdin (a
    broken pipe): the client hears why, with the exit code and what it printed."""
    cli = fake_cli("exit_at_once")
    resp = await api.post("v1/messages", body("x" * 2_000_000, stream=streaming))
    error = assert_error_reached_client(resp, streaming=streaming, status=500, error_type="api_error")
    assert "exit code 3" in error["message"] and "fatal: could not start" in error["message"]
    assert not proctable.left_behind(cli.pids())
    assert claude_app.bridge.limiter.active == 0
    fake_cli.real()
    await served_ok(api, claude_app)


@pytest.mark.parametrize("bridge_config", [SHORT_TIMEOUT])
@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("mode", HANGING_CLI)
async def test_hanging_cli_is_killed_at_the_timeout(api, claude_app, fake_cli, bridge_config,
                                                    streaming, mode):
    """A CLI that never answers and ignores SIGTERM (or leaves a child behind) is ended
    with everything it started once request_timeout passes."""
    cli = fake_cli(mode)
    resp = await api.post("v1/messages", body("hello?", stream=streaming), timeout=35)
    assert_error_reached_client(resp, streaming=streaming, error_type="timeout_error")
    started = cli.pids() + cli.grandchildren()
    assert cli.pids()
    if mode == "grandchild":
        assert cli.grandchildren()
    assert not await proctable.settle(lambda: proctable.left_behind(started), timeout=10)
    assert claude_app.bridge.limiter.active == 0
    fake_cli.real()
    claude_app.bridge.request_timeout = 120
    await served_ok(api, claude_app)


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "json"])
async def test_missing_cli_is_a_clean_error(api, claude_app, cli_env, monkeypatch, tmp_path,
                                            streaming):
    monkeypatch.setenv("CLAUDE_NB_CLI", str(tmp_path / "gone" / "claude"))
    monkeypatch.setenv("PATH", str(tmp_path))
    resp = await api.post("v1/messages", body("x", stream=streaming))
    assert resp.status == 500
    error = assert_envelope(resp.json(), error_type="api_error")
    assert "not found" in error["message"] and "npm install" in error["message"]
    assert resp.headers["x-should-retry"] == "false"
    assert claude_app.bridge.limiter.active == 0
    monkeypatch.setenv("CLAUDE_NB_CLI", cli_env["cli"])
    await served_ok(api, claude_app)


async def test_cli_that_is_not_executable_is_a_clean_error(api, claude_app, cli_env, monkeypatch,
                                                           tmp_path):
    """A file where the CLI should be, but not a program (a broken install)."""
    broken = tmp_path / "claude"
    broken.write_bytes(b"\x7fELF\x00garbage")
    broken.chmod(0o755)
    monkeypatch.setenv("CLAUDE_NB_CLI", str(broken))
    resp = await api.post("v1/messages", body("x"))
    assert_error_reached_client(resp, streaming=False)
    assert 500 <= resp.status < 600
    assert "Internal server error" not in resp.json()["error"]["message"]
    assert claude_app.bridge.limiter.active == 0
    monkeypatch.setenv("CLAUDE_NB_CLI", cli_env["cli"])
    await served_ok(api, claude_app)


# -- shutdown ------------------------------------------------------------------------------

@pytest.mark.parametrize("bridge_config", [{"max_concurrency": 2, "pool_enabled": False}])
async def test_shutdown_ends_every_cli_process(api, claude_app, cli_env, upstream, bridge_config):
    """`stop_extension` while requests run and wait in the queue: every CLI process it
    started is gone from /proc, and every client got an answer or an error, none hangs."""
    bridge = claude_app.bridge
    upstream.responder = lambda rec: Reply.text("word " * 500, delay_per_chunk=0.05)
    requests = [asyncio.ensure_future(api.post("v1/messages", body(f"n{i}", stream=i % 2 == 0)))
                for i in range(4)]
    await wait_for(lambda: len(bridge.live) == 2 and bridge.limiter.queued == 2)
    seen = {p.pid for p in bridge.live}
    await claude_app.stop_extension()
    assert not proctable.left_behind(seen), "processes outlived stop_extension"
    assert not proctable.running_cli()
    responses = await asyncio.wait_for(asyncio.gather(*requests), 60)
    for resp in responses:
        assert_error_reached_client(resp, streaming=resp.status == 200)
    # a request after shutdown starts no process
    resp = await api.post("v1/messages", body("after"))
    assert_envelope(resp.json())
    assert not proctable.running_cli()
