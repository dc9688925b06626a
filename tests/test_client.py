"""The client's two transports against the real CLI and the recording upstream."""
from __future__ import annotations

import asyncio
import os

import pytest

import claude_nb
from claude_nb import client as client_mod
from claude_nb.client import Claude, ClaudeError, HttpTransport, InProcessTransport
from fake_upstream import Reply


@pytest.fixture
def local(cli_env, monkeypatch):
    """The in-process transport, as a kernel with no Jupyter server gets it."""
    monkeypatch.delenv("CLAUDE_NB_URL", raising=False)
    monkeypatch.delenv("JPY_PARENT_PID", raising=False)
    transport = InProcessTransport()
    monkeypatch.setattr(client_mod, "_default_transport", transport)
    yield transport
    transport.close()


# -- in-process -----------------------------------------------------------------------------
def test_message_in_process_reaches_upstream_with_its_options(local, upstream):
    runs = []
    local.add_run_listener(runs.append)
    text = claude_nb.claude.message("What is 2+2?", model="haiku", system="Be brief.",
                                    max_tokens=77)
    assert text == "You said: What is 2+2?"
    sent = upstream.message_requests[-1]
    assert sent.user_texts() == ["What is 2+2?"]
    assert "Be brief." in sent.system_text()
    assert sent.body["max_tokens"] == 77
    assert "haiku" in sent.body["model"]
    assert len(runs) == 1 and runs[0].source == "client" and runs[0].status == "succeeded"


def test_message_stream_yields_pieces_that_make_the_answer(local, upstream):
    upstream.push(Reply.text("The quick brown fox jumps over the lazy dog."))
    pieces = list(claude_nb.claude.message_stream("go"))
    assert len(pieces) >= 2
    assert "".join(pieces) == "The quick brown fox jumps over the lazy dog."


def test_answer_carries_usage_cost_and_request_id(local, upstream):
    upstream.push(Reply.text("hello", input_tokens=31, output_tokens=9))
    answer = Claude().answer("hi")
    assert answer.text == "hello"
    assert answer.usage["input_tokens"] == 31 and answer.usage["output_tokens"] == 9
    assert answer.cost_usd > 0 and answer.cost_estimated is False   # the CLI's own figure
    assert answer.request_id.startswith("req_")
    assert answer.stop_reason == "end_turn" and answer.transport == "in-process"


def test_prior_turns_go_upstream_as_turns(local, upstream):
    history = [{"role": "user", "content": "My name is Ada."},
               {"role": "assistant", "content": "Hello Ada."}]
    Claude().message("What is my name?", messages=history)
    sent = upstream.message_requests[-1]
    assert [m["role"] for m in sent.messages] == ["user", "assistant", "user"]
    assert sent.user_texts() == ["My name is Ada.", "What is my name?"]


def test_upstream_429_is_a_claude_error_with_type(local, upstream):
    upstream.push(Reply.error(429, "rate_limit_error", "Number of requests has exceeded your rate limit"))
    with pytest.raises(ClaudeError) as info:
        claude_nb.claude.message("x")
    err = info.value
    assert err.status == 429 and err.type == "rate_limit_error"
    assert "rate limit" in err.message and err.request_id.startswith("req_")


def test_bad_request_is_refused_before_any_process(local, upstream):
    with pytest.raises(ClaudeError) as info:
        claude_nb.claude.message("x", max_tokens=-3)
    assert info.value.status == 400 and info.value.type == "invalid_request_error"
    assert "max_tokens" in info.value.message
    assert upstream.message_requests == []


def test_logged_out_cli_says_how_to_log_in(local, upstream, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(ClaudeError) as info:
        claude_nb.claude.message("x")
    assert info.value.type == "authentication_error"
    assert "log in" in info.value.message


def test_missing_cli_says_where_it_looked(local, monkeypatch):
    monkeypatch.setenv("CLAUDE_NB_CLI", "/nonexistent/claude")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ClaudeError) as info:
        claude_nb.claude.message("x")
    assert "/nonexistent/claude" in info.value.message and "npm install" in info.value.message


def test_closing_a_stream_ends_the_cli_process(local, upstream):
    upstream.push(Reply.text("word " * 400, delay_per_chunk=0.02))
    stream = Claude().stream("long please")
    first = next(stream)
    assert first
    assert len(local.bridge.live) == 1
    stream.close()
    assert local.bridge.live == set()
    assert stream.answer is None


async def test_sync_client_works_inside_a_running_event_loop(local, upstream):
    # a kernel's loop is running while a cell executes: asyncio.run() would fail here
    assert asyncio.get_running_loop().is_running()
    assert claude_nb.claude.message("from a running loop") == "You said: from a running loop"


# -- through the Jupyter server (HTTP) ----------------------------------------------------------
# The server runs on this test's event loop and the client is synchronous: client calls go
# to a worker thread (as a kernel's requests come from another process).
@pytest.fixture
def jp_server_config(jp_server_config):
    return {**jp_server_config, "ServerApp": {**jp_server_config.get("ServerApp", {}),
                                              "jpserver_extensions": {"server_ext": True}}}


@pytest.fixture
def served(jp_fetch, jp_serverapp, http_server_port, jp_base_url, cli_env, monkeypatch):
    base = f"http://127.0.0.1:{http_server_port[1]}{jp_base_url}"
    transport = HttpTransport(base, jp_serverapp.identity_provider.token)
    monkeypatch.setattr(client_mod, "_default_transport", transport)
    return transport


def server_bridge(jp_serverapp):
    for name, ext in jp_serverapp.extension_manager.extensions.items():
        for point in ext.extension_points.values():
            app = getattr(point, "app", None)
            if app is not None and hasattr(app, "bridge"):
                return app.bridge
    raise AssertionError("the extension's bridge was not found")


async def test_server_publishes_itself_and_kernels_find_it(served, jp_serverapp, monkeypatch):
    for name in ("CLAUDE_NB_URL", "CLAUDE_NB_TOKEN"):
        monkeypatch.setenv(name, "")       # restored after the test
    # what `jupyter server` does once its loop runs (pytest-jupyter's fixture skips it)
    await jp_serverapp.extension_manager.start_all_extensions()
    assert os.environ["CLAUDE_NB_URL"].endswith(served.base_url.split("127.0.0.1", 1)[1])
    assert os.environ["CLAUDE_NB_TOKEN"] == served.token
    found = client_mod.discover_transport()
    assert isinstance(found, HttpTransport) and found.token == served.token
    text = await asyncio.to_thread(Claude(found).message, "found you")
    assert text == "You said: found you"


async def test_message_over_http_matches_in_process(served, upstream):
    upstream.push(Reply.text("same answer", input_tokens=31, output_tokens=9))
    answer = await asyncio.to_thread(Claude().answer, "What is 2+2?", model="haiku",
                                     system="Be brief.", max_tokens=77)
    assert answer.text == "same answer" and answer.transport == "server"
    assert answer.usage["input_tokens"] == 31 and answer.usage["output_tokens"] == 9
    assert answer.request_id.startswith("req_") and answer.stop_reason == "end_turn"
    assert answer.cost_usd > 0 and answer.cost_estimated is True   # HTTP carries no cost
    sent = upstream.message_requests[-1]
    assert sent.user_texts() == ["What is 2+2?"] and "Be brief." in sent.system_text()
    assert sent.body["max_tokens"] == 77 and "haiku" in sent.body["model"]


async def test_message_stream_over_http_yields_pieces(served, upstream):
    upstream.push(Reply.text("The quick brown fox jumps over the lazy dog."))
    pieces = await asyncio.to_thread(lambda: list(claude_nb.claude.message_stream("go")))
    assert len(pieces) >= 2 and "".join(pieces) == "The quick brown fox jumps over the lazy dog."


async def test_errors_over_http_are_claude_errors(served, upstream):
    upstream.push(Reply.error(429, "rate_limit_error", "slow down"))
    with pytest.raises(ClaudeError) as info:
        await asyncio.to_thread(claude_nb.claude.message, "x")
    assert info.value.status == 429 and info.value.type == "rate_limit_error"
    assert "slow down" in info.value.message and info.value.request_id
    with pytest.raises(ClaudeError) as info:
        await asyncio.to_thread(claude_nb.claude.message, "x", max_tokens=0)
    assert info.value.status == 400 and "max_tokens" in info.value.message


async def test_wrong_token_is_an_authentication_error(served):
    bad = Claude(HttpTransport(served.base_url, "not-the-token"))
    with pytest.raises(ClaudeError) as info:
        await asyncio.to_thread(bad.message, "x")
    assert info.value.status == 401 and info.value.type == "authentication_error"


async def test_unreachable_server_is_a_connection_error():
    dead = Claude(HttpTransport("http://127.0.0.1:9/", "t", timeout=5))
    with pytest.raises(ClaudeError) as info:
        await asyncio.to_thread(dead.message, "x")
    assert info.value.type == "api_connection_error" and "127.0.0.1:9" in info.value.message


async def test_abort_over_http_ends_the_servers_cli_process(served, upstream, jp_serverapp):
    upstream.push(Reply.text("word " * 400, delay_per_chunk=0.02))
    bridge = server_bridge(jp_serverapp)
    stream = await asyncio.to_thread(Claude().stream, "long please")
    first = await asyncio.to_thread(next, stream)
    assert first and len(bridge.live) == 1
    stream.abort()
    rest = await asyncio.to_thread(list, stream)
    assert stream.aborted and stream.answer is None
    assert len(first + "".join(rest)) < len("word " * 400)
    for _ in range(200):                 # the server notices the client left
        if not bridge.live:
            break
        await asyncio.sleep(0.05)
    assert bridge.live == set()


async def test_models_over_http(served):
    models = await asyncio.to_thread(Claude().models)
    ids = [m["id"] for m in models]
    assert "claude-sonnet-5" in ids and "claude-opus-5-5" in ids


async def test_anthropic_client_talks_to_the_server(served, upstream):
    sdk = claude_nb.anthropic_client()
    message = await asyncio.to_thread(sdk.messages.create, model="claude-sonnet-5", max_tokens=50,
                                      messages=[{"role": "user", "content": "via the SDK"}])
    assert message.content[0].text == "You said: via the SDK"


def test_anthropic_client_without_a_server_says_so(local):
    with pytest.raises(ClaudeError, match="needs a Jupyter server"):
        claude_nb.anthropic_client()
