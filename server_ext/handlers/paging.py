"""Query parsing shared by the list endpoints: bracketed arrays and id-cursor pages."""
from __future__ import annotations

from claude_nb.protocol.errors import InvalidRequest, NotFound
from claude_nb.protocol.paging import parse_limit


def query_list(handler, name: str) -> list[str]:
    """`name[]=a&name[]=b`, `name=a&name=b` or `name=a,b`."""
    values = handler.get_query_arguments(name + "[]") + handler.get_query_arguments(name)
    out = []
    for value in values:
        out += [v for v in value.split(",") if v]
    return out


def id_page(handler, items: list[dict], *, default_limit: int = 20, max_limit: int = 1000) -> dict:
    """Anthropic's `after_id`/`before_id`/`limit` paging over items already in list order."""
    limit = parse_limit(handler.get_query_argument("limit", None), default=default_limit,
                        maximum=max_limit)
    after = handler.get_query_argument("after_id", None)
    before = handler.get_query_argument("before_id", None)
    if after and before:
        raise InvalidRequest("after_id and before_id cannot be used together")
    ids = [item["id"] for item in items]
    if after:
        if after not in ids:
            raise NotFound(f"after_id: {after!r} was not found")
        start = ids.index(after) + 1
        page = items[start:start + limit]
        has_more = start + limit < len(items)
    elif before:
        if before not in ids:
            raise NotFound(f"before_id: {before!r} was not found")
        end = ids.index(before)
        page = items[max(0, end - limit):end]
        has_more = end - limit > 0
    else:
        page = items[:limit]
        has_more = limit < len(items)
    return {"data": page, "has_more": has_more,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None}
