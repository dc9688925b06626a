"""Plan quota: the tracker alone, then fed by the real CLI in subscription mode.

The fake upstream sends the `anthropic-ratelimit-unified-*` headers the CLI 2.1.197 reads
(found by experiment and in the CLI: `-status`, `-reset`, `-representative-claim`,
`-<5h|7d|7d_oi|overage>-utilization`, `-<...>-reset`, `-<...>-surpassed-threshold`,
`-overage-status`, `-overage-in-use`, ...).
"""
import time

import pytest

from claude_nb.protocol.errors import AnthropicError
from claude_nb.kernel.transports import HttpTransport, InProcessTransport
from claude_nb.kernel.transports.http import QUOTA_PATH
from claude_nb.kernel.quota import Quota, quota
from claude_nb.service.quota import NOT_REPORTED, QuotaTracker, tracker_for
from tests.support.fake_upstream import Reply

# The CLI tests below feed reset times to the real CLI and read them back with the real clock, so
# "now" is the clock at collection, never a fixed date that later makes every reset look passed.
NOW = int(time.time())
RESET_5H = NOW + 2 * 3600 + 300
RESET_7D = NOW + 3 * 86400


class Clock:
    def __init__(self, t=NOW):
        self.t = t

    def __call__(self):
        return self.t


def test_nothing_reported_yet():
    snap = QuotaTracker().snapshot()
    assert snap["status"] == "unknown" and snap["windows"] == {} and snap["note"] == NOT_REPORTED
    assert "subscription" in Quota(snap).status_line()


def test_latest_report_per_window_and_overall():
    clock = Clock()
    tracker = QuotaTracker(clock=clock)
    tracker.update({"status": "allowed", "resetsAt": RESET_7D, "rateLimitType": "seven_day",
                    "isUsingOverage": False})
    tracker.update({"status": "allowed_warning", "resetsAt": RESET_5H, "rateLimitType": "five_hour",
                    "utilization": 0.85, "surpassedThreshold": 0.8, "isUsingOverage": False})
    snap = tracker.snapshot()
    assert snap["status"] == "allowed_warning" and snap["limited_by"] == "five_hour"
    five = snap["windows"]["five_hour"]
    assert five["utilization"] == 0.85 and five["surpassed_threshold"] == 0.8
    assert five["resets_in_seconds"] == 2 * 3600 + 300 and not five["reset_passed"]
    assert snap["windows"]["seven_day"]["status"] == "allowed"
    line = Quota(snap).status_line()
    assert "warning" in line and "5-hour session limit, 85% used" in line and "resets in 2h 05m" in line

    # back to allowed for the same window: status clears, the last utilization figure stays
    clock.t += 60
    tracker.update({"status": "allowed", "resetsAt": RESET_5H, "rateLimitType": "five_hour"})
    snap = tracker.snapshot()
    assert snap["status"] == "allowed" and snap["limited_by"] is None
    assert snap["windows"]["five_hour"]["utilization"] == 0.85


def test_rejection_clears_once_its_window_resets():
    clock = Clock()
    tracker = QuotaTracker(clock=clock)
    tracker.update({"status": "rejected", "resetsAt": RESET_7D, "rateLimitType": "seven_day"})
    snap = tracker.snapshot()
    assert snap["status"] == "rejected" and snap["limited_by"] == "seven_day"
    assert snap["resets_at"] == snap["windows"]["seven_day"]["resets_at"]
    assert "limit reached" in Quota(snap).status_line()
    clock.t = RESET_7D + 1
    snap = tracker.snapshot()
    assert snap["status"] == "allowed" and snap["windows"]["seven_day"]["reset_passed"]


def test_reports_without_a_window_and_garbage():
    tracker = QuotaTracker()
    tracker.update({"status": "allowed", "isUsingOverage": False})   # upstream sent no headers
    assert tracker.snapshot()["status"] == "allowed"
    assert list(tracker.snapshot()["windows"]) == ["plan"]
    tracker.update({"status": "weird"})
    tracker.update("not a dict")
    assert tracker.events_seen == 1


def test_state_round_trips_for_persistence():
    saved = []
    tracker = QuotaTracker(clock=Clock(), on_change=saved.append)
    tracker.update({"status": "allowed_warning", "resetsAt": RESET_5H, "rateLimitType": "five_hour",
                    "utilization": 0.9})
    assert len(saved) == 1
    restored = QuotaTracker(clock=Clock(), state=saved[-1])
    assert restored.snapshot() == tracker.snapshot()
    assert QuotaTracker(state={"version": 99}).snapshot()["status"] == "unknown"


def test_notebook_view():
    tracker = QuotaTracker(clock=Clock())
    tracker.update({"status": "allowed_warning", "resetsAt": RESET_5H, "rateLimitType": "five_hour",
                    "utilization": 0.91})
    q = Quota.from_source(tracker)
    assert q.status == "allowed_warning" and str(q) == q.status_line()
    md = q._repr_markdown_()
    assert "| 5-hour session limit | allowed_warning | 91% |" in md
    assert Quota.from_source(q.to_dict()).status_line() == q.status_line()
    with pytest.raises(TypeError):
        Quota.from_source(42)


def test_quota_reads_an_http_transport():
    answer = QuotaTracker().snapshot()

    class Recorded(HttpTransport):
        asked = []

        def request(self, method, path, **kw):
            self.asked.append((method, path))
            return answer
    transport = Recorded("http://127.0.0.1:9/", "t")
    assert quota(transport).status == "unknown"
    assert transport.asked == [("GET", QUOTA_PATH)]


def test_summary_for_health():
    tracker = QuotaTracker(clock=Clock())
    tracker.update({"status": "rejected", "resetsAt": RESET_5H, "rateLimitType": "five_hour"})
    assert tracker.summary() == {"status": "rejected", "limited_by": "five_hour",
                                 "resets_at": tracker.snapshot()["resets_at"],
                                 "updated_at": tracker.snapshot()["updated_at"]}


# -- the real CLI, subscription login, rate-limit headers from the upstream ------------------

def unified(**headers):
    return {"anthropic-ratelimit-unified-" + k.replace("_", "-"): str(v)
            for k, v in headers.items()}


async def run(bridge, text="hi"):
    return await bridge.create({"model": "sonnet", "max_tokens": 50,
                                "messages": [{"role": "user", "content": text}]})


async def test_cli_reports_a_warning_and_the_tracker_keeps_it(subscription_env, bridge, upstream):
    upstream.default_headers = unified(**{
        "status": "allowed_warning", "reset": RESET_5H, "representative-claim": "five_hour",
        "5h-utilization": 0.86, "5h-reset": RESET_5H, "5h-surpassed-threshold": 0.8,
        "7d-utilization": 0.2, "7d-reset": RESET_7D})
    seen = []
    bridge.rate_limit_listeners.append(seen.append)
    tracker = QuotaTracker().attach(bridge)
    message = await run(bridge)
    # allowed_warning is a warning: the answer arrives whole
    assert message["content"][0]["text"] == "You said: hi"
    assert upstream.message_requests[-1].headers.get("Authorization", "").startswith("Bearer sk-ant-oat01")
    # (2.1.332 adds more keys, e.g. `unifiedWindows`; these are the ones every version sends)
    expected = {"status": "allowed_warning", "resetsAt": RESET_5H, "rateLimitType": "five_hour",
                "utilization": 0.86, "isUsingOverage": False, "surpassedThreshold": 0.8}
    assert [{k: info.get(k) for k in expected} for info in seen] == [expected]
    snap = tracker.snapshot()
    assert snap["status"] == "allowed_warning" and snap["limited_by"] == "five_hour"
    assert snap["windows"]["five_hour"]["utilization"] == 0.86


async def test_cli_reports_a_rejection_with_the_429(subscription_env, bridge, upstream):
    headers = unified(status="rejected", reset=RESET_7D, **{"representative-claim": "seven_day"})
    upstream.push(Reply.error(429, "rate_limit_error", "limit reached", headers=headers))
    tracker = QuotaTracker().attach(bridge)
    with pytest.raises(AnthropicError) as info:
        await run(bridge)
    assert info.value.status == 429
    snap = tracker.snapshot()
    assert snap["status"] == "rejected" and snap["limited_by"] == "seven_day"
    assert snap["windows"]["seven_day"]["resets_in_seconds"] > 0


async def test_cli_reports_overage(subscription_env, bridge, upstream):
    upstream.default_headers = unified(**{
        "status": "allowed", "reset": RESET_7D, "representative-claim": "seven_day",
        "overage-status": "allowed", "overage-in-use": "true"})
    tracker = QuotaTracker().attach(bridge)
    await run(bridge)
    window = tracker.snapshot()["windows"]["seven_day"]
    assert window["status"] == "allowed" and window["overage_status"] == "allowed"


async def test_api_key_logins_report_no_quota(bridge, upstream):
    upstream.default_headers = unified(status="allowed_warning", reset=RESET_5H,
                                       **{"representative-claim": "five_hour"})
    tracker = QuotaTracker().attach(bridge)
    await run(bridge)
    assert tracker.snapshot()["status"] == "unknown"


async def test_one_tracker_per_bridge_serves_quota(subscription_env, bridge, upstream):
    tracker = tracker_for(bridge)
    assert tracker_for(bridge) is tracker and bridge.rate_limit_listeners.count(tracker.update) == 1
    upstream.default_headers = unified(**{
        "status": "allowed", "reset": RESET_5H, "representative-claim": "five_hour"})
    await run(bridge)

    from claude_nb.service.runtime import Service
    transport = InProcessTransport(Service(bridge, None))
    for source in (bridge, transport, tracker):
        q = quota(source)
        assert q.status == "allowed" and list(q.windows) == ["five_hour"]
        assert q.status_line().startswith("Claude plan quota: OK")
