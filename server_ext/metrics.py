"""Prometheus metrics: a small registry of our own, and the service's metric set.

Our own registry (about 150 lines) instead of `prometheus_client`: that library's default
registry is process-global, and a Jupyter server or kernel may host other code that uses it;
an instance per server keeps our names out of theirs, and a dependency is saved.
Text exposition format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/).
"""
from __future__ import annotations

import bisect
import math
import threading
from typing import Callable, Iterable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)


def _number(value: float) -> str:
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape_label(value) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple, values: tuple, extra: tuple = ()) -> str:
    pairs = [f'{n}="{_escape_label(v)}"' for n, v in zip(names, values)] + list(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


class Metric:
    kind = "untyped"

    def __init__(self, name: str, help: str, labels: Iterable[str] = ()):
        self.name = name
        self.help = help
        self.labelnames = tuple(labels)
        self._lock = threading.Lock()
        self._values: dict[tuple, object] = {}

    def _key(self, labels: dict) -> tuple:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {tuple(labels)}")
        return tuple(str(labels[n]) for n in self.labelnames)

    def samples(self) -> list[tuple[str, str, float]]:
        """(suffix, label text, value) triples, in a stable order."""
        with self._lock:
            return [("", _labels(self.labelnames, key), value)
                    for key, value in sorted(self._values.items())]

    def expose(self) -> str:
        help_text = self.help.replace("\\", "\\\\").replace("\n", "\\n")
        lines = [f"# HELP {self.name} {help_text}", f"# TYPE {self.name} {self.kind}"]
        lines += [f"{self.name}{suffix}{labels} {_number(value)}"
                  for suffix, labels, value in self.samples()]
        return "\n".join(lines) + "\n"


class Counter(Metric):
    kind = "counter"

    def inc(self, amount: float = 1, **labels) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def value(self, **labels) -> float:
        with self._lock:
            return self._values.get(self._key(labels), 0)


class Gauge(Metric):
    """A value set by hand, or read at scrape time from `function` (-> number, or
    {label values tuple: number} for a labelled gauge)."""
    kind = "gauge"

    def __init__(self, name, help, labels=(), function: Callable | None = None):
        super().__init__(name, help, labels)
        self.function = function

    def set(self, value: float, **labels) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = value

    def inc(self, amount: float = 1, **labels) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def samples(self):
        if self.function is None:
            return super().samples()
        try:
            value = self.function()
        except Exception:       # a broken source must not break the whole scrape
            return []
        if value is None:
            return []
        if not isinstance(value, dict):
            return [("", "", value)]
        return [("", _labels(self.labelnames, tuple(k if isinstance(k, tuple) else (k,))), v)
                for k, v in sorted(value.items())]


class Histogram(Metric):
    kind = "histogram"

    def __init__(self, name, help, labels=(), buckets: Iterable[float] = LATENCY_BUCKETS):
        super().__init__(name, help, labels)
        self.buckets = tuple(sorted(float(b) for b in buckets))

    def observe(self, value: float, **labels) -> None:
        key = self._key(labels)
        with self._lock:
            state = self._values.get(key)
            if state is None:
                state = self._values[key] = [[0] * len(self.buckets), 0.0, 0]
            index = bisect.bisect_left(self.buckets, value)
            if index < len(self.buckets):
                state[0][index] += 1
            state[1] += value
            state[2] += 1

    def count(self, **labels) -> int:
        with self._lock:
            state = self._values.get(self._key(labels))
            return 0 if state is None else state[2]

    def samples(self):
        out = []
        with self._lock:
            items = sorted((k, [list(v[0]), v[1], v[2]]) for k, v in self._values.items())
        for key, (counts, total, count) in items:
            running = 0
            for bound, n in zip(self.buckets, counts):
                running += n
                out.append(("_bucket", _labels(self.labelnames, key, (f'le="{_number(bound)}"',)), running))
            out.append(("_bucket", _labels(self.labelnames, key, ('le="+Inf"',)), count))
            out.append(("_sum", _labels(self.labelnames, key), total))
            out.append(("_count", _labels(self.labelnames, key), count))
        return out


class Registry:
    def __init__(self):
        self._metrics: dict[str, Metric] = {}
        self._lock = threading.Lock()

    def register(self, metric: Metric) -> Metric:
        with self._lock:
            if metric.name in self._metrics:
                raise ValueError(f"metric {metric.name} is already registered")
            self._metrics[metric.name] = metric
        return metric

    def counter(self, name, help, labels=()) -> Counter:
        return self.register(Counter(name, help, labels))

    def gauge(self, name, help, labels=(), function=None) -> Gauge:
        return self.register(Gauge(name, help, labels, function))

    def histogram(self, name, help, labels=(), buckets=LATENCY_BUCKETS) -> Histogram:
        return self.register(Histogram(name, help, labels, buckets))

    def get(self, name: str) -> Metric:
        return self._metrics[name]

    def expose(self) -> str:
        with self._lock:
            metrics = list(self._metrics.values())
        return "".join(m.expose() for m in metrics)


TOKEN_TYPES = (("input", "input_tokens"), ("output", "output_tokens"),
               ("cache_read", "cache_read_input_tokens"),
               ("cache_creation", "cache_creation_input_tokens"))
QUOTA_STATUS_VALUE = {"allowed": 0, "allowed_warning": 1, "rejected": 2}


class ServiceMetrics:
    """The metric set `GET /metrics` serves, one instance per server.

    Fed by the HTTP layer (`observe_request`, `observe_first_token`) and by the bridge's run
    listener (tokens, cost, runs: API, batch and magic runs alike); queue depth, processes,
    batch items and plan quota are read from their owners at scrape time.
    """

    def __init__(self, registry: Registry | None = None):
        r = self.registry = registry or Registry()
        self.requests = r.counter(
            "claude_nb_http_requests_total", "HTTP requests answered, by route, method and status.",
            ("route", "method", "status"))
        self.latency = r.histogram(
            "claude_nb_http_request_duration_seconds",
            "Time from receiving a request to its last byte (streams included).",
            ("route", "method"))
        self.first_token = r.histogram(
            "claude_nb_time_to_first_token_seconds",
            "Time from receiving a request to its first streamed content (text, thinking or tool call).",
            ("route", "model"), TTFT_BUCKETS)
        self.runs = r.counter(
            "claude_nb_runs_total", "CLI runs, by model, source (api, batch, magic, ...) and status.",
            ("model", "source", "status"))
        self.run_duration = r.histogram(
            "claude_nb_run_duration_seconds", "Duration of CLI runs.", ("model", "source"))
        self.tokens = r.counter(
            "claude_nb_tokens_total", "Tokens used by CLI runs, as the CLI reported them.",
            ("model", "type"))
        self.cost = r.counter(
            "claude_nb_cost_usd_total", "Cost of CLI runs in USD, as the CLI reported it "
            "(list-price estimate for runs that ended early).", ("model",))
        self.queue_depth = r.gauge(
            "claude_nb_queue_depth", "Requests waiting for a CLI slot (live and batch).")
        self.active = r.gauge("claude_nb_active_requests", "Requests holding a CLI slot.")
        self.capacity = r.gauge("claude_nb_concurrency_limit", "CLI slots (c.ClaudeBridge.max_concurrency).")
        self.processes = r.gauge(
            "claude_nb_cli_processes", "Claude Code CLI processes: running a request (live), "
            "pre-started and waiting (idle), kept for a chat (session), starting.", ("state",))
        self.batch_items = r.gauge(
            "claude_nb_batch_items", "Items of unfinished message batches, by state.", ("state",))
        self.quota_status = r.gauge(
            "claude_nb_plan_quota_status", "Latest plan rate-limit status per window reported by "
            "the CLI: 0 allowed, 1 allowed_warning, 2 rejected.", ("window",))
        self.quota_utilization = r.gauge(
            "claude_nb_plan_quota_utilization", "Latest plan utilization (0-1) per window, when reported.",
            ("window",))

    # -- the HTTP layer -------------------------------------------------------------------
    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.inc(route=route, method=method, status=str(status))
        self.latency.observe(seconds, route=route, method=method)

    def observe_first_token(self, route: str, model: str, seconds: float) -> None:
        self.first_token.observe(seconds, route=route, model=model or "unknown")

    async def watch_first_token(self, events, route: str, elapsed: Callable[[], float]):
        """Pass Anthropic stream events through, observing when the first content arrives
        (`elapsed()` -> seconds since the request came in)."""
        model, seen = "", False
        try:
            async for event in events:
                if not seen:
                    kind = event.get("type")
                    if kind == "message_start":
                        model = (event.get("message") or {}).get("model") or ""
                    elif kind == "content_block_delta" or (
                            kind == "content_block_start"
                            and (event.get("content_block") or {}).get("type") == "tool_use"):
                        self.observe_first_token(route, model, elapsed())
                        seen = True
                yield event
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()     # a client that left ends the run now, not at GC

    # -- sources --------------------------------------------------------------------------
    def on_run(self, record) -> None:
        """A `bridge.run_listeners` entry."""
        model = record.model or "unknown"
        self.runs.inc(model=model, source=record.source, status=record.status)
        self.run_duration.observe(record.duration_ms / 1000.0, model=model, source=record.source)
        usage = record.usage or {}
        for label, key in TOKEN_TYPES:
            amount = int(usage.get(key) or 0)
            if amount:
                self.tokens.inc(amount, model=model, type=label)
        if record.cost_usd:
            self.cost.inc(float(record.cost_usd), model=model)

    def attach_bridge(self, bridge) -> "ServiceMetrics":
        if self.on_run not in bridge.run_listeners:
            bridge.run_listeners.append(self.on_run)
        self.queue_depth.function = lambda: bridge.limiter.queued
        self.active.function = lambda: bridge.limiter.active
        self.capacity.function = lambda: bridge.limiter.capacity

        def processes():
            pool = getattr(bridge, "pool", None)
            stats = pool.stats() if pool is not None and hasattr(pool, "stats") else {}
            return {"live": len(bridge.live), "idle": int(stats.get("idle", 0)),
                    "session": int(stats.get("sessions", 0)),
                    "starting": int(stats.get("starting", 0))}
        self.processes.function = processes
        return self

    def attach_batch_counts(self, counts: Callable[[], dict]) -> "ServiceMetrics":
        """`counts()` -> {state: number of items} over unfinished batches."""
        self.batch_items.function = counts
        return self

    def attach_store(self, store) -> "ServiceMetrics":
        """Batch items by state, summed over the store's unfinished batches
        (`store.unfinished_batches()`, `store.item_counts(batch_id)`)."""
        def counts():
            total: dict = {}
            for batch in store.unfinished_batches():
                for state, n in store.item_counts(batch.id).items():
                    total[state] = total.get(state, 0) + n
            return total
        return self.attach_batch_counts(counts)

    def attach_quota(self, tracker) -> "ServiceMetrics":
        def status():
            return {k: QUOTA_STATUS_VALUE[w["status"]] for k, w in tracker.snapshot()["windows"].items()}

        def utilization():
            return {k: w["utilization"] for k, w in tracker.snapshot()["windows"].items()
                    if w["utilization"] is not None}
        self.quota_status.function = status
        self.quota_utilization.function = utilization
        return self

    def expose(self) -> str:
        return self.registry.expose()
