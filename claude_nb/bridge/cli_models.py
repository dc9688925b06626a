"""What the installed Claude Code CLI makes of the model aliases, learned once per executable.

The aliases move between CLI releases (`haiku` ran claude-haiku-4-5-20251001 on 2.1.197 and runs
claude-haiku-5-5 on 2.1.332), and a user's settings or provider can move them too. The CLI says
what they mean in its reply to the `initialize` control request (`models[]`: `value`,
`resolvedModel`), without an upstream request. On 2.1.197 that list leaves out some aliases
(`opus` only as `opus[1m]`, no `fable`); the measured per-version table in
`claude_nb.protocol.models` fills the gaps. The result is installed into the catalogue, so
/v1/models, validation and the usage reports agree with what the CLI runs.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field

from ..protocol.models import CLI_ALIASES, alias_table_for, use_cli_aliases
from .cli_info import cache_key, cli_info

_INITIALIZE = {"type": "control_request", "request_id": "claude-nb-models",
               "request": {"subtype": "initialize"}}
_LONG_CONTEXT_SUFFIX = "[1m]"


@dataclass(frozen=True)
class CliModels:
    path: str
    version: tuple[int, int, int] | None
    aliases: dict[str, str]              # alias -> model id, as this CLI resolves it
    source: str                          # "initialize", "initialize+table" or "table"
    offered: list = field(default_factory=list)   # the CLI's own `models` list, as it sent it

    @property
    def label(self) -> str:
        return "Claude Code CLI " + (".".join(map(str, self.version)) if self.version else "(unknown version)")


def aliases_from_initialize(models) -> dict[str, str]:
    """alias -> id from the `initialize` reply's `models` (`opus[1m]` counts for `opus`; the
    1M-context suffix is the CLI's own notation, not part of the id)."""
    found: dict[str, str] = {}
    for entry in models if isinstance(models, list) else []:
        if not isinstance(entry, dict):
            continue
        value, resolved = entry.get("value"), entry.get("resolvedModel")
        if not isinstance(value, str) or not isinstance(resolved, str):
            continue
        alias = value.lower().removesuffix(_LONG_CONTEXT_SUFFIX)
        model = resolved.removesuffix(_LONG_CONTEXT_SUFFIX)
        if alias in CLI_ALIASES and (alias not in found or value.lower() == alias):
            found[alias] = model          # the plain alias wins over its [1m] variant
    return found


def ask_initialize(path: str, timeout: float = 20.0) -> list | None:
    """The `models` list of the CLI's `initialize` reply, or None if it gave none."""
    cmd = [path, "-p", "--input-format", "stream-json", "--output-format", "stream-json",
           "--verbose", "--tools", "", "--strict-mcp-config", "--no-session-persistence"]
    with tempfile.TemporaryDirectory(prefix="claude-nb-models-") as workdir:
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True, cwd=workdir)
        except OSError:
            return None
        reply: list = []

        def read() -> None:
            for line in proc.stdout:             # the CLI answers at once; EOF ends the loop
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if isinstance(message, dict) and message.get("type") == "control_response":
                    reply.append(message.get("response") or {})
                    return

        try:
            proc.stdin.write(json.dumps(_INITIALIZE) + "\n")
            proc.stdin.flush()
            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            reader.join(timeout)
            if reader.is_alive() or not reply or reply[0].get("subtype") != "success":
                return None
            models = (reply[0].get("response") or {}).get("models")
            return models if isinstance(models, list) else None
        except OSError:
            return None
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


_cache: dict[tuple, CliModels] = {}


def cached_cli_models(path: str) -> CliModels | None:
    return _cache.get(cache_key(path))


def cli_models(path: str, timeout: float = 20.0) -> CliModels:
    """The aliases of the CLI at `path` (one `initialize` exchange per installed binary), also
    installed into the catalogue (`claude_nb.protocol.models.ALIASES`)."""
    key = cache_key(path)
    known = _cache.get(key)
    if known is None:
        version = cli_info(path).version
        table = alias_table_for(version)
        offered = ask_initialize(path, timeout) if os.access(path, os.X_OK) else None
        learned = aliases_from_initialize(offered)
        source = ("table" if not learned else
                  "initialize" if set(learned) >= set(CLI_ALIASES) else "initialize+table")
        known = _cache[key] = CliModels(path, version, {**table, **learned}, source, offered or [])
    use_cli_aliases(known.aliases, known.label)
    return known


async def cli_models_async(path: str) -> CliModels:
    """`cli_models` without blocking the event loop on the first call."""
    known = cached_cli_models(path)
    if known is not None:
        use_cli_aliases(known.aliases, known.label)
        return known
    return await asyncio.get_running_loop().run_in_executor(None, cli_models, path)
