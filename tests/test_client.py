"""The client's two transports against the real CLI and the recording upstream."""
from __future__ import annotations

import asyncio

import pytest

import claude_nb
from claude_nb import client as client_mod
from claude_nb.client import Claude, ClaudeError, InProcessTransport
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
