"""The metrics registry (exposition checked by Prometheus' own parser) and the service metric
set fed by real CLI runs."""
import asyncio

import pytest

from server_ext.metrics import Registry, ServiceMetrics
from claude_nb.service.quota import QuotaTracker
from tests.support.fake_upstream import Reply
from tests.support.http import parse_prometheus as parse

def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def test_counter_gauge_histogram_exposition():
    r = Registry()
    c = r.counter("jobs_total", "Jobs done.", ("kind",))
    g = r.gauge("temperature", "Temperature.\nMultiline help with \\ backslash.")
    h = r.histogram("wait_seconds", "Wait.", ("kind",), buckets=(0.1, 1.0))
    c.inc(kind='odd "quoted"\nname')
    c.inc(2, kind="plain")
    g.set(-3.5)
    for v in (0.05, 0.1, 0.5, 7.0):
        h.observe(v, kind="a")
    text = r.expose()
    samples = parse(text)
    assert value(samples, "jobs_total", kind='odd "quoted"\nname') == 1
    assert value(samples, "jobs_total", kind="plain") == 2
    assert value(samples, "temperature") == -3.5
    # buckets are cumulative and le is inclusive
    assert value(samples, "wait_seconds_bucket", kind="a", le="0.1") == 2
    assert value(samples, "wait_seconds_bucket", kind="a", le="1.0") == 3
    assert value(samples, "wait_seconds_bucket", kind="a", le="+Inf") == 4
    assert value(samples, "wait_seconds_count", kind="a") == 4
    assert value(samples, "wait_seconds_sum", kind="a") == pytest.approx(7.65)
    assert "# TYPE wait_seconds histogram" in text and "# TYPE jobs_total counter" in text


def test_misuse_is_refused():
    r = Registry()
    c = r.counter("x_total", "X.", ("a",))
    with pytest.raises(ValueError):
        c.inc(b="1")
    with pytest.raises(ValueError):
        c.inc(-1, a="1")
    with pytest.raises(ValueError):
        r.counter("x_total", "again")


def test_gauge_functions_are_read_at_scrape_time_and_may_fail():
    r = Registry()
    depth = [3]
    r.gauge("depth", "Depth.", function=lambda: depth[0])
    r.gauge("by_state", "By state.", ("state",), function=lambda: {"a": 1, "b": 2})
    r.gauge("broken", "Broken.", function=lambda: 1 / 0)
    assert value(parse(r.expose()), "depth") == 3
    depth[0] = 5
    samples = parse(r.expose())
    assert value(samples, "depth") == 5 and value(samples, "by_state", state="b") == 2


def test_registries_are_private_to_their_owner():
    prometheus_client = pytest.importorskip("prometheus_client")
    ServiceMetrics()
    ServiceMetrics()       # a second server in one process: no clash
    names = {m.name for m in prometheus_client.REGISTRY.collect()}
    assert not any(n.startswith("claude_nb") for n in names)


def test_quota_gauges():
    tracker = QuotaTracker()
    tracker.update({"status": "allowed_warning", "rateLimitType": "five_hour", "utilization": 0.8,
                    "resetsAt": 4_000_000_000})
    tracker.update({"status": "allowed", "rateLimitType": "seven_day", "resetsAt": 4_000_000_000})
    metrics = ServiceMetrics().attach_quota(tracker)
    samples = parse(metrics.expose())
    assert value(samples, "claude_nb_plan_quota_status", window="five_hour") == 1
    assert value(samples, "claude_nb_plan_quota_status", window="seven_day") == 0
    assert value(samples, "claude_nb_plan_quota_utilization", window="five_hour") == 0.8
    assert value(samples, "claude_nb_plan_quota_utilization", window="seven_day") is None


async def test_runs_feed_tokens_cost_and_gauges(bridge, upstream):
    bridge.max_concurrency = 1
    metrics = ServiceMetrics().attach_bridge(bridge)
    metrics.attach_batch_counts(lambda: {"pending": 4, "running": 1})
    upstream.push(Reply.text("slow answer", hang=1.5, output_tokens=11), Reply.text("second", output_tokens=3))

    body = {"model": "sonnet", "max_tokens": 50, "messages": [{"role": "user", "content": "x"}]}
    first = asyncio.ensure_future(bridge.create(body))
    second = asyncio.ensure_future(bridge.create(body, source="batch", background=True))
    for _ in range(400):       # wait for the state, not for a time
        if bridge.limiter.queued == 1 and bridge.live:
            break
        await asyncio.sleep(0.025)
    during = parse(metrics.expose())
    assert value(during, "claude_nb_queue_depth") == 1
    assert value(during, "claude_nb_active_requests") == 1
    assert value(during, "claude_nb_concurrency_limit") == 1
    assert value(during, "claude_nb_cli_processes", state="live") == 1
    assert value(during, "claude_nb_batch_items", state="pending") == 4
    await asyncio.gather(first, second)

    after = parse(metrics.expose())
    assert value(after, "claude_nb_queue_depth") == 0
    assert value(after, "claude_nb_cli_processes", state="live") == 0
    runs = {k: v for k, v in after.items() if k[0] == "claude_nb_runs_total"}
    models = {dict(k[1])["model"] for k in runs}
    assert len(models) == 1
    model = models.pop()
    assert value(after, "claude_nb_runs_total", model=model, source="api", status="succeeded") == 1
    assert value(after, "claude_nb_runs_total", model=model, source="batch", status="succeeded") == 1
    assert value(after, "claude_nb_tokens_total", model=model, type="output") == 14
    assert value(after, "claude_nb_tokens_total", model=model, type="input") > 0
    assert value(after, "claude_nb_cost_usd_total", model=model) > 0
    assert value(after, "claude_nb_run_duration_seconds_count", model=model, source="api") == 1


async def test_failed_runs_are_counted_as_errored(bridge, upstream):
    metrics = ServiceMetrics().attach_bridge(bridge)
    upstream.push(Reply.error(529, "overloaded_error", "busy"))
    with pytest.raises(Exception):
        await bridge.create({"model": "sonnet", "max_tokens": 50,
                             "messages": [{"role": "user", "content": "x"}]})
    samples = parse(metrics.expose())
    errored = [k for k, v in samples.items()
               if k[0] == "claude_nb_runs_total" and dict(k[1])["status"] == "errored" and v == 1]
    assert len(errored) == 1


def test_batch_items_summed_over_unfinished_batches():
    class Batch:
        def __init__(self, id):
            self.id = id

    class StoreLike:          # the store's two read calls, as store.py defines them
        def unfinished_batches(self):
            return [Batch("msgbatch_a"), Batch("msgbatch_b")]

        def item_counts(self, batch_id):
            return {"msgbatch_a": {"pending": 3, "running": 1, "succeeded": 5},
                    "msgbatch_b": {"pending": 2, "running": 0, "errored": 1}}[batch_id]
    samples = parse(ServiceMetrics().attach_store(StoreLike()).expose())
    assert value(samples, "claude_nb_batch_items", state="pending") == 5
    assert value(samples, "claude_nb_batch_items", state="running") == 1
    assert value(samples, "claude_nb_batch_items", state="succeeded") == 5
    assert value(samples, "claude_nb_batch_items", state="errored") == 1
