"""The result cache: keys, the store, and hits through every path that answers requests (the
bridge, /v1/messages over HTTP, batches, the in-process client), proved against the recording
upstream: a hit sends nothing upstream and bills nothing."""
from __future__ import annotations

import asyncio
import json

import pytest

import claude_nb
from claude_nb.bridge.events import MessageAccumulator
from claude_nb.protocol.errors import InvalidRequest
from claude_nb.protocol.models import resolve_model
from claude_nb.service.batches import BatchRunner, results_lines
from claude_nb.service.cache import (ResultCache, parse_cache_header, replay_events,
                                     request_key)
from claude_nb.service.store import DB_NAME, Store
from tests.support.fake_upstream import Reply
from tests.support.http import post


def body(prompt: str, **kw) -> dict:
    return {"model": "haiku", "max_tokens": 50, "messages": [{"role": "user", "content": prompt}],
            **kw}


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / DB_NAME)
    yield s
    s.close()


# -- keys ---------------------------------------------------------------------------------------
def test_the_key_covers_what_shapes_the_answer_and_nothing_else():
    base = request_key(body("hi"))
    assert request_key(body("hi")) == base
    assert request_key({**body("hi"), "stream": True, "metadata": {"user_id": "u"}}) == base
    # an alias and the id it resolves to (as the installed CLI resolves it) are one request
    assert request_key({**body("hi"), "model": resolve_model("haiku").id}) == base
    # key order inside the request does not matter
    assert request_key(dict(reversed(list(body("hi").items())))) == base
    for changed in (body("hello"), {**body("hi"), "max_tokens": 51}, {**body("hi"), "model": "sonnet"},
                    body("hi", system="Be brief."), body("hi", temperature=0.5),
                    body("hi", output_config={"format": {"type": "json_schema",
                                                         "schema": {"type": "object"}}}),
                    body("hi", stop_sequences=["x"])):
        assert request_key(changed) != base
    # the beta spelling of the schema is the same request as output_config.format
    fmt = {"type": "json_schema", "schema": {"type": "object"}}
    assert request_key(body("hi", output_format=fmt)) == request_key(body("hi", output_config={"format": fmt}))


def test_the_cache_header_is_on_off_or_a_400():
    assert parse_cache_header("use") and parse_cache_header("1") and parse_cache_header("true")
    assert not parse_cache_header(None) and not parse_cache_header("off")
    with pytest.raises(InvalidRequest, match="claude-nb-cache"):
        parse_cache_header("sometimes")


# -- the store --------------------------------------------------------------------------------
def message(text: str, stop_reason: str = "end_turn", **usage) -> dict:
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5-20251001",
            "content": [{"type": "text", "text": text}], "stop_reason": stop_reason,
            "stop_sequence": None, "usage": {"input_tokens": 20, "output_tokens": 7, **usage}}


def test_only_complete_answers_are_kept_and_a_hit_is_the_same_answer_with_a_new_id(store):
    cache = ResultCache(store)
    assert not cache.save(body("a"), message("cut", stop_reason=None))
    assert not cache.save(body("a"), message("no", stop_reason="refusal"))
    assert cache.answer(body("a"), request_id="r", source="api") is None
    assert cache.save(body("a"), message("yes"))
    events = cache.answer(body("a"), request_id="r1", source="api")
    acc = MessageAccumulator()
    for event in events[:-1]:
        acc.add(event)
    assert acc.message["content"] == [{"type": "text", "text": "yes"}]
    assert acc.message["stop_reason"] == "end_turn" and acc.message["id"] != "msg_1"
    assert events[-1] == {"type": "claude_nb.final_usage", "usage": {"input_tokens": 20, "output_tokens": 7}}
    assert store.cache_stats()["hits"] == 1
    assert [row[1:4] for row in store.cache_hits_between(0, 2e9)] == [("claude-haiku-4-5-20251001", 20, 7)]


def test_tool_use_and_thinking_blocks_replay_whole():
    original = {**message("x"), "stop_reason": "tool_use", "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "kettle", "n": 2}}]}
    acc = MessageAccumulator()
    for event in replay_events(original):
        acc.add(event)
    assert acc.message["content"] == original["content"]
    assert acc.message["stop_reason"] == "tool_use"


def test_the_size_limit_drops_the_least_recently_used(store):
    cache = ResultCache(store)
    cache.save(body("q0"), message("x" * 500))
    entry = store.cache_stats()["size_bytes"]
    cache.max_size_mb = 3.5 * entry / (1024 * 1024)       # room for three answers
    for i in (1, 2):
        cache.save(body(f"q{i}"), message("x" * 500))
    assert store.cache_stats()["entries"] == 3
    cache.lookup_many([body("q0")])                         # q0 used again: q1 is the oldest now
    cache.save(body("q3"), message("x" * 500))
    kept = cache.contains_many([body(f"q{i}") for i in range(4)])
    assert kept[0] and kept[3] and not kept[1]
    assert store.cache_stats()["entries"] == 3
    cache.max_size_mb = 0.0                                 # lowering the limit trims at once
    assert store.cache_stats()["entries"] == 0


def test_schema_migration_keeps_a_version_2_store(tmp_path):
    import sqlite3
    path = tmp_path / DB_NAME
    Store(path).close()
    db = sqlite3.connect(path)
    for table in ("result_cache", "cache_hits", "batch_options"):
        db.execute(f"DROP TABLE {table}")
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    again = Store(path)
    try:
        assert again.cache_stats() == {"entries": 0, "size_bytes": 0, "hits": 0}
    finally:
        again.close()


# -- the bridge, with the real CLI -----------------------------------------------------------------
async def collect(bridge, request, **kw):
    return [e async for e in bridge.stream(request, **kw)]


async def test_a_hit_runs_no_cli_and_sends_nothing_upstream(bridge, upstream, store):
    ResultCache(store).attach(bridge)
    store.attach(bridge)
    first = await collect(bridge, body("Name a colour"), cache=True)
    assert first[0] == {"type": "claude_nb.cache", "hit": False}
    assert len(upstream.message_requests) == 1
    second = await collect(bridge, body("Name a colour"), cache=True, source="magic")
    assert second[0] == {"type": "claude_nb.cache", "hit": True}
    assert len(upstream.message_requests) == 1            # answered from the store
    text = [e["delta"]["text"] for e in second if e["type"] == "content_block_delta"]
    assert "".join(text) == "You said: Name a colour"
    # without cache=True the same request runs again
    plain = await collect(bridge, body("Name a colour"))
    assert not any(e["type"] == "claude_nb.cache" for e in plain)
    assert len(upstream.message_requests) == 2
    # the ledger: two billed runs; the hit apart, at zero cost
    assert len(store.runs_between()) == 2
    assert len(store.cache_hits_between(0, 2e9)) == 1


async def test_errors_are_never_cached(bridge, upstream, store):
    ResultCache(store).attach(bridge)
    # every attempt refused (some CLI versions retry a 400 once by themselves)
    upstream.responder = lambda rec: Reply.error(400, "invalid_request_error", "refused")
    with pytest.raises(Exception, match="refused"):
        await collect(bridge, body("try me"), cache=True)
    refused = len(upstream.message_requests)
    upstream.responder = None
    events = await collect(bridge, body("try me"), cache=True)
    assert events[0]["hit"] is False and len(upstream.message_requests) == refused + 1
    assert store.cache_stats()["entries"] == 1


# -- batches --------------------------------------------------------------------------------------
async def test_a_cached_batch_is_answered_at_creation_and_misses_fill_the_cache(bridge, upstream, store):
    ResultCache(store).attach(bridge)
    runner = BatchRunner(store, bridge)
    await runner.start()
    try:
        requests = [(f"r{i}", body(f"item {i}")) for i in range(3)]
        first = await runner.create(requests, use_cache=True)
        await runner.wait(first.id, timeout=60)
        assert len(upstream.message_requests) == 3
        second = await runner.create(requests + [("r3", body("item 3"))], use_cache=True)
        await runner.wait(second.id, timeout=60)
        assert len(upstream.message_requests) == 4          # only the new row ran
        results = [json.loads(line) for line in results_lines(store, second.id)]
        assert [r["result"].get("cached", False) for r in results] == [True, True, True, False]
        assert all(r["result"]["type"] == "succeeded" for r in results)
        # all cached: the batch has ended when create returns
        third = await runner.create(requests, use_cache=True)
        assert third.ended and third.succeeded == 3
        # a batch without the option runs everything
        fourth = await runner.create(requests[:1])
        await runner.wait(fourth.id, timeout=60)
        assert len(upstream.message_requests) == 5
    finally:
        await runner.stop()


# -- over HTTP ------------------------------------------------------------------------------------
async def test_messages_over_http_hit_with_the_header(cli_env, jp_fetch, claude_app, upstream):
    headers = {"claude-nb-cache": "use"}
    for stream in (False, True):
        request = body(f"over http {stream}", stream=stream)
        first = await post(jp_fetch, "v1/messages", request, headers)
        again = await post(jp_fetch, "v1/messages", request, headers)
        assert first.code == again.code == 200, (first.body, again.body)
        assert first.headers["claude-nb-cache"] == "miss" and again.headers["claude-nb-cache"] == "hit"
    assert len(upstream.message_requests) == 2
    hit = json.loads((await post(jp_fetch, "v1/messages", body("over http False"), headers)).body)
    assert hit["content"][0]["text"] == "You said: over http False"
    # no header: no cache, no header back
    plain = await post(jp_fetch, "v1/messages", body("over http False"))
    assert "claude-nb-cache" not in plain.headers and len(upstream.message_requests) == 3
    bad = await post(jp_fetch, "v1/messages", body("x"), {"claude-nb-cache": "maybe"})
    assert bad.code == 400 and json.loads(bad.body)["error"]["type"] == "invalid_request_error"
    # state, lookup and clear
    info = json.loads((await jp_fetch("claude_nb", "cache")).body)
    assert info["entries"] == 2 and info["hits"] == 3
    lookup = json.loads((await post(jp_fetch, "claude_nb/cache/lookup",
                                    {"requests": [body("over http False"), body("never")]})).body)
    assert lookup["cached"] == [True, False] and lookup["concurrency"] >= 1
    cleared = json.loads((await jp_fetch("claude_nb", "cache", method="DELETE")).body)
    assert cleared == {"type": "cache_cleared", "deleted": 2}
    again = await post(jp_fetch, "v1/messages", body("over http False"), headers)
    assert again.headers["claude-nb-cache"] == "miss" and len(upstream.message_requests) == 4


async def test_usage_report_counts_hits_apart_only_when_asked(cli_env, jp_fetch, claude_app, upstream):
    for _ in range(3):
        await post(jp_fetch, "v1/messages", body("count me"), {"claude-nb-cache": "use"})
    from datetime import datetime, timedelta, timezone
    since = (datetime.now(timezone.utc) - timedelta(days=2)).strftime("%Y-%m-%dT00:00:00Z")
    plain = json.loads((await jp_fetch("v1", "organizations", "usage_report", "messages",
                                       params={"starting_at": since,
                                               "bucket_width": "1d", "limit": 31})).body)
    # the API's own shape is unchanged unless asked
    assert all("claude_nb_cache_hits" not in r for b in plain["data"] for r in b["results"])
    report = json.loads((await jp_fetch("v1", "organizations", "usage_report", "messages",
                                        params={"starting_at": since,
                                                "bucket_width": "1d", "limit": 31,
                                                "include_cache_hits": "true",
                                                "group_by[]": "model"})).body)
    results = [r for b in report["data"] for r in b["results"]]
    assert sum(r["claude_nb_cache_hits"]["requests"] for r in results) == 2
    assert sum(r["output_tokens"] for r in results) == 12        # the one billed run only
    assert sum(r["claude_nb_cache_hits"]["output_tokens"] for r in results) == 24


# -- the in-process client ------------------------------------------------------------------------
def test_claude_message_cache_is_opt_in_and_the_answer_says_hit(local, upstream):
    from claude_nb import claude
    first = claude.answer("opt in", model="haiku", cache=True)
    hit = claude.answer("opt in", model="haiku", cache=True)
    assert not first.cached and hit.cached and hit.text == first.text
    assert hit.cost_usd == 0.0 and first.cost_usd > 0
    assert hit.metadata()["cached"] is True
    assert len(upstream.message_requests) == 1
    claude.answer("opt in", model="haiku")                      # the default: no cache
    assert len(upstream.message_requests) == 2
    assert claude_nb.cache_info()["entries"] == 1
    assert claude_nb.cache_clear() == 1
    assert not claude.answer("opt in", model="haiku", cache=True).cached
    assert len(upstream.message_requests) == 3


async def test_an_http_kernel_uses_the_servers_cache(served, upstream):
    """The kernel's HTTP transport sends the header; a hit is seen by the client as cached."""
    from claude_nb.kernel.client import Claude
    c = Claude(served, model="haiku")
    first = await asyncio.to_thread(c.answer, "shared", cache=True)
    hit = await asyncio.to_thread(c.answer, "shared", cache=True)
    assert not first.cached and hit.cached and hit.cost_usd == 0.0
    assert len(upstream.message_requests) == 1
    assert await asyncio.to_thread(claude_nb.cache_clear) == 1
