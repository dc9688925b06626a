"""The model catalogue: what /v1/models lists and which names /v1/messages accepts.

Ids follow the official SDK's `anthropic.types.Model`. Each entry's fields follow the SDK's
`ModelInfo` (anthropic 2.16: every capability key present) and describe what works *through
claude-nb*: the model's own limits and thinking/effort support (from the Claude Code CLI's
bundled model catalogue, 2.1.332, and the measurements in docs/compatibility.md), combined with
what the CLI bridge can pass on (no server tools, no context management, no compaction).

Aliases (`opus`, `sonnet`, `haiku`, `fable`) mean what the installed CLI makes of them; they
moved between CLI versions. `claude_nb.bridge.cli_models` learns them from the CLI at run time
and installs them here with `use_cli_aliases`; until then the newest measured table applies.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .errors import NotFound

# Effort levels in the SDK's order; `xhigh` is optional in the type, the rest are required.
EFFORT_LEVELS = ("low", "medium", "high", "xhigh", "max")
_ALL_EFFORTS = EFFORT_LEVELS
_NO_XHIGH = ("low", "medium", "high", "max")
_BASIC_EFFORTS = ("low", "medium", "high")


@dataclass(frozen=True)
class ModelInfo:
    id: str
    display_name: str
    created_at: str
    line: str
    max_input_tokens: int
    max_tokens: int
    # Which `thinking.type` values the model takes (the SDK's ThinkingTypes). `disabled` is
    # false for models that reject it; the CLI then sends no `thinking` and the model's own
    # default applies (docs/compatibility.md).
    adaptive_thinking: bool = True
    enabled_thinking: bool = False
    disabled_thinking: bool = True
    effort_levels: tuple[str, ...] = _ALL_EFFORTS      # empty: no effort parameter
    lifecycle: str = "active"
    deprecated_at: str | None = None
    retires_at: str | None = None

    @property
    def retired(self) -> bool:
        return self.lifecycle == "retired"

    def capabilities(self) -> dict:
        def flag(value: bool) -> dict:
            return {"supported": bool(value)}

        effort = {level: flag(level in self.effort_levels) for level in EFFORT_LEVELS}
        return {
            "batch": flag(True),                 # /v1/messages/batches runs through the bridge
            "citations": flag(True),             # document citations reach upstream and come back
            # Programmatic tool calling needs the code execution server tool: not through the CLI.
            "code_execution": flag(False),
            # The request's `context_management` has no CLI counterpart (ignored).
            "context_management": {"supported": False,
                                   "clear_thinking_20251015": flag(False),
                                   "clear_tool_uses_20250919": flag(False),
                                   "compact_20260112": flag(False)},
            "effort": {"supported": bool(self.effort_levels), **effort},
            "image_input": flag(True),
            "pdf_input": flag(True),
            # Server tools are refused with a 400: the CLI cannot run them for the caller.
            "server_tools": {"supported": False, "code_execution": flag(False),
                             "web_search": flag(False)},
            "structured_outputs": flag(True),    # emulated through the CLI's --json-schema
            "thinking": {
                "supported": self.adaptive_thinking or self.enabled_thinking,
                "types": {"adaptive": flag(self.adaptive_thinking),
                          # refused by claude-nb's validation (400), whatever the model
                          "between_tools": flag(False),
                          "disabled": flag(self.disabled_thinking),
                          "enabled": flag(self.enabled_thinking)},
            },
            # Beta (`BetaModelCapabilities.compaction`): the top-level `compaction` parameter
            # has no CLI counterpart.
            "compaction": {"supported": False, "summarize": flag(False)},
        }

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
            "deprecated_at": self.deprecated_at,
            "retires_at": self.retires_at,
            "capabilities": self.capabilities(),
            # Beta ModelInfo: `fallbacks` is not supported through the CLI.
            "allowed_fallback_models": [],
            # OpenAI's model shape, so one list answers both SDKs.
            "object": "model",
            "created": _epoch(self.created_at),
            "owned_by": "anthropic",
        }


def _epoch(ts: str) -> int:
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp())


_1M = 1_000_000
_200K = 200_000

# The 4-5 family's end of life (Sonnet 4.5, Haiku 4.5). Opus 4.5 is on a later schedule: the SDK
# (anthropic 2.16, `_data/deprecated_models.py`) gives it end of life on 2027-01-22, deprecated
# on 2026-11-23; it stays callable until then.
_EOL_4_5 = "2026-11-30T00:00:00Z"

# Newest first, as the real API lists them. Limits and thinking/effort support from the CLI's
# bundled catalogue (2.1.332: context window, max_output_tokens.upper, capabilities such as
# adaptive_thinking / rejects_disabled_thinking / max_effort / xhigh_effort).
MODELS: tuple[ModelInfo, ...] = (
    ModelInfo("claude-fable-5-2", "Claude Fable 5.2", "2026-10-28T00:00:00Z", "fable", _1M, 128_000,
              disabled_thinking=False),
    ModelInfo("claude-mythos-5-2", "Claude Mythos 5.2", "2026-10-28T00:00:00Z", "mythos", _1M, 128_000,
              disabled_thinking=False),
    ModelInfo("claude-opus-5-5", "Claude Opus 5.5", "2026-10-14T00:00:00Z", "opus", _1M, 128_000,
              disabled_thinking=False),
    ModelInfo("claude-sonnet-5-5", "Claude Sonnet 5.5", "2026-10-14T00:00:00Z", "sonnet", _1M, 128_000,
              disabled_thinking=False),
    ModelInfo("claude-haiku-5-5", "Claude Haiku 5.5", "2026-10-14T00:00:00Z", "haiku", _1M, 128_000,
              disabled_thinking=False),
    ModelInfo("claude-fable-5-1", "Claude Fable 5.1", "2026-08-20T00:00:00Z", "fable", _1M, 128_000,
              disabled_thinking=False),
    ModelInfo("claude-mythos-5-1", "Claude Mythos 5.1", "2026-08-20T00:00:00Z", "mythos", _1M, 128_000,
              disabled_thinking=False),
    ModelInfo("claude-sonnet-5", "Claude Sonnet 5", "2026-06-10T00:00:00Z", "sonnet", _1M, 128_000),
    ModelInfo("claude-opus-5", "Claude Opus 5", "2026-06-10T00:00:00Z", "opus", _1M, 128_000),
    ModelInfo("claude-fable-5", "Claude Fable 5", "2026-06-10T00:00:00Z", "fable", _1M, 128_000,
              disabled_thinking=False),
    # The CLI's catalogue lists no capabilities for Mythos 5; measured (2.1.197) it is treated as
    # Mythos 5.1 is: no `disabled`, adaptive thinking, effort passed on.
    ModelInfo("claude-mythos-5", "Claude Mythos 5", "2026-06-10T00:00:00Z", "mythos", _1M, 128_000,
              disabled_thinking=False),
    ModelInfo("claude-opus-4-8", "Claude Opus 4.8", "2026-04-15T00:00:00Z", "opus", _1M, 128_000),
    ModelInfo("claude-opus-4-7", "Claude Opus 4.7", "2026-02-20T00:00:00Z", "opus", _1M, 128_000),
    # Not in the CLI's catalogue. The SDK warns that `enabled` thinking is deprecated for it
    # (so it takes both) and gives it end of life on 2026-06-30: overdue, not known retired.
    ModelInfo("claude-mythos-preview", "Claude Mythos Preview", "2026-02-01T00:00:00Z", "mythos",
              _200K, 64_000, enabled_thinking=True, disabled_thinking=False,
              effort_levels=_NO_XHIGH, lifecycle="deprecated",
              retires_at="2026-06-30T00:00:00Z"),
    ModelInfo("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05T00:00:00Z", "opus", _200K, 128_000,
              enabled_thinking=True, effort_levels=_NO_XHIGH),
    ModelInfo("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z", "sonnet", _200K, 128_000,
              enabled_thinking=True, effort_levels=_NO_XHIGH),
    ModelInfo("claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-01T00:00:00Z", "opus", _200K, 64_000,
              adaptive_thinking=False, enabled_thinking=True, effort_levels=_BASIC_EFFORTS,
              lifecycle="deprecated", deprecated_at="2026-11-23T00:00:00Z",
              retires_at="2027-01-22T00:00:00Z"),
    ModelInfo("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-01T00:00:00Z", "haiku", _200K, 64_000,
              adaptive_thinking=False, enabled_thinking=True, effort_levels=(),
              lifecycle="retired", retires_at=_EOL_4_5),
    ModelInfo("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z", "sonnet", _200K, 64_000,
              adaptive_thinking=False, enabled_thinking=True, effort_levels=(),
              lifecycle="retired", retires_at=_EOL_4_5),
)

_BY_ID = {m.id: m for m in MODELS}

# What the Python client and %%claude send unless told otherwise; the warm pool starts a process
# for exactly this shape, so a notebook's first cell answers warm.
DEFAULT_MODEL = "sonnet"
DEFAULT_MAX_TOKENS = 4096

# The CLI's own aliases, as each CLI version resolves them (measured against the recording
# upstream: the `model` of the upstream request, the same in `system/init` and `initialize`).
# A version between two tables uses the older one; a newer version, the newest.
CLI_ALIASES = ("opus", "sonnet", "haiku", "fable")
CLI_ALIAS_TABLES: dict[tuple[int, int, int], dict[str, str]] = {
    (2, 1, 197): {"opus": "claude-opus-4-8", "sonnet": "claude-sonnet-5",
                  "haiku": "claude-haiku-4-5-20251001", "fable": "claude-fable-5"},
    (2, 1, 332): {"opus": "claude-opus-5-5", "sonnet": "claude-sonnet-5-5",
                  "haiku": "claude-haiku-5-5", "fable": "claude-fable-5-2"},
}

# The SDK's undated ids: fixed, whatever the CLI.
UNDATED_IDS = {
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "claude-opus-4-5": "claude-opus-4-5-20251101",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
}


def alias_table_for(version: tuple[int, ...] | None) -> dict[str, str]:
    """The measured alias table for a CLI version (unknown: the newest)."""
    known = sorted(CLI_ALIAS_TABLES)
    if version is None:
        return dict(CLI_ALIAS_TABLES[known[-1]])
    older = [v for v in known if v <= tuple(version)]
    return dict(CLI_ALIAS_TABLES[older[-1] if older else known[0]])


# Short names in effect: the installed CLI's aliases plus the undated ids. Updated in place (by
# `use_cli_aliases`) so that modules holding a reference see the installed CLI's meaning.
ALIASES: dict[str, str] = {**alias_table_for(None), **UNDATED_IDS}
_alias_source = {"cli": None}       # which CLI the aliases came from, for error messages


def use_cli_aliases(aliases: dict[str, str], cli: str | None = None) -> None:
    """Make the CLI aliases mean what the installed CLI makes of them (`cli` names it, e.g.
    "Claude Code CLI 2.1.197", for messages). Ids the catalogue does not know are skipped."""
    table = {k.lower(): v for k, v in aliases.items() if v in _BY_ID}
    ALIASES.clear()
    ALIASES.update({**alias_table_for(None), **table, **UNDATED_IDS})
    _alias_source["cli"] = cli


def _lookup(name) -> tuple[str, ModelInfo] | None:
    if not isinstance(name, str):
        return None
    key = name.strip()
    info = _BY_ID.get(key) or _BY_ID.get(ALIASES.get(key.lower(), ""))
    return (key, info) if info is not None else None


def model_entry(name) -> ModelInfo:
    """The catalogue entry for an id or alias, retired models included (GET /v1/models/{id}:
    a retired model stays in the catalogue as the record of its retirement)."""
    found = _lookup(name)
    if found is None:
        raise NotFound(f"model: {name!r} is not a known model. GET /v1/models lists the ones available.")
    return found[1]


def resolve_model(name) -> ModelInfo:
    """The model a request naming `name` runs; 404 not_found_error for unknown and retired
    models, as the API answers a request for a retired model."""
    found = _lookup(name)
    if found is None:
        raise NotFound(f"model: {name!r} is not a known model. GET /v1/models lists the ones available.")
    key, info = found
    if info.retired:
        if key.lower() in CLI_ALIASES:
            cli = _alias_source["cli"] or "the installed Claude Code CLI"
            raise NotFound(
                f"model: {key} ({cli} runs it as {info.id}, which was retired on "
                f"{(info.retires_at or '')[:10]}). Upgrade the CLI (`npm install -g "
                f"@anthropic-ai/claude-code@latest` or `claude update`) so `{key}` names a current "
                "model, or name one: GET /v1/models lists them.")
        raise NotFound(f"model: {key} was retired on {(info.retires_at or '')[:10]}; requests "
                       "naming it fail. GET /v1/models lists the models available.")
    return info


def cli_model_name(name: str) -> str:
    """What to pass to `claude --model`: aliases as the CLI knows them, else the full id."""
    key = name.strip()
    if key.lower() in CLI_ALIASES:
        resolve_model(key)           # refuses an alias the installed CLI maps to a retired model
        return key.lower()
    return resolve_model(key).id


def ids_for_name(name: str) -> set[str]:
    """Every model id a name stands for in the usage ledger, which spans CLI upgrades: the name
    itself, what it resolves to now, and for a CLI alias what every measured CLI ran for it."""
    key = name.strip()
    ids = {key}
    if key.lower() in ALIASES:
        ids.add(ALIASES[key.lower()])
    if key.lower() in CLI_ALIASES:
        ids.update(table[key.lower()] for table in CLI_ALIAS_TABLES.values())
    return ids


def list_models(lifecycles: list[str] | None = None) -> list[ModelInfo]:
    """Newest first; by default active and deprecated models, as the API lists them (retired
    ones only when asked for)."""
    wanted = set(lifecycles or ("active", "deprecated"))
    return [m for m in MODELS if m.lifecycle in wanted]
