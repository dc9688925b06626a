"""Plan quota: the subscription rate-limit status the Claude Code CLI reports during runs.

With a subscription login (Pro/Max, `CLAUDE_CODE_OAUTH_TOKEN`) the CLI reads the upstream's
`anthropic-ratelimit-unified-*` response headers and emits, on every change,
`{"type": "rate_limit_event", "rate_limit_info": {...}}` (measured with CLI 2.1.197):

- `status`: "allowed" | "allowed_warning" | "rejected". "allowed_warning" is a warning, never
  an error: the request it came with succeeded.
- `rateLimitType`: the window that status is about: "five_hour", "seven_day",
  "seven_day_opus", "seven_day_sonnet", "seven_day_overage_included", "overage" (from the
  `-representative-claim` header, or the window whose `-<5h|7d|...>-surpassed-threshold`
  header fired). Absent when the upstream sent no rate-limit headers at all.
- `resetsAt` (epoch seconds), `utilization` (0..1, only with a warning), `surpassedThreshold`,
  `isUsingOverage`, `overageStatus`, `overageResetsAt`, `overageDisabledReason`, ...

API-key logins never emit it: there is no plan quota to report then.

`QuotaTracker` keeps the latest report per window and the latest overall, for
`GET /v1/usage/quota`, `/health` and `claude_nb.quota()`. Its state is a plain dict
(`state()` / `restore()`, and `on_change` after every update) so an owner can persist it;
the server keeps it in its store (state key "quota"); without an owner it lives in memory.
"""
from __future__ import annotations

import threading
import time
import weakref
from datetime import datetime, timezone
from typing import Callable

STATUSES = ("allowed", "allowed_warning", "rejected")
WINDOW_LABELS = {
    "five_hour": "5-hour session limit",
    "seven_day": "weekly limit",
    "seven_day_opus": "weekly Opus limit",
    "seven_day_sonnet": "weekly Sonnet limit",
    "seven_day_overage_included": "weekly limit (overage included)",
    "overage": "extra-usage credit",
}
# An event that names no window: the plan as a whole.
PLAN_WINDOW = "plan"

NOT_REPORTED = ("No plan quota reported yet: the Claude Code CLI reports it for subscription "
                "logins (Pro/Max) during a request. API-key logins have no plan quota.")

# rate_limit_info key -> our snake_case key
_FIELDS = {
    "status": "status", "resetsAt": "resets_at", "utilization": "utilization",
    "surpassedThreshold": "surpassed_threshold", "isUsingOverage": "is_using_overage",
    "overageStatus": "overage_status", "overageResetsAt": "overage_resets_at",
    "overageDisabledReason": "overage_disabled_reason", "overageInUse": "overage_in_use",
}


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


class QuotaTracker:
    """The latest rate-limit report per window. `update` is a `bridge.rate_limit_listeners` entry."""

    def __init__(self, *, clock: Callable[[], float] = time.time,
                 on_change: Callable[[dict], None] | None = None, state: dict | None = None):
        self.clock = clock
        self.on_change = on_change
        self._lock = threading.Lock()
        self._windows: dict[str, dict] = {}
        self._latest: dict | None = None
        self.events_seen = 0
        if state:
            self.restore(state)

    def attach(self, bridge) -> "QuotaTracker":
        if self.update not in bridge.rate_limit_listeners:
            bridge.rate_limit_listeners.append(self.update)
        return self

    # -- input ----------------------------------------------------------------------------
    def update(self, info: dict) -> None:
        if not isinstance(info, dict) or info.get("status") not in STATUSES:
            return          # not a report we understand: keep what we know
        entry = {"window": info.get("rateLimitType") or PLAN_WINDOW, "updated_at": self.clock()}
        for src, dst in _FIELDS.items():
            if src in info:
                entry[dst] = info[src]
        for key in ("resets_at", "utilization", "surpassed_threshold", "overage_resets_at"):
            if key in entry:
                entry[key] = _number(entry[key])
        with self._lock:
            previous = self._windows.get(entry["window"], {})
            if entry["status"] == "allowed" and "utilization" not in entry:
                # A plain "allowed" carries no utilization: keep the last figure we had, marked
                # by its own time, rather than pretend the window is empty.
                for key in ("utilization", "utilization_at"):
                    if key in previous:
                        entry[key] = previous[key]
            elif "utilization" in entry:
                entry["utilization_at"] = entry["updated_at"]
            self._windows[entry["window"]] = entry
            self._latest = entry
            self.events_seen += 1
            state = self._state_locked()
        if self.on_change is not None:
            self.on_change(state)

    # -- persistence ----------------------------------------------------------------------
    def state(self) -> dict:
        with self._lock:
            return self._state_locked()

    def _state_locked(self) -> dict:
        return {"version": 1, "windows": {k: dict(v) for k, v in self._windows.items()},
                "latest": None if self._latest is None else self._latest["window"]}

    def restore(self, state: dict) -> None:
        if not isinstance(state, dict) or state.get("version") != 1:
            return
        windows = state.get("windows") or {}
        with self._lock:
            self._windows = {k: dict(v) for k, v in windows.items()
                             if isinstance(v, dict) and v.get("status") in STATUSES}
            latest = state.get("latest")
            self._latest = self._windows.get(latest) if latest else None

    # -- output ---------------------------------------------------------------------------
    def snapshot(self) -> dict:
        """What `GET /v1/usage/quota` answers."""
        now = self.clock()
        with self._lock:
            windows = {k: self._window_view(v, now) for k, v in self._windows.items()}
            latest = None if self._latest is None else windows[self._latest["window"]]
        if latest is None:
            status = "unknown"
        elif latest["reset_passed"]:
            status = "allowed"      # the window that limited us has started over
        else:
            status = latest["status"]
        return {
            "object": "plan_quota",
            "status": status,
            "limited_by": None if latest is None or status == "allowed" else latest["window"],
            "resets_at": None if latest is None or status == "allowed" else latest["resets_at"],
            "updated_at": None if latest is None else latest["updated_at"],
            "windows": windows,
            "note": NOT_REPORTED if latest is None else None,
        }

    def summary(self) -> dict:
        """The short form, for the `quota` section of `/health`."""
        snap = self.snapshot()
        return {k: snap[k] for k in ("status", "limited_by", "resets_at", "updated_at")}

    @staticmethod
    def _window_view(entry: dict, now: float) -> dict:
        resets = entry.get("resets_at")
        return {
            "window": entry["window"],
            "label": WINDOW_LABELS.get(entry["window"], entry["window"].replace("_", " ")),
            "status": entry["status"],
            "utilization": entry.get("utilization"),
            "surpassed_threshold": entry.get("surpassed_threshold"),
            "resets_at": _iso(resets),
            "resets_in_seconds": None if resets is None else max(0, int(resets - now)),
            "reset_passed": resets is not None and resets <= now,
            "is_using_overage": bool(entry.get("is_using_overage", False)),
            "overage_status": entry.get("overage_status"),
            "overage_resets_at": _iso(entry.get("overage_resets_at")),
            "overage_disabled_reason": entry.get("overage_disabled_reason"),
            "updated_at": _iso(entry.get("updated_at")),
        }


_TRACKERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_TRACKERS_LOCK = threading.Lock()


def tracker_for(bridge) -> QuotaTracker:
    """The one tracker listening to `bridge` (made and attached on first call).

    Call it when the bridge is made (server start, in-process transport) so no report is
    missed; the `/v1/usage/quota` handler and `claude_nb.quota()` read the same tracker.
    """
    with _TRACKERS_LOCK:
        tracker = _TRACKERS.get(bridge)
        if tracker is None:
            tracker = _TRACKERS[bridge] = QuotaTracker().attach(bridge)
        return tracker
