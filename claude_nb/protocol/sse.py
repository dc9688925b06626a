"""Server-sent events in Anthropic's format: a named event whose data repeats the type."""
from __future__ import annotations

import json


# Characters Python's str.splitlines() (and some other readers) take for line ends, although
# SSE ends lines only at CR and LF. JSON leaves them raw, so a reader that splits the decoded
# text on them would cut an event's data in two: written as \u escapes, they arrive intact.
_LINE_BREAK_ESCAPES = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def sse_json(obj) -> str:
    """Compact JSON for a `data:` line: non-ASCII text stays UTF-8, no character can split it."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).translate(_LINE_BREAK_ESCAPES)


def encode_event(event: dict) -> bytes:
    name = event.get("type") or "message"
    return f"event: {name}\ndata: {sse_json(event)}\n\n".encode("utf-8")


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
