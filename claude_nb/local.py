"""The server's batch and report endpoints, in-process: for kernels with no Jupyter server.

The same store (SQLite under the Jupyter data dir) and the same resumable batch runner as the
server, driven on the in-process transport's private loop. So a batch submitted from terminal
IPython survives a restart (the next process adopts and finishes it), and the usage reports
count `%%claude` cells run in-process too.
"""
from __future__ import annotations

import json
import threading
from typing import Iterator

from .client import ClaudeError, InProcessTransport
from .protocol.errors import AnthropicError

_lock = threading.RLock()


class LocalState:
    """One store and one batch runner per in-process transport."""

    def __init__(self, transport: InProcessTransport):
        from .service.cache import ResultCache
        from .store import Store
        self.transport = transport
        self.store = Store()
        config = transport._config
        self.cache = ResultCache(self.store, **({"config": config} if config else {}))
        self.runner = None

    def attach(self, bridge) -> None:
        """Record the bridge's runs here, let it read files and answer from the result cache."""
        self.store.attach(bridge)
        self.cache.attach(bridge)

    def batch_runner(self):
        with _lock:
            if self.runner is None:
                from .batches import BatchRunner
                config = self.transport._config
                runner = BatchRunner(self.store, self.transport.bridge,
                                     **({"config": config} if config else {}))
                self.transport.run(runner.start())
                self.runner = runner
            return self.runner


def local_state(transport: InProcessTransport) -> LocalState:
    """The transport's store (and runner), made once. Its bridge records every run there:
    the transport attaches the store when it makes the bridge (see `InProcessTransport.bridge`)."""
    with _lock:
        state = getattr(transport, "_local_state", None)
        if state is None:
            state = transport._local_state = LocalState(transport)
    transport.bridge          # makes the bridge (and attaches the store) if not yet done
    return state


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except AnthropicError as exc:
        raise ClaudeError.wrap(exc) from None


class LocalBatches:
    """The Message Batches API over the local store and runner."""

    def __init__(self, transport: InProcessTransport):
        self.transport = transport
        self.state = local_state(transport)

    def create(self, requests: list[dict], *, cache: bool = False) -> dict:
        from .batches import batch_json, validate_batch_requests
        checked = _call(validate_batch_requests, {"requests": requests})
        runner = self.state.batch_runner()
        record = _call(self.transport.run, runner.create(checked, use_cache=cache))
        return batch_json(record)

    def retrieve(self, batch_id: str) -> dict:
        from .batches import batch_json
        self.state.batch_runner()          # resumes it here if its last runner is gone
        return batch_json(_call(self.state.store.get_batch, batch_id))

    def cancel(self, batch_id: str) -> dict:
        from .batches import batch_json
        runner = self.state.batch_runner()
        return batch_json(_call(self.transport.run, runner.cancel(batch_id)))

    def progress(self, batch_id: str, batch: dict) -> int | None:
        counts = self.state.store.item_counts(batch_id)
        return sum(n for state, n in counts.items() if state not in ("pending", "running"))

    def results(self, batch: dict) -> Iterator[dict]:
        from .batches import results_lines
        for line in _call(lambda: list(results_lines(self.state.store, batch["id"]))):
            yield json.loads(line)

    def results_so_far(self, batch_id: str) -> Iterator[dict]:
        from .batches import results_so_far
        for line in _call(lambda: list(results_so_far(self.state.store, batch_id))):
            yield json.loads(line)


class LocalCache:
    """The result cache in this process's store."""

    def __init__(self, transport: InProcessTransport):
        self.cache = local_state(transport).cache

    def clear(self) -> int:
        return self.cache.clear()

    def stats(self) -> dict:
        return self.cache.stats()

    def contains(self, requests: list[dict]) -> list[bool]:
        return self.cache.contains_many(requests)


def local_report(transport: InProcessTransport, path: str, params: dict) -> dict:
    """GET /v1/organizations/{usage_report/messages,cost_report}, computed here."""
    from . import reports
    query = {k: v for k, v in params.items() if v is not None}
    store = local_state(transport).store
    if path.endswith("usage_report/messages"):
        return _call(reports.usage_report_from_query, store, query)
    if path.endswith("cost_report"):
        return _call(reports.cost_report_from_query, store, query)
    raise ClaudeError(f"No such report: {path}", status=404)
