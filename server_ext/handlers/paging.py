"""Reading the list endpoints' query strings (the paging itself is claude_nb.protocol.paging)."""
from __future__ import annotations


def query_list(handler, name: str) -> list[str]:
    """`name[]=a&name[]=b`, `name=a&name=b` or `name=a,b`."""
    values = handler.get_query_arguments(name + "[]") + handler.get_query_arguments(name)
    out = []
    for value in values:
        out += [v for v in value.split(",") if v]
    return out


def cursor_arguments(handler) -> dict:
    """`after_id`, `before_id` and `limit` as given (None when absent)."""
    return {name: handler.get_query_argument(name, None) for name in ("after_id", "before_id", "limit")}
