"""How a `claude` process is launched for a request: its command line and environment.

Everything that must be fixed when the process starts lives in `LaunchSpec`; two requests with
equal specs can share a pre-started process (the warm pool keys on it).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field

from ..protocol.errors import AnthropicError, InvalidRequest
from .cli_info import CliInfo

INSTALL_HINT = ("Install Claude Code with `npm install -g @anthropic-ai/claude-code` (or see "
                "https://docs.claude.com/en/docs/claude-code/setup), then set "
                "c.ClaudeBridge.cli_path or CLAUDE_NB_CLI if it is not on PATH.")

# Variables never handed to the CLI: a nested-session marker that makes it refuse to start,
# and the Jupyter server's own secrets.
_STRIPPED_ENV = ("CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT", "JUPYTER_TOKEN", "JPY_API_TOKEN",
                 "CLAUDE_NB_TOKEN", "CLAUDE_NB_URL")


class CliNotFound(AnthropicError):
    status = 500

    def __init__(self, looked: list[str]):
        super().__init__("The Claude Code CLI (`claude`) was not found. Looked in: "
                         + "; ".join(looked) + ". " + INSTALL_HINT, should_retry=False)


def find_cli(configured: str | None) -> str:
    """cli_path trait, else $CLAUDE_NB_CLI, else `claude` on PATH."""
    looked = []
    for label, candidate in (("c.ClaudeBridge.cli_path", configured),
                             ("$CLAUDE_NB_CLI", os.environ.get("CLAUDE_NB_CLI"))):
        if candidate:
            path = shutil.which(candidate) or (candidate if os.access(candidate, os.X_OK) else None)
            if path and os.path.isfile(path):
                return os.path.abspath(path)     # each process runs in its own directory
            looked.append(f"{label}={candidate!r} (not an executable file)")
        else:
            looked.append(f"{label} (not set)")
    path = shutil.which("claude")
    if path:
        return path
    looked.append("`claude` on PATH (" + os.environ.get("PATH", "") + ")")
    raise CliNotFound(looked)


@dataclass(frozen=True)
class LaunchSpec:
    model: str
    system_prompt: str = ""
    max_output_tokens: int = 4096
    thinking: str = "disabled"          # disabled | enabled | adaptive
    thinking_budget: int = 0
    thinking_display: str | None = None # summarized | omitted
    effort: str | None = None           # None: no effort sent upstream (the API's default)
    mcp_config: str | None = None       # client tools, as a stdio MCP server config (JSON)
    json_schema: str | None = None      # structured output
    resume: str | None = field(default=None, compare=False)   # session id: never pooled


def build_argv(cli: str, spec: LaunchSpec, *, allow_tools: str = "") -> list[str]:
    if "\x00" in spec.system_prompt:
        # A command-line argument cannot hold a NUL byte (exec fails on it).
        raise InvalidRequest("system: the system prompt contains a NUL character (\\u0000), "
                             "which cannot be passed to the Claude Code CLI; remove it.")
    argv = [cli, "-p", "--output-format", "stream-json", "--verbose",
            "--include-partial-messages", "--input-format", "stream-json",
            "--model", spec.model,
            "--system-prompt", spec.system_prompt,
            "--tools", allow_tools,
            "--no-session-persistence",
            "--strict-mcp-config",
            "--setting-sources", "",
            "--disable-slash-commands",
            # One upstream request per run: the CLI must never loop on a tool call.
            "--max-turns", "1"]
    if spec.mcp_config:
        argv += ["--mcp-config", spec.mcp_config]
    if spec.thinking_display and spec.thinking != "disabled":
        argv += ["--thinking-display", spec.thinking_display]
    if spec.json_schema:
        argv += ["--json-schema", spec.json_schema]
    if spec.resume:
        argv += ["--resume", spec.resume]
    return argv


def resume_prompt(cli: CliInfo | None) -> str:
    """What the CLI appends to a resumed last turn that starts with `tool_result` (it treats the
    turn as interrupted work and adds its resume prompt, by default "Continue from where you
    left off."). 2.1.197 drops a blank prompt, so nothing is added; newer CLIs take a blank value
    as unset, so the smallest text that carries nothing, a zero-width space, stands in for it."""
    if cli is not None and cli.version is not None and cli.version <= (2, 1, 197):
        return " "
    return "\u200b"


def build_env(spec: LaunchSpec, base: dict | None = None, cli: CliInfo | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    for key in _STRIPPED_ENV:
        env.pop(key, None)
    env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] = str(spec.max_output_tokens)
    # Thinking (docs/compatibility.md has the per-version measurements). "disabled" must mean
    # no thinking on every CLI: MAX_THINKING_TOKENS=0 alone sends `disabled` on 2.1.197, but
    # newer CLIs turn it into `adaptive` for models they hold cannot switch thinking off;
    # CLAUDE_CODE_DISABLE_THINKING makes every version leave `thinking` out, and a request
    # without `thinking` does not think. A budget is sent as `enabled` to models that take one
    # (adaptive switched off where the CLI would otherwise prefer it); unset means `adaptive`.
    # Newer CLIs add `display: "updates"` (a value no API client sends) unless told not to.
    for key in ("CLAUDE_CODE_DISABLE_ADAPTIVE_THINKING", "CLAUDE_CODE_DISABLE_THINKING",
                "CLAUDE_CODE_THINKING_DISPLAY_UPDATES"):
        env.pop(key, None)
    if spec.thinking == "disabled":
        env["MAX_THINKING_TOKENS"] = "0"
        env["CLAUDE_CODE_DISABLE_THINKING"] = "1"
    else:
        env["CLAUDE_CODE_THINKING_DISPLAY_UPDATES"] = "0"
        if spec.thinking == "enabled":
            env["MAX_THINKING_TOKENS"] = str(spec.thinking_budget)
            env["CLAUDE_CODE_DISABLE_ADAPTIVE_THINKING"] = "1"
        else:
            env.pop("MAX_THINKING_TOKENS", None)
    # Effort goes by environment, not `--effort`: that flag also rewrites the user's own
    # Claude Code settings (it unpins the launch effort of Opus 4.7/4.8 and Fable 5 in
    # .claude.json). "unset" keeps the CLI from adding its default effort upstream.
    env["CLAUDE_CODE_EFFORT_LEVEL"] = spec.effort or "unset"
    if spec.resume:
        # The transcript ends with the request's last user turn: the CLI answers that turn
        # itself ("interrupted turn"), so nothing is added after it. A turn that starts with
        # tool_result gets the resume prompt appended; a blank one is dropped before upstream.
        env["CLAUDE_CODE_RESUME_INTERRUPTED_TURN"] = "1"
        env["CLAUDE_CODE_RESUME_PROMPT"] = resume_prompt(cli)
    else:
        env.pop("CLAUDE_CODE_RESUME_INTERRUPTED_TURN", None)
        env.pop("CLAUDE_CODE_RESUME_PROMPT", None)
    # Hand upstream errors to the client at once; the SDK (or the batch runner) retries.
    env["CLAUDE_CODE_MAX_RETRIES"] = "0"
    # A cut stream is an error for the client to retry. Newer CLIs would otherwise ask again
    # without streaming (a second upstream request whose answer bypasses the stream events).
    env["CLAUDE_CODE_DISABLE_NONSTREAMING_FALLBACK"] = "1"
    # No context attachments: newer CLIs list a `DeferredToolPlaceholder` tool the client never
    # offered whenever MCP tools (the client's tools) are present.
    env["CLAUDE_CODE_DISABLE_ATTACHMENTS"] = "1"
    env.setdefault("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    env.setdefault("DISABLE_AUTOUPDATER", "1")
    return env


def mcp_config_for_tools(tools: list[dict], python: str, script: str) -> str:
    """A stdio MCP server that advertises the client's tools (and never runs them)."""
    payload = json.dumps([{"name": t["name"], "description": t.get("description", ""),
                           "inputSchema": t.get("input_schema", {"type": "object"})} for t in tools])
    return json.dumps({"mcpServers": {"client": {"type": "stdio", "command": python,
                                                 "args": [script], "env": {"CLAUDE_NB_TOOLS": payload}}}})
