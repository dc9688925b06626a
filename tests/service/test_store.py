"""The durable store: location, schema, batch item bookkeeping, files on disk, the run ledger."""
import json
import os
import sqlite3
import time

import pytest
from hypothesis import given, settings, strategies as st

from claude_nb.bridge import RunRecord
from claude_nb.protocol.errors import InvalidRequest, NotFound
from claude_nb.service.store import (DB_NAME, SCHEMA_VERSION, BatchRecord, Store, StoreError,
                             default_store_dir)

PARAMS = {"model": "sonnet", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "store" / DB_NAME)
    yield s
    s.close()


def make_batch(store, n=3, owner="me", expires_in=3600.0) -> BatchRecord:
    return store.create_batch([(f"c{i}", {**PARAMS, "max_tokens": 10 + i}) for i in range(n)],
                              expires_at=time.time() + expires_in, owner=owner)


# -- location and schema ---------------------------------------------------------------------
def test_default_location_follows_jupyter_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "elsewhere"))
    assert default_store_dir() == tmp_path / "elsewhere" / "claude_nb"
    store = Store()
    try:
        assert store.path == tmp_path / "elsewhere" / "claude_nb" / DB_NAME
        assert store.path.exists() and store.files_dir.is_dir()
    finally:
        store.close()


def test_database_is_wal_and_versioned(store):
    db = sqlite3.connect(store.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.integrity_check() == "ok"


def test_reopening_keeps_data_and_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / DB_NAME
    first = Store(path)
    batch = make_batch(first)
    first.close()
    again = Store(path)
    assert again.get_batch(batch.id).total == 3
    again.close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer claude-nb"):
        Store(path)


def test_two_stores_on_one_file_see_each_others_writes(tmp_path):
    a, b = Store(tmp_path / DB_NAME), Store(tmp_path / DB_NAME)
    batch = make_batch(a)
    assert b.get_batch(batch.id).total == 3
    [item] = b.claim_items(batch.id, "me")
    assert a.item_counts(batch.id)["running"] == 1 and item.custom_id == "c0"
    a.close()
    b.close()


# -- batches ---------------------------------------------------------------------------------
def test_new_batch_is_in_progress_with_every_item_pending(store):
    batch = make_batch(store, 4)
    assert batch.id.startswith("msgbatch_") and batch.status == "in_progress"
    assert batch.total == 4 and not batch.ended and batch.ended_at is None
    assert store.item_counts(batch.id) == {"pending": 4, "running": 0, "succeeded": 0,
                                           "errored": 0, "canceled": 0, "expired": 0}


def test_items_are_claimed_in_order_only_by_the_owner(store):
    batch = make_batch(store, 3)
    assert store.claim_items(batch.id, "someone-else") == []
    first, second = store.claim_items(batch.id, "me", limit=2)
    assert (first.idx, first.custom_id, first.params["max_tokens"]) == (0, "c0", 10)
    assert (second.idx, second.custom_id, first.attempts) == (1, "c1", 1)
    [third] = store.claim_items(batch.id, "me", limit=5)
    assert third.custom_id == "c2"
    assert store.claim_items(batch.id, "me") == []


def test_nothing_is_claimed_once_a_batch_expired(store):
    batch = make_batch(store, 2, expires_in=10)
    assert store.claim_items(batch.id, "me", now=time.time() + 20) == []


def test_save_result_is_atomic_and_idempotent(store):
    batch = make_batch(store, 2)
    [item] = store.claim_items(batch.id, "me")
    first = {"type": "succeeded", "message": {"id": "msg_1"}}
    assert store.save_result(batch.id, item.idx, first) is True
    assert store.save_result(batch.id, item.idx, {"type": "errored", "error": {}}) is False
    assert store.item_results(batch.id) == {"c0": first}
    assert store.item_counts(batch.id)["succeeded"] == 1
    with pytest.raises(ValueError):
        store.save_result(batch.id, 1, {"type": "done"})


def test_batch_ends_only_when_every_item_has_a_result(store):
    batch = make_batch(store, 2)
    items = store.claim_items(batch.id, "me", limit=2)
    store.save_result(batch.id, items[0].idx, {"type": "succeeded", "message": {}})
    assert store.finish_batch(batch.id) is False
    store.save_result(batch.id, items[1].idx, {"type": "errored", "error": {"type": "error"}})
    assert store.finish_batch(batch.id) is True
    ended = store.get_batch(batch.id)
    assert ended.ended and ended.ended_at is not None and ended.owner is None
    assert (ended.succeeded, ended.errored, ended.canceled, ended.expired) == (1, 1, 0, 0)
    assert store.finish_batch(batch.id) is False      # once


def test_cancel_ends_pending_items_and_leaves_running_ones_to_the_owner(store):
    batch = make_batch(store, 3)
    [running] = store.claim_items(batch.id, "me")
    canceling = store.begin_cancel(batch.id)
    assert canceling.status == "canceling" and canceling.cancel_initiated_at is not None
    assert store.item_counts(batch.id) == {"pending": 0, "running": 1, "succeeded": 0,
                                           "errored": 0, "canceled": 2, "expired": 0}
    assert store.claim_items(batch.id, "me") == []
    assert store.end_unfinished(batch.id, "canceled") == 1
    assert store.finish_batch(batch.id)
    assert store.get_batch(batch.id).canceled == 3
    assert list(store.item_results(batch.id).values()) == [{"type": "canceled"}] * 3
    with pytest.raises(InvalidRequest, match="already ended"):
        store.begin_cancel(batch.id)


def test_adopting_a_batch_reruns_its_running_items_and_keeps_results(store):
    batch = make_batch(store, 4, owner="dead")
    done, running = store.claim_items(batch.id, "dead", limit=2)
    store.save_result(batch.id, done.idx, {"type": "succeeded", "message": {"id": "kept"}})
    assert not store.adopt_batch(batch.id, "new", expected_owner="someone-else", now=time.time())
    assert store.adopt_batch(batch.id, "new", expected_owner="dead", now=time.time())
    assert store.get_batch(batch.id).owner == "new"
    assert store.item_counts(batch.id)["running"] == 0
    again = store.claim_items(batch.id, "new", limit=10)
    assert [i.custom_id for i in again] == ["c1", "c2", "c3"]
    assert again[0].attempts == 2 and again[1].attempts == 1
    assert store.item_results(batch.id) == {"c0": {"type": "succeeded", "message": {"id": "kept"}}}


def test_heartbeat_and_release(store):
    batch = make_batch(store, 1, owner="me")
    assert store.heartbeat("me", [batch.id], 123.0) == {batch.id}
    assert store.get_batch(batch.id).heartbeat_at == 123.0
    assert store.heartbeat("other", [batch.id], 124.0) == set()
    store.release_batches("me")
    assert store.get_batch(batch.id).owner is None
    assert [b.id for b in store.unfinished_batches()] == [batch.id]


def test_list_batches_newest_first_with_cursors(store):
    ids = [make_batch(store, 1).id for _ in range(5)]
    newest_first = ids[::-1]
    page, more = store.list_batches(limit=2)
    assert [b.id for b in page] == newest_first[:2] and more
    page, more = store.list_batches(after_id=newest_first[1], limit=2)
    assert [b.id for b in page] == newest_first[2:4] and more
    page, more = store.list_batches(after_id=newest_first[3], limit=2)
    assert [b.id for b in page] == newest_first[4:] and not more
    page, more = store.list_batches(before_id=newest_first[4], limit=2)
    assert [b.id for b in page] == newest_first[2:4] and more
    page, more = store.list_batches(before_id=newest_first[1], limit=2)
    assert [b.id for b in page] == newest_first[:1] and not more


def test_a_cursor_still_works_after_its_batch_was_deleted(store):
    ids = [make_batch(store, 1).id for _ in range(3)]
    [item] = store.claim_items(ids[1], "me")
    store.save_result(ids[1], item.idx, {"type": "succeeded", "message": {}})
    store.finish_batch(ids[1])
    store.delete_batch(ids[1])
    page, _ = store.list_batches(after_id=ids[1])
    assert [b.id for b in page] == [ids[0]]


def test_only_an_ended_batch_can_be_deleted(store):
    batch = make_batch(store, 1)
    with pytest.raises(InvalidRequest, match="still in_progress"):
        store.delete_batch(batch.id)
    store.begin_cancel(batch.id)
    store.finish_batch(batch.id)
    store.delete_batch(batch.id)
    with pytest.raises(NotFound):
        store.get_batch(batch.id)
    assert list(store.iter_results(batch.id)) == []


@pytest.mark.parametrize("bad", ["msgbatch_nope", "../etc", "", "msgbatch_a/b", None])
def test_unknown_batch_ids_are_not_found(store, bad):
    with pytest.raises(NotFound):
        store.get_batch(bad)


def test_results_are_read_in_request_order_in_chunks(store):
    batch = store.create_batch([(f"c{i}", PARAMS) for i in range(1205)], expires_at=time.time() + 60,
                               owner="me")
    items = store.claim_items(batch.id, "me", limit=2000)
    for item in reversed(items):        # finishing order must not matter
        store.save_result(batch.id, item.idx, {"type": "succeeded", "message": {"n": item.idx}})
    got = list(store.iter_results(batch.id, chunk=100))
    assert [cid for cid, _ in got] == [f"c{i}" for i in range(1205)]
    assert json.loads(got[1204][1]) == {"type": "succeeded", "message": {"n": 1204}}


# -- files -----------------------------------------------------------------------------------
def test_file_bytes_are_stored_under_their_id_and_removed_on_delete(store):
    record = store.add_file(b"hello\x00world", filename="a.bin", mime_type="application/octet-stream")
    assert record.id.startswith("file_") and record.size_bytes == 11
    assert (store.files_dir / record.id).read_bytes() == b"hello\x00world"
    assert [p.name for p in store.files_dir.iterdir()] == [record.id]   # no temp file left
    assert store.read_file(record.id)[1] == b"hello\x00world"
    assert store.resolve_file(record.id) == (b"hello\x00world", "application/octet-stream", "a.bin")
    store.delete_file(record.id)
    assert list(store.files_dir.iterdir()) == []
    with pytest.raises(NotFound):
        store.get_file(record.id)
    with pytest.raises(NotFound):
        store.delete_file(record.id)


def test_a_file_can_be_written_from_a_stream(store, tmp_path):
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(3 * (1 << 20) + 5))
    with open(src, "rb") as handle:
        record = store.add_file(handle, filename="big.bin", mime_type="application/octet-stream")
    assert record.size_bytes == src.stat().st_size
    assert store.read_file(record.id)[1] == src.read_bytes()


@pytest.mark.parametrize("bad", ["../claude_nb.sqlite3", "/etc/passwd", "file_a/../../x",
                                 "file_\x00", "file_", "file_../x", "..", "", None, 5])
def test_file_ids_cannot_reach_outside_the_store(store, bad):
    for call in (store.get_file, store.read_file, store.delete_file, store.resolve_file):
        with pytest.raises(NotFound):
            call(bad)
    assert store.path.exists()


@pytest.fixture(scope="module")
def module_store(tmp_path_factory):
    s = Store(tmp_path_factory.mktemp("ids") / DB_NAME)
    yield s
    s.close()


@settings(max_examples=300, deadline=None)
@given(text=st.text(min_size=0, max_size=80) | st.from_regex(r"file_[./\\\x00-\x20a-zA-Z0-9]{0,20}"))
def test_any_file_id_maps_inside_the_files_dir_or_nowhere(module_store, text):
    try:
        path = module_store._blob_path(text)
    except NotFound:
        return
    assert path.parent == module_store.files_dir and path.name == text


def test_expired_files_are_gone(store):
    record = store.add_file(b"x", filename="x.txt", mime_type="text/plain", expires_at=time.time() - 1)
    with pytest.raises(NotFound) as info:
        store.get_file(record.id)
    assert info.value.error_code == "file_expired"
    assert not (store.files_dir / record.id).exists()
    kept = store.add_file(b"y", filename="y.txt", mime_type="text/plain", expires_at=time.time() + 60)
    assert [f.id for f in store.list_files()[0]] == [kept.id]


def test_leftover_bytes_are_swept_when_old_and_kept_while_young(tmp_path):
    store = Store(tmp_path / DB_NAME)
    kept = store.add_file(b"keep", filename="k", mime_type="text/plain")
    store.close()
    old_orphan = store.files_dir / "file_01orphan"
    old_temp = store.files_dir / ".file_01half.tmp"
    young_orphan = store.files_dir / "file_01inflight"
    for path in (old_orphan, old_temp, young_orphan):
        path.write_bytes(b"x")
    long_ago = time.time() - 2 * 86400
    for path in (old_orphan, old_temp, store.files_dir / kept.id):
        os.utime(path, (long_ago, long_ago))
    Store(tmp_path / DB_NAME).close()
    assert sorted(p.name for p in store.files_dir.iterdir()) == sorted([kept.id, young_orphan.name])


def test_list_files_newest_first_and_by_ids(store):
    ids = [store.add_file(b"%d" % i, filename=f"{i}.txt", mime_type="text/plain").id for i in range(4)]
    page, more = store.list_files(limit=3)
    assert [f.id for f in page] == ids[::-1][:3] and more
    page, more = store.list_files(ids=[ids[0], ids[2], "file_nope", "../x"])
    assert [f.id for f in page] == [ids[2], ids[0]] and not more


# -- the run ledger --------------------------------------------------------------------------
def run_record(**kw):
    base = dict(request_id="req_1", source="api", model="claude-sonnet-5", started_at=1000.0,
                duration_ms=1500, cost_usd=0.0123,
                usage={"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 3,
                       "cache_creation_input_tokens": 7,
                       "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                       "server_tool_use": {"web_search_requests": 2}, "service_tier": "standard"})
    base.update(kw)
    return RunRecord(**base)


def test_runs_are_recorded_and_queried_by_time_model_and_source(store):
    store.record_run(run_record())
    store.record_run(run_record(started_at=2000.0, model="claude-haiku-4-5-20251001", source="batch",
                                status="errored", error_type="overloaded_error", cost_estimated=True))
    store.record_run(run_record(started_at=3000.0, source="magic"))
    [first] = store.runs_between(0, 1500)
    assert (first.uncached_input_tokens, first.output_tokens, first.cache_read_input_tokens) == (10, 5, 3)
    # without a per-TTL split, cache writes count as 5-minute ones
    assert (first.cache_creation_5m_tokens, first.cache_creation_1h_tokens) == (7, 0)
    assert first.web_search_requests == 2 and first.cost_usd == 0.0123 and first.duration_ms == 1500
    assert [r.source for r in store.runs_between()] == ["api", "batch", "magic"]
    [haiku] = store.runs_between(models=["claude-haiku-4-5-20251001"])
    assert haiku.status == "errored" and haiku.error_type == "overloaded_error" and haiku.cost_estimated
    assert [r.started_at for r in store.runs_between(sources=["magic", "api"])] == [1000.0, 3000.0]
    assert store.runs_between(models=[]) == []
    assert [r.started_at for r in store.runs_between(2000.0, 3000.0)] == [2000.0]


def test_attach_wires_the_ledger_and_file_resolver(store):
    class FakeBridge:
        run_listeners = []
        file_resolver = None
    bridge = FakeBridge()
    store.attach(bridge)
    store.attach(bridge)
    assert bridge.run_listeners == [store.record_run]
    assert bridge.file_resolver == store.resolve_file


def test_requeue_running_is_the_owners_only(store):
    batch = make_batch(store, 2, owner="me")
    store.claim_items(batch.id, "me", limit=2)
    assert store.requeue_running(batch.id, "someone-else") == 0
    assert store.requeue_running(batch.id, "me") == 2
    assert store.item_counts(batch.id)["pending"] == 2


def test_named_state_survives_reopening_and_old_databases_are_upgraded(tmp_path):
    path = tmp_path / DB_NAME
    from claude_nb.service.store import _MIGRATIONS
    old = sqlite3.connect(path)            # a database written by schema 1 (no state table)
    old.executescript(_MIGRATIONS[1])
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()
    store = Store(path)
    assert store.get_state("quota") is None
    store.put_state("quota", {"version": 1, "windows": {}})
    store.put_state("quota", {"version": 1, "windows": {"five_hour": {"status": "allowed"}}})
    store.close()
    again = Store(path)
    assert again.get_state("quota") == {"version": 1, "windows": {"five_hour": {"status": "allowed"}}}
    assert again._query("PRAGMA user_version")[0][0] == SCHEMA_VERSION


def test_plan_quota_survives_a_server_restart(tmp_path):
    from traitlets.config import Config
    from server_ext.app import ClaudeNbApp
    config = Config()
    config.ClaudeNbApp.store_dir = str(tmp_path)
    first = ClaudeNbApp(config=config)
    first.initialize_settings()
    first.quota.update({"status": "allowed_warning", "rateLimitType": "five_hour",
                        "utilization": 0.91, "resetsAt": int(time.time()) + 3600})
    first.store.close()
    second = ClaudeNbApp(config=config)
    second.initialize_settings()
    summary = second.quota.summary()
    assert "five_hour" in json.dumps(summary) and "allowed_warning" in json.dumps(summary)
    second.store.close()
