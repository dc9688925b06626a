"""Timestamps as the API writes and reads them: RFC 3339 in UTC with a `Z`."""
from __future__ import annotations

from datetime import datetime, timezone

from .errors import InvalidRequest


def rfc3339(ts: float | None) -> str | None:
    """Epoch seconds -> "2024-08-20T18:37:24.100435Z" (None stays None)."""
    if ts is None:
        return None
    text = datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


def parse_rfc3339(value, field: str) -> datetime:
    """An aware UTC datetime from an RFC 3339 string (or a datetime); 400 naming `field` if not."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if text[-1:] in ("z", "Z"):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidRequest(f"{field}: {value!r} is not an RFC 3339 timestamp "
                                 "(e.g. 2025-08-01T00:00:00Z)") from None
    else:
        raise InvalidRequest(f"{field}: expected an RFC 3339 timestamp (e.g. 2025-08-01T00:00:00Z)")
    if dt.tzinfo is None:
        # Naive times are read as UTC, the API's only zone.
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)
