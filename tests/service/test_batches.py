"""Message batches: request checks, shapes, and the resumable runner against the real CLI."""
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from claude_nb.service import batches
from claude_nb.service.batches import (HOST, BatchRunner, batch_json, list_page, parse_create_body,
                               results_lines, validate_batch_requests)
from claude_nb.protocol.errors import InvalidRequest, NotFound, RequestTooLarge
from claude_nb.service.store import DB_NAME, Store
from tests.support.fake_upstream import Reply
from tests.support.script import Script
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def params(prompt: str, **kw) -> dict:
    return {"model": "sonnet", "max_tokens": 30, "messages": [{"role": "user", "content": prompt}], **kw}


def requests(n: int, prefix: str = "q") -> list:
    return [(f"r{i}", params(f"{prefix}{i}")) for i in range(n)]


def until(condition, timeout: float = 60.0):
    return wait_until(condition, timeout)


def parse_results(store, batch_id) -> list[dict]:
    raw = b"".join(results_lines(store, batch_id))
    assert raw.endswith(b"\n") and b"\n\n" not in raw and not raw.startswith(b"\n")
    return [json.loads(line) for line in raw.split(b"\n")[:-1]]


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / DB_NAME)
    yield s
    s.close()


@pytest.fixture
def runner(store, bridge, jp_asyncio_loop):
    store.attach(bridge)
    r = BatchRunner(store, bridge, retry_base_delay=0.01, poll_interval=0.2)
    yield r
    jp_asyncio_loop.run_until_complete(r.stop())


# -- checking a create request ---------------------------------------------------------------
def test_a_valid_batch_parses_to_custom_ids_and_params():
    raw = json.dumps({"requests": [{"custom_id": "a-1_B", "params": params("x")},
                                   {"custom_id": "b", "params": params("y", stream=False)}]}).encode()
    assert parse_create_body(raw) == [("a-1_B", params("x")), ("b", params("y", stream=False))]


@pytest.mark.parametrize("body, message", [
    ({}, "requests: Field required"),
    ({"requests": []}, "requests: a batch needs at least one request"),
    ({"requests": {}}, "requests: Input should be a valid list"),
    ({"requests": [], "extra": 1}, "extra: Extra inputs are not permitted"),
    ({"requests": ["x"]}, "requests.0: Input should be an object"),
    ({"requests": [{"custom_id": "a", "params": params("x"), "more": 1}]},
     "requests.0.more: Extra inputs are not permitted"),
    ({"requests": [{"params": params("x")}]}, "requests.0.custom_id: Field required"),
    ({"requests": [{"custom_id": "has space", "params": params("x")}]},
     "requests.0.custom_id: 'has space' should match pattern"),
    ({"requests": [{"custom_id": "x" * 65, "params": params("x")}]}, "requests.0.custom_id: "),
    ({"requests": [{"custom_id": "a", "params": params("x")}, {"custom_id": "a", "params": params("y")}]},
     "requests.1.custom_id: 'a' is already used by requests.0"),
    ({"requests": [{"custom_id": "a"}]}, "requests.0.params: Field required"),
    ({"requests": [{"custom_id": "a", "params": params("x")},
                   {"custom_id": "b", "params": {**params("y"), "max_tokens": 0}}]},
     "requests.1.params.max_tokens: Input should be greater than or equal to 1"),
    ({"requests": [{"custom_id": "a", "params": {"model": "sonnet", "max_tokens": 5, "messages": []}}]},
     "requests.0.params.messages: at least one message is required"),
    ({"requests": [{"custom_id": "a", "params": params("x", stream=True)}]},
     "requests.0.params.stream: streaming is not available in message batches"),
    ({"requests": [{"custom_id": "a", "params": {**params("x"), "model": "gpt-4"}}]},
     "requests.0.params.model: 'gpt-4' is not a known model"),
])
def test_bad_batches_are_400_naming_the_field(body, message):
    with pytest.raises(InvalidRequest) as info:
        validate_batch_requests(body)
    assert info.value.status == 400
    assert info.value.message.startswith(message), info.value.message


def test_batch_size_limits():
    one = {"custom_id": "a", "params": params("x")}
    with pytest.raises(InvalidRequest, match="at most 100,000 requests"):
        validate_batch_requests({"requests": [one] * 100_001})
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        parse_create_body(b"{")


def test_batch_body_over_the_limit_is_413(monkeypatch):
    monkeypatch.setattr(batches, "MAX_BATCH_BYTES", 1024 * 1024)
    raw = json.dumps({"requests": [{"custom_id": "a", "params": params("x" * (1024 * 1024))}]}).encode()
    with pytest.raises(RequestTooLarge):
        parse_create_body(raw)


def test_batch_limits_match_the_api():
    assert batches.MAX_BATCH_BYTES == 256 * 1024 * 1024 and batches.MAX_BATCH_REQUESTS == 100_000


# -- shapes ----------------------------------------------------------------------------------
def test_a_new_batch_counts_everything_as_processing(store):
    batch = store.create_batch(requests(3), expires_at=time.time() + 60)
    shape = batch_json(store.get_batch(batch.id), base_url="http://h:1/pre/")
    assert shape["type"] == "message_batch" and shape["processing_status"] == "in_progress"
    assert shape["request_counts"] == {"processing": 3, "succeeded": 0, "errored": 0,
                                       "canceled": 0, "expired": 0}
    assert shape["results_url"] is None and shape["ended_at"] is None
    assert shape["archived_at"] is None and shape["cancel_initiated_at"] is None
    assert shape["created_at"].endswith("Z") and shape["expires_at"] > shape["created_at"]
    with pytest.raises(InvalidRequest, match="still in_progress"):
        list(results_lines(store, batch.id))


def test_results_url_is_built_on_the_servers_own_base(store):
    batch = store.create_batch(requests(1), expires_at=time.time() + 60)
    store.begin_cancel(batch.id)
    store.finish_batch(batch.id)
    ended = store.get_batch(batch.id)
    assert batch_json(ended, base_url="http://127.0.0.1:8888/user/me/")["results_url"] == \
        f"http://127.0.0.1:8888/user/me/v1/messages/batches/{batch.id}/results"
    assert batch_json(ended)["results_url"] == f"/v1/messages/batches/{batch.id}/results"
    assert batch_json(ended)["request_counts"] == {"processing": 0, "succeeded": 0, "errored": 0,
                                                   "canceled": 1, "expired": 0}


def test_batch_list_pages(store):
    ids = [store.create_batch(requests(1), expires_at=time.time() + 60).id for _ in range(3)][::-1]
    page = list_page(store, limit="2")
    assert [b["id"] for b in page["data"]] == ids[:2] and page["has_more"]
    assert (page["first_id"], page["last_id"]) == (ids[0], ids[1])
    page = list_page(store, after_id=page["last_id"], limit=2)
    assert [b["id"] for b in page["data"]] == ids[2:] and not page["has_more"]
    page = list_page(store, before_id=ids[2])
    assert [b["id"] for b in page["data"]] == ids[:2] and not page["has_more"]
    empty = list_page(store, after_id=ids[2])
    assert empty == {"data": [], "has_more": False, "first_id": None, "last_id": None}
    for bad in ({"limit": 0}, {"limit": "x"}, {"limit": 1001}, {"after_id": ids[0], "before_id": ids[1]}):
        with pytest.raises(InvalidRequest):
            list_page(store, **bad)


# -- running batches through the real CLI ----------------------------------------------------
async def test_every_request_runs_once_and_results_are_jsonl(runner, store, upstream):
    script = Script(upstream)
    await runner.start()
    batch = await runner.create(requests(6))
    assert batch_json(batch)["request_counts"]["processing"] == 6
    ended = await runner.wait(batch.id, timeout=120)
    shape = batch_json(ended)
    assert shape["processing_status"] == "ended" and shape["ended_at"] is not None
    assert shape["request_counts"] == {"processing": 0, "succeeded": 6, "errored": 0,
                                       "canceled": 0, "expired": 0}
    results = parse_results(store, batch.id)
    assert [r["custom_id"] for r in results] == [f"r{i}" for i in range(6)]
    for i, line in enumerate(results):
        assert line["result"]["type"] == "succeeded"
        message = line["result"]["message"]
        assert message["type"] == "message" and message["stop_reason"] == "end_turn"
        assert message["content"] == [{"type": "text", "text": f"You said: q{i}"}]
        assert message["usage"]["output_tokens"] == 12
    assert script.counts == Counter({f"q{i}": 1 for i in range(6)})
    runs = store.runs_between()
    assert len(runs) == 6 and {r.source for r in runs} == {"batch"}


async def test_an_errored_result_holds_the_whole_envelope_and_4xx_is_not_retried(runner, store, upstream):
    script = Script(upstream).always("q1", Reply.error(400, "invalid_request_error",
                                                       "messages.0.content: scripted refusal"))
    await runner.start()
    batch = await runner.create(requests(2))
    ended = await runner.wait(batch.id, timeout=120)
    assert (ended.succeeded, ended.errored) == (1, 1)
    errored = parse_results(store, batch.id)[1]
    assert errored["custom_id"] == "r1"
    error = errored["result"]["error"]
    assert errored["result"]["type"] == "errored"
    assert error["type"] == "error" and error["request_id"].startswith("req_")
    assert error["error"]["type"] == "invalid_request_error"
    assert "scripted refusal" in error["error"]["message"]
    assert len(script.runs["q1"]) == 1          # one CLI run: the runner did not retry


async def test_an_overloaded_request_is_retried_then_succeeds(runner, store, upstream):
    script = Script(upstream).on("q0", Reply.error(529, "overloaded_error", "Overloaded"),
                                 Reply.error(429, "rate_limit_error", "slow down"))
    runner.max_retries = 2
    await runner.start()
    batch = await runner.create(requests(1))
    await runner.wait(batch.id, timeout=120)
    [line] = parse_results(store, batch.id)
    assert line["result"]["type"] == "succeeded"
    assert line["result"]["message"]["content"][0]["text"] == "You said: q0"
    assert script.counts["q0"] == 3


async def test_when_retries_run_out_the_result_is_errored(runner, store, upstream):
    script = Script(upstream).on("q0", *[Reply.error(529, "overloaded_error", "Overloaded")] * 3)
    runner.max_retries = 2
    await runner.start()
    batch = await runner.create(requests(1))
    await runner.wait(batch.id, timeout=120)
    [line] = parse_results(store, batch.id)
    assert line["result"]["error"]["error"]["type"] == "overloaded_error"
    assert script.counts["q0"] == 3


async def test_cancel_mid_batch_stops_pending_at_once_and_ends_the_running_one(runner, store,
                                                                              upstream, bridge):
    script = Script(upstream).on("q1", Reply.text("never seen", hang=30))
    runner.workers_per_batch = 1
    await runner.start()
    batch = await runner.create(requests(5))
    await until(lambda: script.counts["q1"] == 1)          # q0 done, q1 running, q2.. pending
    canceling = await runner.cancel(batch.id)
    shape = batch_json(canceling)
    assert shape["processing_status"] == "canceling" and shape["cancel_initiated_at"] is not None
    assert shape["request_counts"]["processing"] == 5
    ended = await runner.wait(batch.id, timeout=60)
    assert (ended.succeeded, ended.canceled, ended.errored) == (1, 4, 0)
    results = parse_results(store, batch.id)
    assert [r["result"]["type"] for r in results] == ["succeeded"] + ["canceled"] * 4
    assert results[1]["result"] == {"type": "canceled"}
    assert set(script.counts) == {"q0", "q1"}              # nothing pending was started
    assert not bridge.live                                  # the running CLI was ended
    with pytest.raises(InvalidRequest, match="already ended"):
        await runner.cancel(batch.id)


async def test_unfinished_requests_expire_on_a_shortened_clock(store, bridge, upstream):
    store.attach(bridge)
    now = [time.time()]
    runner = BatchRunner(store, bridge, clock=lambda: now[0], batch_ttl=600, workers_per_batch=1,
                         poll_interval=3600)
    script = Script(upstream).on("q1", Reply.text("too late", hang=30))
    await runner.start()
    try:
        batch = await runner.create(requests(4))
        assert batch.expires_at == pytest.approx(batch.created_at + 600)
        await until(lambda: script.counts["q1"] == 1)
        now[0] += 601
        await runner.poll()
        ended = await runner.wait(batch.id, timeout=60)
        assert (ended.succeeded, ended.expired) == (1, 3)
        assert [r["result"] for r in parse_results(store, batch.id)][1:] == [{"type": "expired"}] * 3
        assert set(script.counts) == {"q0", "q1"}
        assert not bridge.live
    finally:
        await runner.stop()


async def test_live_requests_go_before_queued_batch_work(store, bridge, upstream):
    store.attach(bridge)
    bridge.max_concurrency = 1
    runner = BatchRunner(store, bridge, workers_per_batch=3)
    script = Script(upstream).on("b0", Reply.text("slow", hang=1.5))
    await runner.start()
    try:
        batch = await runner.create(requests(3, prefix="b"))
        await until(lambda: script.counts["b0"] == 1 and bridge.limiter.queued == 2)
        live = await bridge.create(params("live"), source="api")
        assert live["content"][0]["text"] == "You said: live"
        await runner.wait(batch.id, timeout=60)
        assert script.order[:2] == ["b0", "live"]
    finally:
        await runner.stop()


# -- surviving restarts ----------------------------------------------------------------------
def dead_owner() -> str:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return f"{HOST}:{proc.pid}:gone"


async def test_after_a_crash_every_request_ends_with_exactly_one_result(tmp_path, bridge, upstream):
    path = tmp_path / DB_NAME
    # The state a runner leaves when killed: two results stored, two requests running, two pending.
    crashed = Store(path)
    batch = crashed.create_batch(requests(6), expires_at=time.time() + 3600, owner=dead_owner())
    owner = crashed.get_batch(batch.id).owner
    for item in crashed.claim_items(batch.id, owner, limit=4)[:2]:
        crashed.save_result(batch.id, item.idx, {"type": "succeeded", "message": {"id": f"before-{item.idx}"}})
    crashed.close()

    script = Script(upstream)
    store = Store(path)
    store.attach(bridge)
    runner = BatchRunner(store, bridge)
    await runner.start()
    try:
        ended = await runner.wait(batch.id, timeout=120)
    finally:
        await runner.stop()
    results = parse_results(store, batch.id)
    assert [r["custom_id"] for r in results] == [f"r{i}" for i in range(6)]
    assert [r["result"]["message"]["id"] for r in results[:2]] == ["before-0", "before-1"]
    assert all(r["result"]["type"] == "succeeded" for r in results)
    assert script.counts == Counter({"q2": 1, "q3": 1, "q4": 1, "q5": 1})
    assert store.item_attempts(batch.id) == {"r0": 1, "r1": 1, "r2": 2, "r3": 2, "r4": 1, "r5": 1}
    assert ended.succeeded == 6
    assert store.integrity_check() == "ok"
    store.close()


RUNNER_SCRIPT = """
import asyncio, sys
from claude_nb.service.batches import BatchRunner
from claude_nb.bridge import ClaudeBridge
from claude_nb.service.store import Store

async def main():
    store = Store(sys.argv[1])
    bridge = ClaudeBridge()
    store.attach(bridge)
    runner = BatchRunner(store, bridge, workers_per_batch=1)
    await runner.start()
    batch = await runner.create([(f"r{i}", {"model": "sonnet", "max_tokens": 30,
        "messages": [{"role": "user", "content": f"q{i}"}]}) for i in range(int(sys.argv[2]))])
    print(batch.id, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_sigkilled_runner_process_is_resumed_without_losing_or_repeating(tmp_path, bridge, upstream):
    path = tmp_path / DB_NAME
    script = Script(upstream).on("q2", Reply.text("interrupted", hang=20))
    proc = subprocess.Popen([sys.executable, "-c", RUNNER_SCRIPT, str(path), "6"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        batch_id = await asyncio.to_thread(proc.stdout.readline)
        batch_id = batch_id.strip()
        assert batch_id.startswith("msgbatch_")
        store = Store(path)
        await until(lambda: script.counts["q2"] == 1, timeout=120)
        before = store.item_results(batch_id)
        assert sorted(before) == ["r0", "r1"]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    store.attach(bridge)
    runner = BatchRunner(store, bridge)
    await runner.start()
    try:
        await runner.wait(batch_id, timeout=120)
    finally:
        await runner.stop()
    results = parse_results(store, batch_id)
    assert [r["custom_id"] for r in results] == [f"r{i}" for i in range(6)]
    assert all(r["result"]["type"] == "succeeded" for r in results)
    assert {r["custom_id"]: r["result"] for r in results[:2]} == before     # kept, not redone
    assert results[2]["result"]["message"]["content"][0]["text"] == "You said: q2"
    assert [script.counts[f"q{i}"] for i in range(6)] == [1, 1, 2, 1, 1, 1]
    assert store.item_attempts(batch_id)["r2"] == 2
    assert store.integrity_check() == "ok"
    store.close()


async def test_a_stopped_runner_hands_its_batch_to_the_next(store, bridge, upstream):
    store.attach(bridge)
    script = Script(upstream).on("q1", Reply.text("cut by the stop", hang=30))
    first = BatchRunner(store, bridge, workers_per_batch=1)
    await first.start()
    batch = await first.create(requests(3))
    await until(lambda: script.counts["q1"] == 1)
    await first.stop()
    assert store.get_batch(batch.id).owner is None and not bridge.live
    second = BatchRunner(store, bridge)
    await second.start()
    try:
        ended = await second.wait(batch.id, timeout=120)
    finally:
        await second.stop()
    assert ended.succeeded == 3
    assert [script.counts[f"q{i}"] for i in range(3)] == [1, 2, 1]


async def test_a_live_runners_batch_is_not_taken_but_can_be_canceled_from_elsewhere(store, bridge, upstream):
    store.attach(bridge)
    script = Script(upstream).on("q0", Reply.text("long", hang=30))
    owner = BatchRunner(store, bridge, workers_per_batch=1, poll_interval=0.1)
    other = BatchRunner(Store(store.path), bridge)       # e.g. another server on the same data dir
    await owner.start()
    await other.start()
    try:
        batch = await owner.create(requests(3))
        await until(lambda: script.counts["q0"] == 1)
        await other.poll()
        assert store.get_batch(batch.id).owner == owner.owner and not other._tasks
        canceling = await other.cancel(batch.id)
        assert canceling.status == "canceling"
        ended = await other.wait(batch.id, timeout=60)    # the owner notices and ends it
        assert ended.canceled == 3
        assert set(script.counts) == {"q0"}
    finally:
        await other.stop()
        await owner.stop()


async def test_delete_only_after_the_batch_ended(runner, store, upstream):
    Script(upstream).on("q0", Reply.text("slow", hang=30))
    await runner.start()
    batch = await runner.create(requests(1))
    with pytest.raises(InvalidRequest, match="can be deleted only once it has ended"):
        store.delete_batch(batch.id)
    await runner.cancel(batch.id)
    await runner.wait(batch.id, timeout=60)
    store.delete_batch(batch.id)
    with pytest.raises(NotFound):
        store.get_batch(batch.id)
    assert batches.deleted_json(batch.id) == {"id": batch.id, "type": "message_batch_deleted"}


async def test_requests_cut_by_a_shutdown_are_left_for_the_next_start(store, bridge, upstream):
    """The server stopping is not the request's fault: no `errored` result gets stored."""
    store.attach(bridge)
    script = Script(upstream).on("q0", Reply.text("cut by the shutdown", hang=30))
    runner = BatchRunner(store, bridge, workers_per_batch=1, max_retries=0)
    await runner.start()
    batch = await runner.create(requests(2))
    await until(lambda: script.counts["q0"] == 1)
    await bridge.close()                      # shutdown order gone wrong: the bridge goes first
    await until(lambda: not bridge.live)
    await runner.stop()
    assert store.item_results(batch.id) == {}
    assert store.item_counts(batch.id)["errored"] == 0

    from claude_nb.bridge import ClaudeBridge
    fresh = ClaudeBridge()
    store.attach(fresh)
    again = BatchRunner(store, fresh)
    await again.start()
    try:
        ended = await again.wait(batch.id, timeout=120)
    finally:
        await again.stop()
        await fresh.close()     # its warm processes too
    assert ended.succeeded == 2 and script.counts["q0"] == 2


async def test_a_failed_save_does_not_lose_or_repeat_a_request(runner, store, upstream, monkeypatch):
    """A result that could not be written (disk full, say) is run again, once."""
    script = Script(upstream)
    real_save = store.save_result
    failures = []

    def flaky_save(batch_id, idx, result, now=None):
        if idx == 1 and not failures:
            failures.append(idx)
            raise OSError("No space left on device")
        return real_save(batch_id, idx, result, now)
    monkeypatch.setattr(store, "save_result", flaky_save)
    runner.workers_per_batch = 1
    await runner.start()
    batch = await runner.create(requests(3))
    ended = await runner.wait(batch.id, timeout=120)
    assert failures == [1] and ended.succeeded == 3
    assert [r["custom_id"] for r in parse_results(store, batch.id)] == ["r0", "r1", "r2"]
    assert [script.counts[f"q{i}"] for i in range(3)] == [1, 2, 1]
