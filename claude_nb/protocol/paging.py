"""Parameters shared by the list endpoints."""
from __future__ import annotations

from .errors import InvalidRequest

LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT = 20, 1000


def parse_limit(value, *, default: int = LIST_DEFAULT_LIMIT, maximum: int = LIST_MAX_LIMIT,
                context: str = "") -> int:
    """`limit` from a query string: the default when absent, else an integer in 1..maximum.
    `context` names what bounds it (e.g. "with bucket_width 1h")."""
    if value in (None, ""):
        return default
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise InvalidRequest("limit: Input should be a valid integer") from None
    if not 1 <= limit <= maximum:
        where = f" {context}" if context else ""
        raise InvalidRequest(f"limit:{where} Input should be between 1 and {maximum}")
    return limit
