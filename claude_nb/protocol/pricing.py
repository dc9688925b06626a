"""List prices, used only when a run ended before the CLI reported its own cost (a stop
sequence or client tool call ended the process early). USD per million tokens."""
from __future__ import annotations

# input, output. Cache writes cost 1.25x input (5 min) / 2x (1 h), reads 0.1x input.
_BY_LINE = {"opus": (5.0, 25.0), "sonnet": (3.0, 15.0), "haiku": (1.0, 5.0),
            "fable": (3.0, 15.0), "mythos": (15.0, 75.0)}


def estimate_cost(model: str, usage: dict) -> float:
    line = next((name for name in _BY_LINE if name in (model or "")), "sonnet")
    inp, out = _BY_LINE[line]
    if "haiku-4-5" in (model or ""):
        inp, out = 1.0, 5.0
    cc = usage.get("cache_creation") or {}
    total = (usage.get("input_tokens", 0) * inp + usage.get("output_tokens", 0) * out
             + cc.get("ephemeral_5m_input_tokens", 0) * inp * 1.25
             + cc.get("ephemeral_1h_input_tokens", 0) * inp * 2
             + usage.get("cache_read_input_tokens", 0) * inp * 0.1)
    return round(total / 1_000_000, 8)
