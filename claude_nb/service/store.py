"""The durable store: message batches, uploaded files and the usage ledger, in one SQLite file.

This module owns the database; nothing else writes SQL. It lives under the Jupyter data dir
(`jupyter_data_dir()/claude_nb/`, so `JUPYTER_DATA_DIR` moves it) with uploaded files' bytes
beside it in `files/`, each stored under a name derived from its id only.

Several processes may open the same store (a Jupyter server and a kernel, or two servers): the
database runs in WAL mode with a busy timeout, writes happen in short `BEGIN IMMEDIATE`
transactions, and a batch is worked by one owner at a time (see `adopt_batch`).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from ..protocol.errors import InvalidRequest, NotFound

SCHEMA_VERSION = 2
DB_NAME = "claude_nb.sqlite3"
FILES_DIR = "files"
# Files in `files/` that no row claims are swept once this old (an upload in another process
# writes its bytes before its row, so a young orphan may be one in flight).
ORPHAN_GRACE_SECONDS = 3600

BATCH_ID = re.compile(r"^msgbatch_[0-9A-Za-z]{1,64}$")
FILE_ID = re.compile(r"^file_[0-9A-Za-z]{1,64}$")

# Item states. `running` items were claimed by the batch's owner; a result ends them.
PENDING, RUNNING = "pending", "running"
RESULT_TYPES = ("succeeded", "errored", "canceled", "expired")
# Batch states, as the API names them.
IN_PROGRESS, CANCELING, ENDED = "in_progress", "canceling", "ended"

_MIGRATIONS = {
    1: """
    CREATE TABLE batches (
        id TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        ended_at REAL,
        cancel_initiated_at REAL,
        archived_at REAL,
        status TEXT NOT NULL,
        total INTEGER NOT NULL,
        succeeded INTEGER NOT NULL DEFAULT 0,
        errored INTEGER NOT NULL DEFAULT 0,
        canceled INTEGER NOT NULL DEFAULT 0,
        expired INTEGER NOT NULL DEFAULT 0,
        owner TEXT,
        heartbeat_at REAL
    );
    CREATE INDEX batches_unfinished ON batches(status) WHERE status != 'ended';
    CREATE TABLE batch_items (
        batch_id TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        custom_id TEXT NOT NULL,
        params TEXT NOT NULL,
        state TEXT NOT NULL,
        result TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        finished_at REAL,
        PRIMARY KEY (batch_id, idx),
        UNIQUE (batch_id, custom_id)
    ) WITHOUT ROWID;
    CREATE INDEX batch_items_state ON batch_items(batch_id, state);
    CREATE TABLE files (
        id TEXT PRIMARY KEY,
        filename TEXT NOT NULL,
        mime_type TEXT NOT NULL,
        size_bytes INTEGER NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL,
        downloadable INTEGER NOT NULL
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        request_id TEXT,
        source TEXT NOT NULL,
        model TEXT NOT NULL,
        status TEXT NOT NULL,
        error_type TEXT,
        started_at REAL NOT NULL,
        duration_ms INTEGER NOT NULL,
        uncached_input_tokens INTEGER NOT NULL,
        cache_creation_5m_tokens INTEGER NOT NULL,
        cache_creation_1h_tokens INTEGER NOT NULL,
        cache_read_input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        web_search_requests INTEGER NOT NULL,
        service_tier TEXT,
        cost_usd REAL NOT NULL,
        cost_estimated INTEGER NOT NULL
    );
    CREATE INDEX runs_started ON runs(started_at);
    """,
    2: """
    CREATE TABLE state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
}


class StoreError(Exception):
    """The store cannot be opened (e.g. written by a newer claude-nb)."""


def default_store_dir() -> Path:
    from jupyter_core.paths import jupyter_data_dir
    return Path(jupyter_data_dir()) / "claude_nb"


# -- ids: sortable by creation time, so "newest first" is "id descending" and a cursor
# stays meaningful after the item it names was deleted. --------------------------------
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_id_lock = threading.Lock()
_last_micros = 0


def _base62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(_B62[r])
    return "".join(reversed(out))


def new_id(prefix: str) -> str:
    global _last_micros
    with _id_lock:
        micros = max(time.time_ns() // 1000, _last_micros + 1)
        _last_micros = micros
    rand = "".join(secrets.choice(_B62) for _ in range(12))
    return f"{prefix}01{_base62(micros, 10)}{rand}"


# -- rows -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchRecord:
    id: str
    created_at: float
    expires_at: float
    ended_at: float | None
    cancel_initiated_at: float | None
    archived_at: float | None
    status: str
    total: int
    succeeded: int
    errored: int
    canceled: int
    expired: int
    owner: str | None
    heartbeat_at: float | None

    @property
    def ended(self) -> bool:
        return self.status == ENDED


@dataclass(frozen=True)
class BatchItem:
    batch_id: str
    idx: int
    custom_id: str
    params: dict
    attempts: int


@dataclass(frozen=True)
class FileRecord:
    id: str
    filename: str
    mime_type: str
    size_bytes: int
    created_at: float
    expires_at: float | None
    downloadable: bool


@dataclass(frozen=True)
class RunRow:
    request_id: str | None
    source: str
    model: str
    status: str
    error_type: str | None
    started_at: float
    duration_ms: int
    uncached_input_tokens: int
    cache_creation_5m_tokens: int
    cache_creation_1h_tokens: int
    cache_read_input_tokens: int
    output_tokens: int
    web_search_requests: int
    service_tier: str | None
    cost_usd: float
    cost_estimated: bool


_BATCH_COLS = ", ".join(BatchRecord.__dataclass_fields__)
_FILE_COLS = ", ".join(FileRecord.__dataclass_fields__)
_RUN_COLS = ", ".join(RunRow.__dataclass_fields__)


def _batch(row) -> BatchRecord:
    return BatchRecord(*row)


def _file(row) -> FileRecord:
    values = list(row)
    values[-1] = bool(values[-1])
    return FileRecord(*values)


def _run(row) -> RunRow:
    values = list(row)
    values[-1] = bool(values[-1])
    return RunRow(*values)


class Store:
    """One SQLite database plus a directory of file bytes. Safe to share between threads."""

    def __init__(self, path: str | os.PathLike | None = None):
        if path is None:
            path = default_store_dir() / DB_NAME
        self.path = Path(path)
        self.root = self.path.parent
        self.files_dir = self.root / FILES_DIR
        self.files_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), isolation_level=None, timeout=30.0,
                                   check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout = 30000")
        self._db.execute("PRAGMA journal_mode = WAL")
        # FULL: a result is on disk when save_result returns, even across a power cut.
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("PRAGMA foreign_keys = ON")
        self._migrate()
        self._sweep_files()

    # -- plumbing -------------------------------------------------------------------------
    @contextmanager
    def _tx(self):
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: Iterable = ()) -> list:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def _migrate(self) -> None:
        with self._tx() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path} was written by a newer claude-nb (schema {version}, "
                                 f"this one knows up to {SCHEMA_VERSION}); upgrade claude-nb.")
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {target}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def integrity_check(self) -> str:
        return self._query("PRAGMA integrity_check")[0][0]

    # -- batches --------------------------------------------------------------------------
    def create_batch(self, requests: list[tuple[str, dict]], *, expires_at: float,
                     created_at: float | None = None, owner: str | None = None) -> BatchRecord:
        """Store a new batch whose items are all pending. `requests` are (custom_id, params)."""
        if not requests:
            raise InvalidRequest("requests: at least one request is required")
        created_at = time.time() if created_at is None else created_at
        batch_id = new_id("msgbatch_")
        with self._tx() as db:
            db.execute("INSERT INTO batches (id, created_at, expires_at, status, total, owner, "
                       "heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (batch_id, created_at, expires_at, IN_PROGRESS, len(requests), owner,
                        created_at if owner else None))
            db.executemany(
                "INSERT INTO batch_items (batch_id, idx, custom_id, params, state) VALUES (?, ?, ?, ?, ?)",
                ((batch_id, i, cid, json.dumps(params, separators=(",", ":")), PENDING)
                 for i, (cid, params) in enumerate(requests)))
        return self.get_batch(batch_id)

    def get_batch(self, batch_id: str) -> BatchRecord:
        rows = self._query(f"SELECT {_BATCH_COLS} FROM batches WHERE id = ?", (batch_id,)) \
            if isinstance(batch_id, str) and BATCH_ID.match(batch_id) else []
        if not rows:
            raise NotFound(f"No message batch with id {batch_id!r}.")
        return _batch(rows[0])

    def list_batches(self, *, after_id: str | None = None, before_id: str | None = None,
                     limit: int = 20) -> tuple[list[BatchRecord], bool]:
        """Newest first; `after_id`/`before_id` page older/newer. Returns (rows, has_more)."""
        rows, more = self._page("batches", _BATCH_COLS, after_id, before_id, limit)
        return [_batch(r) for r in rows], more

    def _page(self, table: str, cols: str, after_id, before_id, limit: int,
              where: str = "1", args: tuple = ()) -> tuple[list, bool]:
        if before_id is not None:
            # The `limit` items just newer than before_id, returned newest first.
            rows = self._query(f"SELECT {cols} FROM {table} WHERE {where} AND id > ? "
                               f"ORDER BY id ASC LIMIT ?", (*args, before_id, limit + 1))
            more = len(rows) > limit
            return list(reversed(rows[:limit])), more
        if after_id is not None:
            rows = self._query(f"SELECT {cols} FROM {table} WHERE {where} AND id < ? "
                               f"ORDER BY id DESC LIMIT ?", (*args, after_id, limit + 1))
        else:
            rows = self._query(f"SELECT {cols} FROM {table} WHERE {where} "
                               f"ORDER BY id DESC LIMIT ?", (*args, limit + 1))
        return rows[:limit], len(rows) > limit

    def item_counts(self, batch_id: str) -> dict[str, int]:
        """How many items are in each state right now (pending, running and each result type)."""
        counts = dict.fromkeys((PENDING, RUNNING) + RESULT_TYPES, 0)
        for state, n in self._query("SELECT state, COUNT(*) FROM batch_items WHERE batch_id = ? "
                                    "GROUP BY state", (batch_id,)):
            counts[state] = n
        return counts

    def unfinished_batches(self) -> list[BatchRecord]:
        return [_batch(r) for r in self._query(
            f"SELECT {_BATCH_COLS} FROM batches WHERE status != ? ORDER BY id", (ENDED,))]

    def adopt_batch(self, batch_id: str, owner: str, *, expected_owner: str | None,
                    now: float) -> bool:
        """Become the batch's owner if it is still owned by `expected_owner` (a dead or departed
        runner). Its `running` items were never finished: they go back to pending, to run again."""
        with self._tx() as db:
            cur = db.execute("UPDATE batches SET owner = ?, heartbeat_at = ? WHERE id = ? "
                             "AND status != ? AND owner IS ?",
                             (owner, now, batch_id, ENDED, expected_owner))
            if cur.rowcount != 1:
                return False
            db.execute("UPDATE batch_items SET state = ? WHERE batch_id = ? AND state = ?",
                       (PENDING, batch_id, RUNNING))
            return True

    def requeue_running(self, batch_id: str, owner: str) -> int:
        """The owner's workers for this batch stopped without results: run those items again."""
        with self._tx() as db:
            if not db.execute("SELECT 1 FROM batches WHERE id = ? AND owner = ?",
                              (batch_id, owner)).fetchone():
                return 0
            return db.execute("UPDATE batch_items SET state = ? WHERE batch_id = ? AND state = ?",
                              (PENDING, batch_id, RUNNING)).rowcount

    def heartbeat(self, owner: str, batch_ids: Iterable[str], now: float) -> set[str]:
        """Renew the owner's lease on these batches; returns the ones it still owns."""
        kept = set()
        with self._tx() as db:
            for batch_id in batch_ids:
                cur = db.execute("UPDATE batches SET heartbeat_at = ? WHERE id = ? AND owner = ?",
                                 (now, batch_id, owner))
                if cur.rowcount == 1:
                    kept.add(batch_id)
        return kept

    def release_batches(self, owner: str) -> None:
        """A runner stops: its unfinished batches are free for the next one to adopt."""
        with self._tx() as db:
            db.execute("UPDATE batches SET owner = NULL, heartbeat_at = NULL WHERE owner = ? "
                       "AND status != ?", (owner, ENDED))

    def claim_items(self, batch_id: str, owner: str, *, limit: int = 1,
                    now: float | None = None) -> list[BatchItem]:
        """Mark up to `limit` pending items running and return them, in request order. Nothing is
        claimed unless `owner` owns the batch, it is in progress (not canceling) and unexpired."""
        now = time.time() if now is None else now
        with self._tx() as db:
            ok = db.execute("SELECT 1 FROM batches WHERE id = ? AND owner = ? AND status = ? "
                            "AND expires_at > ?", (batch_id, owner, IN_PROGRESS, now)).fetchone()
            if not ok:
                return []
            rows = db.execute("SELECT idx, custom_id, params, attempts FROM batch_items "
                              "WHERE batch_id = ? AND state = ? ORDER BY idx LIMIT ?",
                              (batch_id, PENDING, limit)).fetchall()
            db.executemany("UPDATE batch_items SET state = ?, attempts = attempts + 1 "
                           "WHERE batch_id = ? AND idx = ?",
                           ((RUNNING, batch_id, idx) for idx, *_ in rows))
        return [BatchItem(batch_id, idx, cid, json.loads(params), attempts + 1)
                for idx, cid, params, attempts in rows]

    def save_result(self, batch_id: str, idx: int, result: dict,
                    now: float | None = None) -> bool:
        """Store an item's result and end it, in one transaction. Idempotent: an item that
        already has a result keeps it (returns False)."""
        kind = result.get("type")
        if kind not in RESULT_TYPES:
            raise ValueError(f"result type must be one of {RESULT_TYPES}, not {kind!r}")
        now = time.time() if now is None else now
        with self._tx() as db:
            cur = db.execute("UPDATE batch_items SET state = ?, result = ?, finished_at = ? "
                             "WHERE batch_id = ? AND idx = ? AND state IN (?, ?)",
                             (kind, json.dumps(result, separators=(",", ":")), now,
                              batch_id, idx, PENDING, RUNNING))
            return cur.rowcount == 1

    def begin_cancel(self, batch_id: str, now: float | None = None) -> BatchRecord:
        """Cancel a batch: its pending items end `canceled` at once; running ones are the
        owner's to end. 400 once the batch has ended."""
        now = time.time() if now is None else now
        batch = self.get_batch(batch_id)
        if batch.ended:
            raise InvalidRequest(f"Message batch {batch_id} has already ended; only a batch that is "
                                 "still processing can be canceled.")
        with self._tx() as db:
            db.execute("UPDATE batches SET status = ?, cancel_initiated_at = "
                       "COALESCE(cancel_initiated_at, ?) WHERE id = ? AND status != ?",
                       (CANCELING, now, batch_id, ENDED))
            db.execute("UPDATE batch_items SET state = 'canceled', result = ?, finished_at = ? "
                       "WHERE batch_id = ? AND state = ?",
                       ('{"type":"canceled"}', now, batch_id, PENDING))
        return self.get_batch(batch_id)

    def end_unfinished(self, batch_id: str, kind: str, now: float | None = None) -> int:
        """Give every item without a result the result `kind` (canceled or expired)."""
        if kind not in ("canceled", "expired"):
            raise ValueError(kind)
        now = time.time() if now is None else now
        with self._tx() as db:
            cur = db.execute("UPDATE batch_items SET state = ?, result = ?, finished_at = ? "
                             "WHERE batch_id = ? AND state IN (?, ?)",
                             (kind, json.dumps({"type": kind}), now, batch_id, PENDING, RUNNING))
            return cur.rowcount

    def finish_batch(self, batch_id: str, now: float | None = None) -> bool:
        """End the batch if no item is left pending or running; its counts are fixed then."""
        now = time.time() if now is None else now
        with self._tx() as db:
            left = db.execute("SELECT COUNT(*) FROM batch_items WHERE batch_id = ? AND state IN (?, ?)",
                              (batch_id, PENDING, RUNNING)).fetchone()[0]
            if left:
                return False
            counts = dict(db.execute("SELECT state, COUNT(*) FROM batch_items WHERE batch_id = ? "
                                     "GROUP BY state", (batch_id,)).fetchall())
            cur = db.execute(
                "UPDATE batches SET status = ?, ended_at = ?, owner = NULL, succeeded = ?, "
                "errored = ?, canceled = ?, expired = ? WHERE id = ? AND status != ?",
                (ENDED, now, *(counts.get(k, 0) for k in RESULT_TYPES), batch_id, ENDED))
            return cur.rowcount == 1

    def delete_batch(self, batch_id: str) -> None:
        batch = self.get_batch(batch_id)
        if not batch.ended:
            raise InvalidRequest(f"Message batch {batch_id} is still {batch.status}; a batch can be "
                                 "deleted only once it has ended (cancel it first).")
        with self._tx() as db:
            db.execute("DELETE FROM batch_items WHERE batch_id = ?", (batch_id,))
            db.execute("DELETE FROM batches WHERE id = ?", (batch_id,))

    def iter_results(self, batch_id: str, *, chunk: int = 500) -> Iterator[tuple[str, str]]:
        """(custom_id, result JSON text) for every item with a result, in request order, read in
        chunks so a 100,000-request batch never sits in memory at once."""
        last = -1
        while True:
            rows = self._query("SELECT idx, custom_id, result FROM batch_items WHERE batch_id = ? "
                               "AND idx > ? AND result IS NOT NULL ORDER BY idx LIMIT ?",
                               (batch_id, last, chunk))
            if not rows:
                return
            for idx, custom_id, result in rows:
                yield custom_id, result
            last = rows[-1][0]

    def item_results(self, batch_id: str) -> dict[str, dict]:
        """custom_id -> result for every finished item (the notebook's view of a batch)."""
        return {cid: json.loads(text) for cid, text in self.iter_results(batch_id)}

    def item_attempts(self, batch_id: str) -> dict[str, int]:
        """custom_id -> how many times the item was started (restarts included)."""
        return dict(self._query("SELECT custom_id, attempts FROM batch_items WHERE batch_id = ?",
                                (batch_id,)))

    # -- files ----------------------------------------------------------------------------
    def _blob_path(self, file_id: str) -> Path:
        # The only name a file's bytes ever get: its validated id, inside files_dir.
        if not isinstance(file_id, str) or not FILE_ID.match(file_id):
            raise NotFound(f"No file with id {file_id!r}.")
        return self.files_dir / file_id

    def add_file(self, data: bytes | BinaryIO, *, filename: str, mime_type: str,
                 expires_at: float | None = None, downloadable: bool = True,
                 created_at: float | None = None) -> FileRecord:
        """Write the bytes atomically (temp file, fsync, rename), then the row."""
        file_id = new_id("file_")
        final = self._blob_path(file_id)
        tmp = self.files_dir / f".{file_id}.tmp"
        size = 0
        try:
            with open(tmp, "xb") as out:
                if isinstance(data, (bytes, bytearray, memoryview)):
                    out.write(data)
                    size = len(data)
                else:
                    while True:
                        chunk = data.read(1 << 20)
                        if not chunk:
                            break
                        out.write(chunk)
                        size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        created_at = time.time() if created_at is None else created_at
        record = FileRecord(file_id, filename, mime_type, size, created_at, expires_at,
                            bool(downloadable))
        try:
            with self._tx() as db:
                db.execute(f"INSERT INTO files ({_FILE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (file_id, filename, mime_type, size, created_at, expires_at,
                            int(downloadable)))
        except BaseException:
            final.unlink(missing_ok=True)
            raise
        return record

    def get_file(self, file_id: str, *, now: float | None = None) -> FileRecord:
        self._blob_path(file_id)
        rows = self._query(f"SELECT {_FILE_COLS} FROM files WHERE id = ?", (file_id,))
        if not rows:
            raise NotFound(f"No file with id {file_id!r}.")
        record = _file(rows[0])
        now = time.time() if now is None else now
        if record.expires_at is not None and record.expires_at <= now:
            self.delete_file(file_id)
            raise NotFound(f"File {file_id} has expired.", error_code="file_expired")
        return record

    def open_file(self, file_id: str) -> tuple[FileRecord, BinaryIO]:
        record = self.get_file(file_id)
        try:
            return record, open(self._blob_path(file_id), "rb")
        except FileNotFoundError:
            raise NotFound(f"The bytes of file {file_id} are missing from {self.files_dir}.") from None

    def read_file(self, file_id: str) -> tuple[FileRecord, bytes]:
        record, handle = self.open_file(file_id)
        with handle:
            return record, handle.read()

    def resolve_file(self, file_id: str) -> tuple[bytes, str, str]:
        """The bridge's file resolver: file_id -> (bytes, mime_type, filename)."""
        record, data = self.read_file(file_id)
        return data, record.mime_type, record.filename

    def list_files(self, *, after_id: str | None = None, before_id: str | None = None,
                   limit: int = 20, ids: list[str] | None = None,
                   now: float | None = None) -> tuple[list[FileRecord], bool]:
        """Newest first, unexpired. With `ids`: exactly those that exist, one page."""
        now = time.time() if now is None else now
        self.purge_expired_files(now)
        if ids is not None:
            wanted = [i for i in ids if isinstance(i, str) and FILE_ID.match(i)]
            if not wanted:
                return [], False
            marks = ",".join("?" * len(wanted))
            rows = self._query(f"SELECT {_FILE_COLS} FROM files WHERE id IN ({marks}) "
                               "ORDER BY id DESC", wanted)
            return [_file(r) for r in rows], False
        rows, more = self._page("files", _FILE_COLS, after_id, before_id, limit)
        return [_file(r) for r in rows], more

    def delete_file(self, file_id: str) -> None:
        path = self._blob_path(file_id)
        with self._tx() as db:
            cur = db.execute("DELETE FROM files WHERE id = ?", (file_id,))
        if cur.rowcount != 1:
            raise NotFound(f"No file with id {file_id!r}.")
        path.unlink(missing_ok=True)

    def purge_expired_files(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        gone = [r[0] for r in self._query("SELECT id FROM files WHERE expires_at IS NOT NULL "
                                          "AND expires_at <= ?", (now,))]
        for file_id in gone:
            try:
                self.delete_file(file_id)
            except NotFound:
                pass        # another process got there first
        return len(gone)

    def _sweep_files(self) -> None:
        """Remove bytes no row claims: leftovers of an upload or delete cut short by a crash."""
        known = {r[0] for r in self._query("SELECT id FROM files")}
        cutoff = time.time() - ORPHAN_GRACE_SECONDS
        for entry in os.scandir(self.files_dir):
            name = entry.name
            stem = name[1:-4] if name.startswith(".") and name.endswith(".tmp") else name
            if stem in known:
                continue
            try:
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
            except FileNotFoundError:
                pass

    # -- the usage ledger -----------------------------------------------------------------
    # -- small named state (e.g. the plan quota) --------------------------------------------
    def get_state(self, key: str) -> dict | None:
        rows = self._query("SELECT value FROM state WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def put_state(self, key: str, value: dict) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO state (key, value, updated_at) VALUES (?, ?, ?) "
                       "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
                       "updated_at = excluded.updated_at", (key, json.dumps(value), time.time()))

    def record_run(self, record) -> None:
        """Add one bridge `RunRecord` (the `bridge.run_listeners` signature)."""
        usage = record.usage or {}
        cache = usage.get("cache_creation") or {}
        c5m = int(cache.get("ephemeral_5m_input_tokens") or 0)
        c1h = int(cache.get("ephemeral_1h_input_tokens") or 0)
        if not c5m and not c1h:
            # Without the per-TTL split, cache writes are the default 5-minute kind.
            c5m = int(usage.get("cache_creation_input_tokens") or 0)
        server_tools = usage.get("server_tool_use") or {}
        with self._tx() as db:
            db.execute(
                f"INSERT INTO runs ({_RUN_COLS}) VALUES ({', '.join('?' * 16)})",
                (record.request_id, record.source, record.model or "unknown", record.status,
                 record.error_type, float(record.started_at), int(record.duration_ms),
                 int(usage.get("input_tokens") or 0), c5m, c1h,
                 int(usage.get("cache_read_input_tokens") or 0),
                 int(usage.get("output_tokens") or 0),
                 int(server_tools.get("web_search_requests") or 0),
                 usage.get("service_tier"), float(record.cost_usd or 0.0),
                 int(bool(getattr(record, "cost_estimated", False)))))

    def runs_between(self, start: float | None = None, end: float | None = None, *,
                     models: Iterable[str] | None = None,
                     sources: Iterable[str] | None = None) -> list[RunRow]:
        """Runs that started in [start, end), oldest first, optionally only these models/sources."""
        where, args = ["1"], []
        if start is not None:
            where.append("started_at >= ?")
            args.append(start)
        if end is not None:
            where.append("started_at < ?")
            args.append(end)
        for column, values in (("model", models), ("source", sources)):
            if values is not None:
                values = list(values)
                where.append(f"{column} IN ({','.join('?' * len(values))})" if values else "0")
                args.extend(values)
        rows = self._query(f"SELECT {_RUN_COLS} FROM runs WHERE {' AND '.join(where)} "
                           "ORDER BY started_at, id", args)
        return [_run(r) for r in rows]

    def attach(self, bridge) -> None:
        """Record every run of `bridge` here and let it read files from this store."""
        if self.record_run not in bridge.run_listeners:
            bridge.run_listeners.append(self.record_run)
        bridge.file_resolver = self.resolve_file
