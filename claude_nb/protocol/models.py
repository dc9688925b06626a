"""The model catalogue: what /v1/models lists and which names /v1/messages accepts.

Ids follow the official SDK's `anthropic.types.Model`; aliases resolve the way the Claude Code
CLI resolves them (measured with CLI 2.1.197: opus -> claude-opus-4-8, sonnet -> claude-sonnet-5,
haiku -> claude-haiku-4-5-20251001, fable -> claude-fable-5). The CLI takes every listed id.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import NotFound


@dataclass(frozen=True)
class ModelInfo:
    id: str
    display_name: str
    created_at: str
    line: str
    lifecycle: str = "active"
    max_input_tokens: int = 200_000
    max_tokens: int = 64_000
    retires_at: str | None = None

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "type": "model",
            "display_name": self.display_name,
            "created_at": self.created_at,
            "lifecycle": self.lifecycle,
            "line": self.line,
            "max_input_tokens": self.max_input_tokens,
            "max_tokens": self.max_tokens,
            "deprecated_at": None,
            "retires_at": self.retires_at,
            "capabilities": {
                "batch": {"supported": True},
                "citations": {"supported": False},
                "code_execution": {"supported": False},
                "image_input": {"supported": True},
                "pdf_input": {"supported": True},
                "structured_outputs": {"supported": True},
                "thinking": {"supported": True},
                "effort": {"supported": True},
            },
            # OpenAI's model shape, so one list answers both SDKs.
            "object": "model",
            "created": _epoch(self.created_at),
            "owned_by": "anthropic",
        }


def _epoch(ts: str) -> int:
    from datetime import datetime
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp())


_EOL_4_5 = "2026-11-30T00:00:00Z"

# Newest first, as the real API lists them.
MODELS: tuple[ModelInfo, ...] = (
    ModelInfo("claude-fable-5-2", "Claude Fable 5.2", "2026-10-28T00:00:00Z", "fable"),
    ModelInfo("claude-mythos-5-2", "Claude Mythos 5.2", "2026-10-28T00:00:00Z", "mythos"),
    ModelInfo("claude-opus-5-5", "Claude Opus 5.5", "2026-10-14T00:00:00Z", "opus", max_tokens=128_000),
    ModelInfo("claude-sonnet-5-5", "Claude Sonnet 5.5", "2026-10-14T00:00:00Z", "sonnet"),
    ModelInfo("claude-haiku-5-5", "Claude Haiku 5.5", "2026-10-14T00:00:00Z", "haiku"),
    ModelInfo("claude-fable-5-1", "Claude Fable 5.1", "2026-08-20T00:00:00Z", "fable"),
    ModelInfo("claude-mythos-5-1", "Claude Mythos 5.1", "2026-08-20T00:00:00Z", "mythos"),
    ModelInfo("claude-sonnet-5", "Claude Sonnet 5", "2026-06-10T00:00:00Z", "sonnet"),
    ModelInfo("claude-opus-5", "Claude Opus 5", "2026-06-10T00:00:00Z", "opus", max_tokens=128_000),
    ModelInfo("claude-fable-5", "Claude Fable 5", "2026-06-10T00:00:00Z", "fable"),
    ModelInfo("claude-mythos-5", "Claude Mythos 5", "2026-06-10T00:00:00Z", "mythos"),
    ModelInfo("claude-opus-4-8", "Claude Opus 4.8", "2026-04-15T00:00:00Z", "opus", max_tokens=128_000),
    ModelInfo("claude-opus-4-7", "Claude Opus 4.7", "2026-02-20T00:00:00Z", "opus", max_tokens=128_000),
    ModelInfo("claude-mythos-preview", "Claude Mythos Preview", "2026-02-01T00:00:00Z", "mythos"),
    ModelInfo("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05T00:00:00Z", "opus", max_tokens=128_000),
    ModelInfo("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z", "sonnet"),
    ModelInfo("claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-01T00:00:00Z", "opus",
              lifecycle="deprecated", retires_at=_EOL_4_5),
    ModelInfo("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-01T00:00:00Z", "haiku",
              lifecycle="deprecated", retires_at=_EOL_4_5),
    ModelInfo("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z", "sonnet",
              lifecycle="deprecated", retires_at=_EOL_4_5),
)

_BY_ID = {m.id: m for m in MODELS}

# What the Python client and %%claude send unless told otherwise; the warm pool starts a process
# for exactly this shape, so a notebook's first cell answers warm.
DEFAULT_MODEL = "sonnet"
DEFAULT_MAX_TOKENS = 4096

# Short names: the CLI's aliases and the SDK's undated ids.
ALIASES = {
    "opus": "claude-opus-4-8",
    "sonnet": "claude-sonnet-5",
    "haiku": "claude-haiku-4-5-20251001",
    "fable": "claude-fable-5",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "claude-opus-4-5": "claude-opus-4-5-20251101",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
}


def resolve_model(name: str) -> ModelInfo:
    """The catalogue entry for an id or alias; 404 not_found_error for anything else."""
    if isinstance(name, str):
        key = name.strip()
        info = _BY_ID.get(key) or _BY_ID.get(ALIASES.get(key.lower(), ""))
        if info is not None:
            return info
    raise NotFound(f"model: {name!r} is not a known model. GET /v1/models lists the ones available.")


def cli_model_name(name: str) -> str:
    """What to pass to `claude --model`: aliases as the CLI knows them, else the full id."""
    key = name.strip()
    if key.lower() in ("opus", "sonnet", "haiku", "fable"):
        return key.lower()
    return resolve_model(key).id


def list_models(lifecycles: list[str] | None = None) -> list[ModelInfo]:
    wanted = set(lifecycles or ("active", "deprecated"))
    return [m for m in MODELS if m.lifecycle in wanted]
