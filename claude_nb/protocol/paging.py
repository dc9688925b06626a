"""Anthropic's list pages, for every list endpoint: `limit`, the id cursors, the envelope."""
from __future__ import annotations

from .errors import InvalidRequest, NotFound

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


def check_cursors(after_id=None, before_id=None, page=None, *, page_style: bool = False) -> None:
    """At most one cursor: `after_id`, `before_id` (and `page`, where the endpoint has it)."""
    given = [x for x in (after_id, before_id, page) if x not in (None, "")]
    if len(given) > 1:
        names = "`after_id`, `before_id` and `page`" if page_style else "`after_id` and `before_id`"
        raise InvalidRequest(f"Give at most one of {names}.")


def page_json(data: list[dict], has_more: bool) -> dict:
    """The list envelope: `data, has_more, first_id, last_id`."""
    return {"data": data, "has_more": has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None}


def id_page(items: list[dict], *, after_id=None, before_id=None, limit=None,
            default_limit: int = LIST_DEFAULT_LIMIT, max_limit: int = LIST_MAX_LIMIT) -> dict:
    """`after_id`/`before_id`/`limit` paging over items already in list order (in memory)."""
    limit = parse_limit(limit, default=default_limit, maximum=max_limit)
    check_cursors(after_id, before_id)
    ids = [item["id"] for item in items]
    if after_id:
        if after_id not in ids:
            raise NotFound(f"after_id: {after_id!r} was not found")
        start = ids.index(after_id) + 1
        page = items[start:start + limit]
        has_more = start + limit < len(items)
    elif before_id:
        if before_id not in ids:
            raise NotFound(f"before_id: {before_id!r} was not found")
        end = ids.index(before_id)
        page = items[max(0, end - limit):end]
        has_more = end - limit > 0
    else:
        page = items[:limit]
        has_more = limit < len(items)
    return page_json(page, has_more)
