"""`claude_nb.quota()`: the plan quota as a notebook shows it (the server side keeps it in
`claude_nb.service.quota.QuotaTracker`)."""
from __future__ import annotations

from ..service.quota import NOT_REPORTED, PLAN_WINDOW, QuotaTracker, tracker_for


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return ""
    minutes = seconds // 60
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m"


def _window_phrase(w: dict) -> str:
    parts = [w["label"]]
    if w["utilization"] is not None:
        parts.append(f"{w['utilization'] * 100:.0f}% used")
    if w["status"] == "rejected" and not w["reset_passed"]:
        parts.append("reached")
    elif w["status"] == "allowed_warning" and not w["reset_passed"]:
        parts.append("warning")
    if w["resets_at"] and not w["reset_passed"]:
        parts.append(f"resets in {_duration(w['resets_in_seconds'])}")
    if w["is_using_overage"]:
        parts.append("using extra usage")
    return ", ".join(parts)


class Quota:
    """`claude_nb.quota()`: the plan quota as a notebook shows it (and as a plain dict)."""

    def __init__(self, snapshot: dict):
        self.snapshot = snapshot

    @classmethod
    def from_source(cls, source) -> "Quota":
        """From a snapshot dict (e.g. `GET /v1/usage/quota`) or a `QuotaTracker`."""
        if isinstance(source, QuotaTracker):
            return cls(source.snapshot())
        if isinstance(source, dict):
            return cls(source)
        raise TypeError("quota source must be a QuotaTracker or a /v1/usage/quota answer (dict)")

    @property
    def status(self) -> str:
        return self.snapshot.get("status", "unknown")

    @property
    def windows(self) -> dict:
        return self.snapshot.get("windows") or {}

    def to_dict(self) -> dict:
        return dict(self.snapshot)

    def status_line(self) -> str:
        """One line: what `print(claude_nb.quota())` shows."""
        if self.status == "unknown":
            return "Claude plan quota: " + (self.snapshot.get("note") or NOT_REPORTED)
        windows = [w for w in self.windows.values() if w["window"] != PLAN_WINDOW]
        shown = "; ".join(_window_phrase(w) for w in windows)
        head = {"allowed": "OK", "allowed_warning": "warning: nearing a limit",
                "rejected": "limit reached"}.get(self.status, self.status)
        return f"Claude plan quota: {head}" + (f" ({shown})" if shown else "")

    def __str__(self) -> str:
        return self.status_line()

    def __repr__(self) -> str:
        return f"Quota(status={self.status!r}, windows={sorted(self.windows)})"

    def _repr_markdown_(self) -> str:
        lines = [f"**Claude plan quota:** `{self.status}`"]
        if self.status == "unknown":
            lines.append("")
            lines.append(self.snapshot.get("note") or NOT_REPORTED)
            return "\n".join(lines)
        lines += ["", "| window | status | used | resets |", "|---|---|---|---|"]
        for w in self.windows.values():
            used = "" if w["utilization"] is None else f"{w['utilization'] * 100:.0f}%"
            resets = "" if not w["resets_at"] else (
                "passed" if w["reset_passed"] else f"{w['resets_at']} (in {_duration(w['resets_in_seconds'])})")
            lines.append(f"| {w['label']} | {w['status']} | {used} | {resets} |")
        return "\n".join(lines)


def quota(source=None) -> Quota:
    """`claude_nb.quota()`: the plan quota, from wherever this kernel's requests run.

    `source`: None (the default transport: the Jupyter server over HTTP, else the in-process
    service), a transport, a `ClaudeBridge`, a `QuotaTracker` or a `/v1/usage/quota` answer.
    """
    from ..bridge import ClaudeBridge
    from .transports import default_transport     # the kernel side's one way to the server
    if source is None:
        source = default_transport()
    if isinstance(source, (dict, QuotaTracker)):
        return Quota.from_source(source)
    if isinstance(source, ClaudeBridge):
        return Quota(tracker_for(source).snapshot())
    return Quota(source.quota())
