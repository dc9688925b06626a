"""No server (terminal IPython, scripts): the service runs in this process.

A private asyncio loop in a worker thread drives `ClaudeBridge.stream`; events come back to
the caller through a queue (magics are synchronous, and `asyncio.run` fails inside a running
kernel loop). The transport owns a `Service` as the server does, so batches and the usage
record live in the same store.
"""
from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import json
import queue
import sys
import threading
from typing import Iterator

from ...protocol.errors import AnthropicError, new_request_id
from ..errors import ClaudeError
from .base import Transport


class _LoopThread:
    """A private asyncio loop in a daemon thread: where the in-process bridge lives."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="claude-nb-loop",
                                       daemon=True)
        self.thread.start()

    def submit(self, coro) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)


class InProcessTransport(Transport):
    """The CLI bridge in this process, for terminal IPython and scripts (no Jupyter server).

    It owns a `Service` as the server does (bridge, store, batch runner, quota tracker), made
    on first use: so runs are recorded in the same usage store, and a batch submitted here
    survives a restart (the next process adopts and finishes it)."""

    kind = "in-process"

    def __init__(self, service=None, *, config=None):
        self._service = service
        self._config = config
        self._loop: _LoopThread | None = None
        self._lock = threading.Lock()
        self._costs: dict[str, tuple[float, bool]] = {}
        if service is not None:
            service.bridge.run_listeners.append(self._on_run)

    def describe(self) -> str:
        return "in-process Claude Code CLI bridge (no Jupyter server)"

    @property
    def service(self):
        with self._lock:
            if self._service is None:
                self._service = self._make_service()
                self._service.bridge.run_listeners.append(self._on_run)
            return self._service

    def _make_service(self):
        from ...bridge import ClaudeBridge
        from ...service.runtime import Service
        from ...service.store import Store
        traits = {"config": self._config} if self._config else {}
        bridge = ClaudeBridge(**traits)
        try:
            store = Store()
        except Exception as exc:   # an unwritable data dir must not stop answers
            print(f"claude_nb: usage will not be recorded ({exc}).", file=sys.stderr)
            store = None
        return Service(bridge, store, traits=traits)

    @property
    def bridge(self):
        return self.service.bridge

    @property
    def loop(self) -> _LoopThread:
        with self._lock:
            if self._loop is None:
                self._loop = _LoopThread()
                atexit.register(self._kill_all)
            return self._loop

    def _on_run(self, record) -> None:
        self._costs[record.request_id] = (record.cost_usd, record.cost_estimated)
        while len(self._costs) > 1000:
            self._costs.pop(next(iter(self._costs)))

    def cost_of(self, request_id, model, usage):
        if request_id in self._costs:
            return self._costs[request_id]
        return super().cost_of(request_id, model, usage)

    def models(self) -> list[dict]:
        from ...protocol.models import list_models
        return [m.to_json() for m in list_models()]

    def quota(self) -> dict:
        return self.service.quota.snapshot()

    def cli_status(self) -> dict:
        from ...bridge.status import cli_status
        return self.run(cli_status(self.bridge.cli_path))

    def store(self):
        """The service's store; batches and reports need it."""
        store = self.service.store
        if store is None:
            raise ClaudeError("Batches and reports need the usage store, which could not be opened "
                              "(see the warning printed earlier).", status=500, type="api_error")
        return store

    def batches(self) -> "InProcessBatches":
        return InProcessBatches(self)

    def result_cache(self) -> "InProcessResultCache":
        return InProcessResultCache(self)

    def report(self, path: str, params: dict) -> dict:
        """GET /v1/organizations/{usage_report/messages,cost_report}, computed here."""
        from ...service import reports
        query = {k: v for k, v in params.items() if v is not None}
        if path.endswith("usage_report/messages"):
            return _call(reports.usage_report_from_query, self.store(), query)
        if path.endswith("cost_report"):
            return _call(reports.cost_report_from_query, self.store(), query)
        raise ClaudeError(f"No such report: {path}", status=404)

    def run(self, coro, timeout: float | None = None):
        """Run a coroutine on the private loop and wait for it (interruptible)."""
        future = self.loop.submit(coro)
        try:
            return _wait(future, timeout)
        except BaseException:
            future.cancel()
            raise

    def stream(self, body: dict, *, source: str = "client", session: str | None = None,
               cache: bool = False):
        from ...protocol.validation import validate_message_request
        body = dict(body)
        body.pop("stream", None)
        try:
            validate_message_request(body)
        except AnthropicError as exc:
            raise ClaudeError.wrap(exc) from None
        request_id = new_request_id()
        handoff: queue.Queue = queue.Queue()
        control: dict = {}

        def abort():
            future = control.get("future")
            if future is not None:
                future.cancel()
            handoff.put(("end", None))
        return (self._events(body, source, session, request_id, handoff, control, cache),
                request_id, abort)

    def end_session(self, session: str) -> None:
        if self._loop is not None and self._service is not None:
            self.run(self._service.bridge.end_session(session), timeout=15)

    def _events(self, body, source, session, request_id, handoff, control, cache=False):
        bridge = self.bridge
        started = threading.Event()
        finished = threading.Event()      # set once the bridge has cleaned up (process ended)

        async def pump():
            started.set()
            try:
                async for event in bridge.stream(body, source=source, request_id=request_id,
                                                 session=session, cache=cache):
                    handoff.put(("event", event))
                handoff.put(("end", None))
            except AnthropicError as exc:
                handoff.put(("error", exc))
            except asyncio.CancelledError:
                handoff.put(("end", None))
                raise
            except Exception as exc:   # a bug below must still reach the caller as an error
                handoff.put(("error", AnthropicError(f"{type(exc).__name__}: {exc}")))
            finally:
                finished.set()

        future = control["future"] = self.loop.submit(pump())
        try:
            while True:
                try:
                    kind, item = handoff.get(timeout=0.2)
                except queue.Empty:
                    continue
                if kind == "event":
                    yield item
                elif kind == "error":
                    raise ClaudeError.wrap(item, request_id) from None
                else:
                    return
        finally:
            if not future.done():
                future.cancel()      # ends the CLI process (the bridge closes it on cancel)
            if started.is_set():
                finished.wait(timeout=15)

    def close(self) -> None:
        """Stop the service (unfinished batch requests stay in the store for the next process,
        running CLI processes end) and the private loop."""
        loop = self._loop
        if loop is None:
            return
        if self._service is not None:
            try:
                loop.submit(self._service.stop()).result(timeout=15)
            except Exception:
                self._kill_all()
        loop.loop.call_soon_threadsafe(loop.loop.stop)
        loop.thread.join(timeout=5)
        self._loop = None

    def _kill_all(self) -> None:
        if self._service is None:
            return
        for proc in list(self._service.bridge.live):
            proc.kill_now()


def _call(fn, *args, **kwargs):
    """Run a service call here; its AnthropicError reaches the caller as a ClaudeError."""
    try:
        return fn(*args, **kwargs)
    except AnthropicError as exc:
        raise ClaudeError.wrap(exc) from None


class InProcessBatches:
    """The Message Batches API over the in-process service's store and runner."""

    def __init__(self, transport: InProcessTransport):
        self.transport = transport
        self.store = transport.store()

    def _runner(self):
        service = self.transport.service
        self.transport.run(service.start_batch_runner())    # resumes batches whose runner is gone
        return service.runner

    def create(self, requests: list[dict], *, cache: bool = False) -> dict:
        from ...service.batches import batch_json, validate_batch_requests
        checked = _call(validate_batch_requests, {"requests": requests})
        runner = self._runner()
        return batch_json(_call(self.transport.run, runner.create(checked, use_cache=cache)))

    def retrieve(self, batch_id: str) -> dict:
        from ...service.batches import batch_json
        self._runner()
        return batch_json(_call(self.store.get_batch, batch_id))

    def cancel(self, batch_id: str) -> dict:
        from ...service.batches import batch_json
        runner = self._runner()
        return batch_json(_call(self.transport.run, runner.cancel(batch_id)))

    def progress(self, batch_id: str, batch: dict) -> int | None:
        from ...service.batches import progress_json
        return _call(progress_json, self.store, batch_id)["answered"]

    def results(self, batch: dict) -> Iterator[dict]:
        from ...service.batches import results_lines
        for line in _call(lambda: list(results_lines(self.store, batch["id"]))):
            yield json.loads(line)

    def results_so_far(self, batch_id: str) -> Iterator[dict]:
        from ...service.batches import results_so_far
        for line in _call(lambda: list(results_so_far(self.store, batch_id))):
            yield json.loads(line)


class InProcessResultCache:
    """The result cache in the in-process service's store (the one its bridge answers from)."""

    def __init__(self, transport: InProcessTransport):
        self.transport = transport
        self.cache = transport.service.result_cache
        if self.cache is None:
            raise ClaudeError("The result cache needs the usage store, which could not be opened "
                              "(see the warning printed earlier).", status=500, type="api_error")

    def clear(self) -> int:
        return self.cache.clear()

    def info(self) -> dict:
        return self.cache.stats()

    def lookup(self, requests: list[dict]) -> tuple[list[bool], int]:
        return self.cache.contains_many(requests), int(self.transport.bridge.max_concurrency)


def _wait(future: concurrent.futures.Future, timeout: float | None):
    """future.result(), in short waits so a KeyboardInterrupt gets through at once."""
    import time
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            return future.result(timeout=0.2)
        except concurrent.futures.TimeoutError:
            if deadline is not None and time.monotonic() > deadline:
                raise
