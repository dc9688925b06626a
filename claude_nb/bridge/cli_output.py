"""What the CLI printed, checked before the bridge relies on it.

The CLI's stdout is input like any other: a crashed, half-written or foreign `claude` can print
lines of any shape. A stream event that is not the shape the Anthropic stream has is dropped
(and kept for the error message); a `result` line has its fields coerced to their types. The
bridge then answers a clean Anthropic error instead of failing on an AttributeError.
"""
from __future__ import annotations

import math

USAGE_COUNTS = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                "cache_read_input_tokens")

# delta type -> the field that must be a string
_DELTA_TEXT = {"text_delta": "text", "thinking_delta": "thinking",
               "input_json_delta": "partial_json", "signature_delta": "signature"}


def _count(value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    if not math.isfinite(value) or value < 0:
        return 0
    return int(value)


def clean_usage(usage) -> dict:
    """Token counts as non-negative ints; other fields kept only when they are dicts/strings."""
    if not isinstance(usage, dict):
        return {}
    out = {}
    for key, value in usage.items():
        if key in USAGE_COUNTS:
            if value is not None:
                out[key] = _count(value)
        elif key == "cache_creation":
            if isinstance(value, dict):
                out[key] = {k: _count(v) for k, v in value.items()}
        elif isinstance(value, (str, dict)) or value is None:
            out[key] = value
    return out


def checked_event(event) -> dict | None:
    """The stream event if it has the Anthropic stream's shape, else None."""
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return None
    kind = event["type"]
    if "index" in event and (isinstance(event["index"], bool) or not isinstance(event["index"], int)):
        return None
    if kind == "message_start":
        message = event.get("message")
        if not isinstance(message, dict):
            return None
        if "usage" in message:
            event = {**event, "message": {**message, "usage": clean_usage(message["usage"])}}
    elif kind == "content_block_start":
        block = event.get("content_block")
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            return None
        if block["type"] == "tool_use" and not isinstance(block.get("name", ""), str):
            return None
        if block["type"] == "text" and not isinstance(block.get("text", ""), str):
            return None
    elif kind == "content_block_delta":
        delta = event.get("delta")
        if not isinstance(delta, dict):
            return None
        field = _DELTA_TEXT.get(delta.get("type"))
        if field and not isinstance(delta.get(field, ""), str):
            return None
    elif kind == "message_delta":
        delta = event.get("delta")
        if not isinstance(delta, dict):
            return None
        if "usage" in event:
            event = {**event, "usage": clean_usage(event["usage"])}
    return event


def clean_result(line: dict) -> dict:
    """The `result` line with every field the bridge reads coerced to its type."""
    status = line.get("api_error_status")
    if isinstance(status, str) and status.strip().isdigit():
        status = int(status)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        status = None
    cost = line.get("total_cost_usd")
    if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not math.isfinite(cost) or cost < 0:
        cost = None
    text = line.get("result")
    if text is not None and not isinstance(text, str):
        text = str(text)
    errors = line.get("errors")
    model_usage = line.get("modelUsage")
    subtype = line.get("subtype")
    return {**line,
            "subtype": subtype if isinstance(subtype, str) else None,
            "is_error": line.get("is_error") is True,
            "api_error_status": status,
            "result": text,
            "errors": errors if isinstance(errors, (list, str)) else None,
            "usage": clean_usage(line.get("usage")),
            "total_cost_usd": cost,
            "modelUsage": {k: v for k, v in model_usage.items() if isinstance(k, str)}
                          if isinstance(model_usage, dict) else {}}
