"""Message Batches: request checks, the API's batch and result shapes, and the resumable runner.

`BatchRunner` works each batch's requests through the shared bridge as background work (live
requests go first in the bridge's limiter). Every result is stored the moment it is known, in
the same transaction that ends its item, so after a crash an unfinished batch resumes where it
stopped: items that were running are run again (their result was never stored) and items with
a stored result never run again.

A batch is worked by one runner at a time: its owner, who renews a lease while it lives. A
runner adopts unfinished batches whose owner is gone (a process that died, or stopped cleanly),
so two Jupyter servers sharing a data dir never run the same batch twice.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import re
import secrets
import socket
import time
from typing import Iterator

from traitlets import Float, Int
from traitlets.config import LoggingConfigurable

from ..protocol.errors import AnthropicError, ApiFailure, InvalidRequest, new_request_id
from ..protocol.models import resolve_model
from ..protocol.paging import check_cursors, page_json, parse_limit
from ..protocol.times import rfc3339
from ..protocol.validation import parse_json_body, validate_message_request
from .store import CANCELING, RESULT_TYPES, BatchItem, BatchRecord, Store

MAX_BATCH_REQUESTS = 100_000
MAX_BATCH_BYTES = 256 * 1024 * 1024
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


# -- creating a batch ---------------------------------------------------------------------
def parse_create_body(raw: bytes) -> list[tuple[str, dict]]:
    """POST /v1/messages/batches body -> [(custom_id, params)]; 400/413 with the field named."""
    return validate_batch_requests(parse_json_body(raw, limit=MAX_BATCH_BYTES))


def validate_batch_requests(body: dict) -> list[tuple[str, dict]]:
    extra = sorted(set(body) - {"requests"})
    if extra:
        raise InvalidRequest(f"{extra[0]}: Extra inputs are not permitted")
    requests = body.get("requests")
    if requests is None:
        raise InvalidRequest("requests: Field required")
    if not isinstance(requests, list):
        raise InvalidRequest("requests: Input should be a valid list")
    if not requests:
        raise InvalidRequest("requests: a batch needs at least one request")
    if len(requests) > MAX_BATCH_REQUESTS:
        raise InvalidRequest(f"requests: a batch may hold at most {MAX_BATCH_REQUESTS:,} requests, "
                             f"not {len(requests):,}")
    seen: dict[str, int] = {}
    out = []
    for i, request in enumerate(requests):
        path = f"requests.{i}"
        if not isinstance(request, dict):
            raise InvalidRequest(f"{path}: Input should be an object with `custom_id` and `params`")
        extra = sorted(set(request) - {"custom_id", "params"})
        if extra:
            raise InvalidRequest(f"{path}.{extra[0]}: Extra inputs are not permitted")
        custom_id = request.get("custom_id")
        if not isinstance(custom_id, str):
            raise InvalidRequest(f"{path}.custom_id: Field required: a string")
        if not CUSTOM_ID.match(custom_id):
            raise InvalidRequest(f"{path}.custom_id: {custom_id[:80]!r} should match pattern "
                                 "'^[a-zA-Z0-9_-]{1,64}$'")
        if custom_id in seen:
            raise InvalidRequest(f"{path}.custom_id: {custom_id!r} is already used by "
                                 f"requests.{seen[custom_id]}; custom_id must be unique in a batch")
        seen[custom_id] = i
        params = request.get("params")
        if not isinstance(params, dict):
            raise InvalidRequest(f"{path}.params: Field required: the Messages request object")
        if params.get("stream"):
            raise InvalidRequest(f"{path}.params.stream: streaming is not available in message "
                                 "batches; leave `stream` out")
        try:
            validate_message_request(params)
            resolve_model(params["model"])
        except AnthropicError as exc:
            raise InvalidRequest(f"{path}.params.{exc.message}") from None
        out.append((custom_id, params))
    return out


# -- shapes -------------------------------------------------------------------------------
def batch_json(batch: BatchRecord, *, base_url: str = "/") -> dict:
    """The API's MessageBatch. Counts stay in `processing` until the batch ends (as the real
    API reports them); `results_url` appears then, built on `base_url` (this server's own
    absolute base, so absolute-URL clients under a prefix find it)."""
    ended = batch.ended
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": batch.status,
        "request_counts": {
            "processing": 0 if ended else batch.total,
            "succeeded": batch.succeeded if ended else 0,
            "errored": batch.errored if ended else 0,
            "canceled": batch.canceled if ended else 0,
            "expired": batch.expired if ended else 0,
        },
        "ended_at": rfc3339(batch.ended_at),
        "created_at": rfc3339(batch.created_at),
        "expires_at": rfc3339(batch.expires_at),
        "archived_at": rfc3339(batch.archived_at),
        "cancel_initiated_at": rfc3339(batch.cancel_initiated_at),
        "results_url": results_url(batch.id, base_url) if ended else None,
    }


def results_url(batch_id: str, base_url: str = "/") -> str:
    return f"{base_url.rstrip('/')}/v1/messages/batches/{batch_id}/results"


def deleted_json(batch_id: str) -> dict:
    return {"id": batch_id, "type": "message_batch_deleted"}


def list_page(store: Store, *, after_id=None, before_id=None, limit=None,
              base_url: str = "/") -> dict:
    """GET /v1/messages/batches: newest first, `data, has_more, first_id, last_id`."""
    check_cursors(after_id, before_id)
    limit = parse_limit(limit)
    rows, more = store.list_batches(after_id=after_id or None, before_id=before_id or None,
                                    limit=limit)
    return page_json([batch_json(r, base_url=base_url) for r in rows], more)


def results_lines(store: Store, batch_id: str) -> Iterator[bytes]:
    """GET .../results: one JSON line per request and exactly one "\\n" after each. 400 until
    the batch has ended (results are whole only then)."""
    batch = store.get_batch(batch_id)
    if not batch.ended:
        raise InvalidRequest(f"Message batch {batch_id} is still {batch.status}; its results are "
                             "available once processing_status is 'ended'.")
    for custom_id, result in store.iter_results(batch_id):
        # The stored result is already compact JSON: splice it in rather than re-encode.
        yield b'{"custom_id":' + json.dumps(custom_id).encode() + b',"result":' \
            + result.encode() + b"}\n"


def results_so_far(store: Store, batch_id: str) -> Iterator[bytes]:
    """The results stored so far (a running batch's too), as `results_lines` writes them."""
    store.get_batch(batch_id)          # 404 for an unknown batch
    for custom_id, result in store.iter_results(batch_id):
        yield b'{"custom_id":' + json.dumps(custom_id).encode() + b',"result":' \
            + result.encode() + b"}\n"


def progress_json(store: Store, batch_id: str) -> dict:
    """How far a batch has got right now: the API's `request_counts` stay in `processing` until
    the end, so a progress bar needs this. `answered` counts every request with a result."""
    batch = store.get_batch(batch_id)          # 404 for an unknown batch
    counts = store.item_counts(batch_id)
    answered = sum(counts[kind] for kind in RESULT_TYPES)
    return {"id": batch.id, "type": "message_batch_progress", "processing_status": batch.status,
            "total": batch.total, "answered": answered, "counts": counts}


# -- who owns a batch ---------------------------------------------------------------------
HOST = socket.gethostname()
_LIVE_OWNERS: set[str] = set()     # runners alive in this process


def owner_alive(owner: str | None) -> bool | None:
    """True/False where it can be known (this host), None for another host's runner."""
    if not owner:
        return False
    try:
        host, pid_text, _nonce = owner.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != HOST:
        return None
    if pid == os.getpid():
        return owner in _LIVE_OWNERS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:        # a killed process not yet reaped by its parent is a zombie: dead for us
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _retryable(exc: AnthropicError) -> bool:
    if exc.should_retry is False:
        return False
    return exc.status == 429 or exc.status >= 500


class BatchRunner(LoggingConfigurable):
    """Works message batches through a `ClaudeBridge`, resumably; see the module doc."""

    max_retries = Int(3, config=True,
                      help="Retries of a batch request after an upstream 429, 529 or 5xx before "
                           "its result is `errored`.")
    retry_base_delay = Float(2.0, config=True,
                             help="Seconds before the first retry; doubled for each next one.")
    retry_max_delay = Float(60.0, config=True, help="Longest wait between retries, in seconds.")
    batch_ttl = Float(24 * 3600.0, config=True,
                      help="Seconds a batch may take; then its unfinished requests expire.")
    workers_per_batch = Int(0, config=True,
                            help="Requests of one batch in flight at once (0: twice the bridge's "
                                 "max_concurrency, so a freed slot always has one waiting; the "
                                 "bridge's limiter caps them all together anyway).")
    poll_interval = Float(2.0, config=True,
                          help="Seconds between checks for expiry, cancels from other processes "
                               "and batches left by a stopped runner.")
    lease_timeout = Float(120.0, config=True,
                          help="Seconds without a heartbeat after which another host's runner "
                               "counts as gone and its batches are adopted.")

    def __init__(self, store: Store, bridge, *, clock=time.time, **kwargs):
        super().__init__(**kwargs)
        self.store = store
        self.bridge = bridge
        self.clock = clock
        self.owner = f"{HOST}:{os.getpid()}:{secrets.token_hex(4)}"
        self._tasks: dict[str, asyncio.Task] = {}       # batch id -> its running task
        self._ending: dict[str, asyncio.Task] = {}      # batch id -> cancel/expiry in progress
        self._supervisor: asyncio.Task | None = None
        self._changed = asyncio.Event()
        self.running = False

    @property
    def active_batches(self) -> list[str]:
        """Ids of the batches this runner is working right now."""
        return list(self._tasks)

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Resume unfinished batches (adopting those whose runner is gone) and keep watch."""
        if self.running:
            return
        self.running = True
        _LIVE_OWNERS.add(self.owner)
        await self.poll()
        self._supervisor = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        """Stop working: running requests are ended and stay unfinished, for the next runner."""
        if not self.running:
            return
        self.running = False
        _LIVE_OWNERS.discard(self.owner)
        tasks = [t for t in (self._supervisor, *self._tasks.values(), *self._ending.values()) if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._ending.clear()
        self.store.release_batches(self.owner)

    # -- the API's operations -------------------------------------------------------------
    async def create(self, requests: list[tuple[str, dict]], *,
                     use_cache: bool = False) -> BatchRecord:
        """Store a checked batch (see `validate_batch_requests`) and start working it.

        use_cache: requests the result cache holds are answered at once (stored with the batch,
        billed nothing); the others run and fill it. A batch answered whole by the cache has
        ended when this returns."""
        now = self.clock()
        batch = await asyncio.to_thread(self._store_new, requests, now, use_cache)
        if self.running and not batch.ended:
            self._launch(batch.id)
        return batch

    def _store_new(self, requests: list[tuple[str, dict]], now: float,
                   use_cache: bool) -> BatchRecord:
        cache = getattr(self.bridge, "result_cache", None) if use_cache else None
        answered: dict[int, dict] = {}
        if cache is not None:
            stored = cache.lookup_many([params for _, params in requests])
            answered = {i: {"type": "succeeded", "message": message, "cached": True}
                        for i, message in enumerate(stored) if message is not None}
            cache.record_hits([r["message"] for r in answered.values()], source="batch")
        batch = self.store.create_batch(requests, expires_at=now + self.batch_ttl, created_at=now,
                                        owner=self.owner if self.running else None,
                                        use_cache=use_cache, answered=answered)
        if answered and len(answered) == len(requests) and self.store.finish_batch(batch.id, now):
            self._changed.set()
            batch = self.store.get_batch(batch.id)
        return batch

    async def cancel(self, batch_id: str) -> BatchRecord:
        """Pending requests end `canceled` at once; running ones are ended right after."""
        batch = self.store.begin_cancel(batch_id, self.clock())
        if self.running:
            if batch.owner == self.owner or self._adopt(batch):
                self._end_soon(batch_id)
        return self.store.get_batch(batch_id)

    async def wait(self, batch_id: str, timeout: float | None = None) -> BatchRecord:
        """Until the batch has ended (whoever works it)."""
        async def until_ended():
            while True:
                self._changed.clear()
                batch = self.store.get_batch(batch_id)
                if batch.ended:
                    return batch
                try:
                    await asyncio.wait_for(self._changed.wait(), 0.5)
                except asyncio.TimeoutError:
                    pass
        return await asyncio.wait_for(until_ended(), timeout)

    # -- watching -------------------------------------------------------------------------
    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.poll()
            except Exception:
                self.log.exception("batch runner: check failed")

    async def poll(self) -> None:
        """One round of upkeep: renew leases, end canceled/expired batches, adopt orphans."""
        now = self.clock()
        kept = self.store.heartbeat(self.owner, list(self._tasks), now)
        for batch_id in list(self._tasks):
            if batch_id not in kept:      # our lease lapsed and another runner took over
                self.log.warning("batch %s was adopted by another runner; stopping here", batch_id)
                self._tasks.pop(batch_id).cancel()
        for batch in self.store.unfinished_batches():
            if batch.owner != self.owner and not self._adopt(batch):
                continue
            if batch.status == CANCELING or now >= batch.expires_at:
                self._end_soon(batch.id)
            elif batch.id not in self._tasks and batch.id not in self._ending:
                self._launch(batch.id)

    def _adopt(self, batch: BatchRecord) -> bool:
        alive = owner_alive(batch.owner)
        stale = batch.heartbeat_at is None or self.clock() - batch.heartbeat_at > self.lease_timeout
        if alive or (alive is None and not stale):
            return False
        adopted = self.store.adopt_batch(batch.id, self.owner, expected_owner=batch.owner,
                                         now=self.clock())
        if adopted:
            self.log.info("batch runner: resuming batch %s", batch.id)
        return adopted

    def _launch(self, batch_id: str) -> None:
        task = asyncio.create_task(self._run_batch(batch_id), name=f"batch {batch_id}")
        self._tasks[batch_id] = task
        task.add_done_callback(lambda t: self._tasks.get(batch_id) is t and self._tasks.pop(batch_id))

    def _end_soon(self, batch_id: str) -> None:
        if batch_id not in self._ending:
            task = asyncio.create_task(self._end_early(batch_id))
            self._ending[batch_id] = task
            task.add_done_callback(lambda _: self._ending.pop(batch_id, None))

    async def _end_early(self, batch_id: str) -> None:
        """Cancel or expiry: stop the batch's running requests, then give every unfinished one
        its `canceled`/`expired` result and end the batch."""
        task = self._tasks.pop(batch_id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._settle(batch_id)

    def _settle(self, batch_id: str) -> None:
        batch = self.store.get_batch(batch_id)
        if batch.ended or batch.owner != self.owner:
            return
        now = self.clock()
        if batch.status == CANCELING:
            self.store.end_unfinished(batch_id, "canceled", now)
        elif now >= batch.expires_at:
            self.store.end_unfinished(batch_id, "expired", now)
        if self.store.finish_batch(batch_id, now):
            self._changed.set()

    # -- working a batch ------------------------------------------------------------------
    async def _run_batch(self, batch_id: str) -> None:
        count = self.workers_per_batch or 2 * self.bridge.limiter.capacity
        use_cache = self.store.batch_uses_cache(batch_id)
        workers = [asyncio.create_task(self._worker(batch_id, use_cache))
                   for _ in range(max(1, count))]
        try:
            await asyncio.gather(*workers)
        except BaseException as exc:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            if isinstance(exc, asyncio.CancelledError):
                raise
            # e.g. the disk was full when a result was saved: no worker of ours holds an item
            # now, so the ones left running go back to pending; the next check restarts them.
            self.log.exception("batch %s: working it failed; it restarts at the next check", batch_id)
            self.store.requeue_running(batch_id, self.owner)
            return
        self._settle(batch_id)

    async def _worker(self, batch_id: str, use_cache: bool = False) -> None:
        while True:
            items = self.store.claim_items(batch_id, self.owner, now=self.clock())
            if not items:
                return
            item = items[0]
            result = await self._run_item(item, use_cache)
            self.store.save_result(batch_id, item.idx, result, self.clock())
            self._changed.set()

    async def _run_item(self, item: BatchItem, use_cache: bool = False) -> dict:
        attempt = 0
        while True:
            request_id = new_request_id()
            info: dict = {}
            try:
                message = await self.bridge.create(dict(item.params), source="batch",
                                                   background=True, request_id=request_id,
                                                   cache=use_cache, info=info)
                if info.get("cached"):       # an identical request earlier in this batch
                    return {"type": "succeeded", "message": message, "cached": True}
                return {"type": "succeeded", "message": message}
            except AnthropicError as exc:
                if not self.running or getattr(self.bridge, "_closed", False):
                    # Shutting down: not the request's fault. Leave it unfinished (running), so
                    # the next start runs it again, rather than store an error.
                    raise asyncio.CancelledError() from exc
                if _retryable(exc) and attempt < self.max_retries:
                    delay = min(self.retry_max_delay, self.retry_base_delay * 2 ** attempt)
                    attempt += 1
                    self.log.info("batch %s request %s: %s; retry %d in %.1fs", item.batch_id,
                                  item.custom_id, exc.type, attempt, delay)
                    await asyncio.sleep(delay * random.uniform(0.75, 1.0))
                    continue
                return {"type": "errored", "error": exc.envelope(request_id)}
            except Exception as exc:   # a bug must not leave the item (and batch) unfinished
                self.log.exception("batch %s request %s failed", item.batch_id, item.custom_id)
                error = ApiFailure(f"Internal error while running the request: {exc!r}")
                return {"type": "errored", "error": error.envelope(request_id)}
