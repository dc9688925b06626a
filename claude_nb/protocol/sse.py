"""Server-sent events in Anthropic's format: a named event whose data repeats the type."""
from __future__ import annotations

import json


def encode_event(event: dict) -> bytes:
    name = event.get("type") or "message"
    data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    return f"event: {name}\ndata: {data}\n\n".encode("utf-8")


PING = encode_event({"type": "ping"})


def iter_sse(lines):
    """Parse SSE from an iterable of text lines (without or with line ends).

    Yields (event_name, data_str). Follows the SSE rules the SDK follows: blank line ends an
    event, repeated data lines join with "\\n", comment lines are skipped.
    """
    name, data = None, []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data or name:
                yield name, "\n".join(data)
            name, data = None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    if data or name:
        yield name, "\n".join(data)
