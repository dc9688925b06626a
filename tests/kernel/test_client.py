"""The client's two transports against the real CLI and the recording upstream."""
from __future__ import annotations

import asyncio
import os
import time

import pytest

import claude_nb
from claude_nb.kernel.client import Claude
from claude_nb.kernel.errors import ClaudeError
from claude_nb.kernel.transports import HttpTransport, discover
from tests.support.fake_upstream import HoldWhere, Reply


# -- in-process -----------------------------------------------------------------------------
def test_message_in_process_reaches_upstream_with_its_options(local, upstream):
    runs = []
    local.bridge.run_listeners.append(runs.append)
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
    assert [m["role"] for m in sent.conversation()] == ["user", "assistant", "user"]
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
    monkeypatch.setattr(discover, "_default_transport", transport)
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
    found = discover.discover_transport()
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


async def test_chat_over_http_keeps_its_process_until_the_session_ends(served, upstream, jp_serverapp):
    # What %%claude cells in a kernel do: a message thread (the second turn continues it on the
    # process the first left), then DELETE of the thread on reset.
    client, key = Claude(), "magic-test-1"

    def chat():
        history = [{"role": "user", "content": "remember 42"}]
        first = client.answer(messages=history, session=key)
        history += [{"role": "assistant", "content": first.text},
                    {"role": "user", "content": "what number?"}]
        second = client.answer(messages=history, session=key)
        pool = server_bridge(jp_serverapp).pool
        hits, kept = pool.counts["session_hits"], len(pool.sessions) == 1
        client.end_session(key)
        return second.text, hits, kept, len(pool.sessions) == 1

    text, hits, kept_before, kept_after = await asyncio.to_thread(chat)
    assert text == "You said: what number?"
    assert upstream.message_requests[-1].user_texts() == ["remember 42", "what number?"]
    assert hits == 1 and kept_before and not kept_after


async def test_a_chat_that_starts_a_new_thread_lets_the_old_ones_process_go(served, upstream, jp_serverapp):
    # A %%claude cell with its own --system cannot continue the chat's thread: the whole history
    # goes under a new thread, and the old thread's kept CLI process is not left waiting.
    client, key = Claude(), "magic-test-2"

    def chat():
        history = [{"role": "user", "content": "remember 42"}]
        first = client.answer(messages=history, session=key)
        pool = server_bridge(jp_serverapp).pool
        kept_first = list(pool.sessions)
        history += [{"role": "assistant", "content": first.text},
                    {"role": "user", "content": "what number?"}]
        second = client.answer(messages=history, session=key, system="Answer with the number only.")
        return second.text, kept_first, list(pool.sessions)

    text, kept_first, kept_now = await asyncio.to_thread(chat)
    assert text == "You said: what number?"
    sent = upstream.message_requests[-1]
    assert sent.user_texts() == ["remember 42", "what number?"] and "number only" in sent.system_text()
    assert len(kept_first) == 1 and len(kept_now) == 1 and kept_now != kept_first


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


# -- batches from DataFrames ----------------------------------------------------------------
def reviews_frame():
    import pandas as pd
    return pd.DataFrame({"product": ["kettle", "lamp", "toaster"],
                         "review": ["I love it", "Broke at once", "It is fine"]},
                        index=["a", "b", "c"])


def check_batch_frame(frame, upstream):
    assert list(frame.index) == ["a", "b", "c"]
    assert list(frame.columns) == ["product", "review", "text", "status", "cached", "input_tokens",
                                   "output_tokens", "cost_usd", "error"]
    assert not frame["cached"].any()
    assert list(frame["text"]) == ["You said: Review of kettle: I love it",
                                   "You said: Review of lamp: Broke at once",
                                   "You said: Review of toaster: It is fine"]
    assert list(frame["status"]) == ["succeeded"] * 3
    assert (frame["output_tokens"] > 0).all() and (frame["cost_usd"] > 0).all()
    assert frame["error"].isna().all()
    sent = sorted(r.user_texts()[-1] for r in upstream.message_requests)
    assert sent == ["Review of kettle: I love it", "Review of lamp: Broke at once",
                    "Review of toaster: It is fine"]


async def test_batch_from_a_dataframe_through_the_server(served, upstream, jp_serverapp, monkeypatch):
    await jp_serverapp.extension_manager.start_all_extensions()   # starts the batch runner
    monkeypatch.setattr(discover, "_default_transport", served)
    job = await asyncio.to_thread(claude_nb.batch, reviews_frame(),
                                  prompt="Review of {product}: {review}", model="haiku",
                                  max_tokens=30)
    assert job.id.startswith("msgbatch_") and job.total == 3
    await asyncio.to_thread(job.wait, progress=False, poll_interval=0.2)
    assert job.ended and job.request_counts["succeeded"] == 3
    frame = await asyncio.to_thread(job.to_dataframe)
    check_batch_frame(frame, upstream)
    assert all(r.body["max_tokens"] == 30 and "haiku" in r.body["model"]
               for r in upstream.message_requests)
    # re-attached by id (as after a kernel restart): the inputs come back too
    again = await asyncio.to_thread(claude_nb.batch_job, job.id)
    assert again.ended
    assert (await asyncio.to_thread(again.to_dataframe)).equals(frame)


async def test_batch_rows_fail_alone_and_progress_prints(served, upstream, jp_serverapp, capsys):
    await jp_serverapp.extension_manager.start_all_extensions()

    def respond(rec):
        text = rec.user_texts()[-1]
        if "bad" in text:
            return Reply.error(400, "invalid_request_error", "this row is refused")
        return Reply.text("ok: " + text)
    upstream.responder = respond
    job = await asyncio.to_thread(claude_nb.batch, ["good one", "bad one", "good two"])
    await asyncio.to_thread(job.wait, poll_interval=0.2)
    out = capsys.readouterr().out
    assert f"Batch {job.id} ended" in out and "2 succeeded, 1 errored" in out
    frame = await asyncio.to_thread(job.to_dataframe)
    assert list(frame["input"]) == ["good one", "bad one", "good two"]
    assert list(frame["status"]) == ["succeeded", "errored", "succeeded"]
    assert frame.loc[1, "error"].startswith("invalid_request_error: ") and \
        "this row is refused" in frame.loc[1, "error"]
    assert frame.loc[0, "text"] == "ok: good one" and frame["text"].isna()[1]


async def test_the_progress_bar_moves_while_the_batch_runs_on_the_server(served, upstream, jp_serverapp,
                                                                        capsys):
    await jp_serverapp.extension_manager.start_all_extensions()
    upstream.responder = held = HoldWhere("held")
    job = await asyncio.to_thread(claude_nb.batch, ["quick", "held"])
    waiting = asyncio.ensure_future(asyncio.to_thread(job.wait, poll_interval=0.1))
    printed, deadline = "", time.monotonic() + 120
    try:
        while "1/2 answered" not in printed:      # one row answered, the other still held
            assert time.monotonic() < deadline and not waiting.done(), printed
            await asyncio.sleep(0.1)
            printed += capsys.readouterr().out
    finally:
        held.release()
    await waiting
    printed += capsys.readouterr().out
    assert "2/2 answered" in printed and f"Batch {job.id} ended" in printed


async def test_batch_cancel_through_the_server(served, upstream, jp_serverapp):
    await jp_serverapp.extension_manager.start_all_extensions()
    upstream.responder = lambda rec: Reply.text("slow " * 200, delay_per_chunk=0.05)
    job = await asyncio.to_thread(claude_nb.batch, [f"q{i}" for i in range(6)])
    await asyncio.to_thread(job.cancel)
    await asyncio.to_thread(job.wait, progress=False, poll_interval=0.2)
    frame = await asyncio.to_thread(job.to_dataframe)
    assert job.ended and "canceled" in set(frame["status"])
    assert frame.loc[frame["status"] == "canceled", "error"].str.contains("canceled").all()


def test_batch_output_columns_never_hide_input_columns(local, upstream):
    import pandas as pd
    job = claude_nb.batch(pd.DataFrame({"text": ["one", "two"]}), prompt="Say {text}")
    frame = job.wait(progress=False, poll_interval=0.2).to_dataframe()
    assert list(frame["text"]) == ["one", "two"]
    assert list(frame["text_claude"]) == ["You said: Say one", "You said: Say two"]


def test_batch_in_process_same_job_api(local, upstream):
    job = claude_nb.batch(reviews_frame(), prompt="Review of {product}: {review}", model="haiku")
    assert job.id.startswith("msgbatch_")
    check_batch_frame(job.wait(progress=False, poll_interval=0.2).to_dataframe(), upstream)
    again = claude_nb.batch_job(job.id)
    assert list(again.to_dataframe()["product"]) == ["kettle", "lamp", "toaster"]


def test_batch_refuses_a_prompt_that_names_no_column(local, upstream):
    with pytest.raises(ClaudeError, match="names no column"):
        claude_nb.batch(reviews_frame(), prompt="Classify this")
    with pytest.raises(ClaudeError, match="prompt="):
        claude_nb.batch(reviews_frame())
    with pytest.raises(ClaudeError, match="No message batch"):
        claude_nb.batch_job("msgbatch_doesnotexist")
    assert upstream.message_requests == []


# -- usage and cost reports ------------------------------------------------------------------
def ran_model(upstream) -> str:
    models = {r.body["model"] for r in upstream.message_requests}
    assert len(models) == 1, models
    return models.pop()


def check_reports(upstream, upstream_runs: int):
    usage = claude_nb.usage_report(bucket_width="1h")
    assert list(usage.columns) == ["starting_at", "ending_at", "model", "uncached_input_tokens",
                                   "cache_creation_5m_input_tokens", "cache_creation_1h_input_tokens",
                                   "cache_read_input_tokens", "output_tokens", "web_search_requests",
                                   "cached_requests", "cached_input_tokens", "cached_output_tokens"]
    by_model = usage.groupby("model")[["uncached_input_tokens", "output_tokens"]].sum()
    ran = ran_model(upstream)          # the model `haiku` ran on this CLI, not the alias
    assert by_model.loc[ran, "output_tokens"] == 7 * upstream_runs
    assert by_model.loc[ran, "uncached_input_tokens"] == 20 * upstream_runs
    cost = claude_nb.cost_report()
    assert {"starting_at", "description", "token_type", "model", "cost_usd", "currency"} <= set(cost.columns)
    assert cost["cost_usd"].sum() > 0 and set(cost["currency"]) == {"USD"}
    total = claude_nb.cost_report(group_by=[])
    assert list(total.columns) == ["starting_at", "ending_at", "cost_usd", "currency"]
    assert abs(total["cost_usd"].sum() - cost["cost_usd"].sum()) < 1e-9


async def test_reports_through_the_server(served, upstream, jp_serverapp):
    await jp_serverapp.extension_manager.start_all_extensions()
    for i in range(2):
        upstream.push(Reply.text("counted", input_tokens=20, output_tokens=7))
        await asyncio.to_thread(claude_nb.claude.message, f"run {i}", model="haiku")
    await asyncio.to_thread(check_reports, upstream, 2)


def test_reports_in_process_count_magic_runs(local, upstream):
    upstream.push(Reply.text("counted", input_tokens=20, output_tokens=7))
    claude_nb.claude.message("one run", model="haiku")
    check_reports(upstream, 1)
