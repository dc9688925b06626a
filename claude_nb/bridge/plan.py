"""Turn a validated Messages request into what the CLI needs: a LaunchSpec, the earlier turns
(resumed from a transcript) and the last user turn (written to stdin)."""
from __future__ import annotations

import base64
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Callable

from ..protocol.errors import InvalidRequest
from ..protocol.models import cli_model_name, resolve_model
from .command import LaunchSpec, mcp_config_for_tools
from .events import CLIENT_TOOL_PREFIX

# file_id -> (bytes, mime_type, filename); raises NotFound for an unknown id.
FileResolver = Callable[[str], "tuple[bytes, str, str]"]

MCP_SERVER_SCRIPT = os.path.join(os.path.dirname(__file__), "tool_server.py")
TEXT_MIME_PREFIXES = ("text/",)
TEXT_MIME_TYPES = {"application/json", "application/xml", "application/x-yaml", "application/csv"}


@dataclass
class RunPlan:
    """What one request needs from the CLI.

    prior_turns: turns written to a session transcript that the CLI resumes (`--resume`).
    When the request has earlier turns, the whole conversation goes there, its last user turn
    included, and the CLI answers that turn by itself: `user_content` is then None and nothing
    is written to stdin. A single-turn request has no transcript and its turn goes to stdin
    (`user_content`), which a pre-started process can take.
    """
    spec: LaunchSpec
    prior_turns: list[dict]
    user_content: list | None
    client_tools: list[str] = field(default_factory=list)
    stop_sequences: list[str] = field(default_factory=list)
    structured: bool = False
    model: str = ""
    max_tool_calls: int | None = None    # tool_choice.disable_parallel_tool_use: 1


# The CLI will not answer a resumed last turn that is exactly one of its own interrupt markers.
_CLI_INTERRUPT_MARKERS = ("[Request interrupted by user]", "[Request interrupted by user for tool use]")


def _system_text(system) -> str:
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    return "\n\n".join(b.get("text", "") for b in system)


def _content_list(content) -> list:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content)


def _resolve_file_block(block: dict, resolve: FileResolver | None) -> dict:
    source = block.get("source") or {}
    if source.get("type") != "file":
        return block
    if resolve is None:
        raise InvalidRequest("file sources need the Files API store, which is not configured here")
    data, mime, filename = resolve(source["file_id"])
    out = {k: v for k, v in block.items() if k != "source"}
    if block["type"] == "image":
        if not mime.startswith("image/"):
            raise InvalidRequest(f"file {source['file_id']} is {mime}, not an image; use a document block")
        out["source"] = {"type": "base64", "media_type": mime, "data": base64.b64encode(data).decode()}
    elif mime == "application/pdf":
        out["source"] = {"type": "base64", "media_type": "application/pdf",
                         "data": base64.b64encode(data).decode()}
        out.setdefault("title", filename)
    elif mime.startswith(TEXT_MIME_PREFIXES) or mime in TEXT_MIME_TYPES:
        out["source"] = {"type": "text", "media_type": "text/plain",
                         "data": data.decode("utf-8", "replace")}
        out.setdefault("title", filename)
    elif mime.startswith("image/"):
        out = {"type": "image", "source": {"type": "base64", "media_type": mime,
                                           "data": base64.b64encode(data).decode()}}
    else:
        raise InvalidRequest(f"file {source['file_id']} ({mime}) cannot be read by the model: "
                             "documents must be PDF or text, images jpeg/png/gif/webp")
    return out


def _map_block(block, client_tools: set[str], resolve: FileResolver | None):
    if not isinstance(block, dict):
        return block
    kind = block.get("type")
    if kind in ("image", "document"):
        block = _resolve_file_block(block, resolve)
        source = block.get("source") or {}
        if source.get("type") == "content" and isinstance(source.get("content"), list):
            inner = [_map_block(b, client_tools, resolve) for b in source["content"]]
            block = {**block, "source": {**source, "content": inner}}
        return block
    if kind == "tool_use" and block.get("name") in client_tools:
        return {**block, "name": CLIENT_TOOL_PREFIX + block["name"]}
    if kind == "tool_result" and isinstance(block.get("content"), list):
        return {**block, "content": [_map_block(b, client_tools, resolve) for b in block["content"]]}
    return block


def _tool_choice_instruction(choice: dict | None, tools: list[dict]) -> str:
    # The CLI never sends tool_choice upstream: the choice is asked for in the system prompt.
    if not choice or not tools:
        return ""
    kind = choice.get("type")
    if kind == "any":
        return "You must answer by calling one of the available tools."
    if kind == "tool":
        return f"You must answer by calling the tool `{choice['name']}`."
    if kind == "none":
        return "Do not call any tool in this answer: answer in text only."
    return ""


def _split_turns(turns: list[dict]) -> tuple[list[dict], list | None]:
    """(transcript turns, stdin content). See RunPlan."""
    if len(turns) == 1:
        return [], turns[0]["content"]
    last = turns[-1]["content"]
    is_marker = (len(last) == 1 and last[0].get("type") == "text"
                 and last[0].get("text") in _CLI_INTERRUPT_MARKERS)
    if not is_marker:
        return turns, None
    # Rare: send the trailing user turns (merged, as the API merges consecutive user turns)
    # on stdin; the transcript then ends with an assistant turn, which the CLI leaves alone.
    head = list(turns)
    tail: list = []
    while head and head[-1]["role"] == "user":
        tail = head.pop()["content"] + tail
    return head, tail


# Models whose "launch effort" the CLI always sends (xhigh for Opus 4.7) unless the user has
# picked an effort in Claude Code itself; for them a request without effort gets the API's
# default, high, instead (measured with CLI 2.1.197, see docs/compatibility.md).
_CLI_PINNED_EFFORT_MODELS = ("opus-4-7", "opus-4-8", "fable-5")


def _default_effort(model: str) -> str | None:
    model_id = resolve_model(model).id
    return "high" if any(m in model_id for m in _CLI_PINNED_EFFORT_MODELS) else None


THINKING_DISPLAYS = ("summarized", "omitted")


def _thinking_spec(thinking: dict | None) -> dict:
    thinking = thinking or {"type": "disabled"}
    display = thinking.get("display")
    if display is not None and display not in THINKING_DISPLAYS:
        raise InvalidRequest("thinking.display: Input should be 'summarized' or 'omitted'")
    return {"thinking": thinking["type"],
            "thinking_budget": int(thinking.get("budget_tokens") or 0),
            "thinking_display": thinking.get("display")}


def plan_request(body: dict, *, resolve_file: FileResolver | None = None,
                 python: str | None = None) -> RunPlan:
    messages = list(body["messages"])
    system_parts = [_system_text(body.get("system"))]
    # API 2026-10-21 allows role "system" messages: they join the system prompt.
    turns = []
    for m in messages:
        if m["role"] == "system":
            system_parts.append(_system_text(m["content"]))
        else:
            turns.append(m)
    if not turns:
        raise InvalidRequest("messages: at least one user message is required")
    if turns[-1]["role"] != "user":
        raise InvalidRequest("messages: the last message must have role 'user'. Prefilling the "
                             "assistant turn is not supported through the Claude Code CLI, which "
                             "only answers a user turn; put the required start of the answer in "
                             "the instructions (or use output_config.format for JSON) instead.")

    tools = body.get("tools") or []
    tool_choice = body.get("tool_choice") or {}
    tool_names = {t["name"] for t in tools}
    system_parts.append(_tool_choice_instruction(tool_choice, tools))
    single_call = bool(tool_choice.get("disable_parallel_tool_use")) and bool(tools)
    if single_call:
        system_parts.append("Call at most one tool in this answer.")

    mapped = [{"role": t["role"],
               "content": [_map_block(b, tool_names, resolve_file) for b in _content_list(t["content"])]}
              for t in turns]
    prior, stdin_content = _split_turns(mapped)

    output_config = body.get("output_config") or {}
    fmt = output_config.get("format") or body.get("output_format")
    spec = LaunchSpec(
        model=cli_model_name(body["model"]),
        system_prompt="\n\n".join(p for p in system_parts if p),
        max_output_tokens=int(body.get("max_tokens") or 4096),
        effort=output_config.get("effort") or _default_effort(body["model"]),
        # tool_choice "none" still describes the tools, as the API does (earlier tool_use
        # turns need them); a call the model makes anyway is dropped from the answer.
        mcp_config=(mcp_config_for_tools(tools, python or sys.executable, MCP_SERVER_SCRIPT)
                    if tools else None),
        json_schema=json.dumps(fmt["schema"], sort_keys=True) if fmt else None,
        **_thinking_spec(body.get("thinking")),
    )
    return RunPlan(spec=spec, prior_turns=prior, user_content=stdin_content,
                   client_tools=[] if tool_choice.get("type") == "none" else sorted(tool_names),
                   stop_sequences=list(body.get("stop_sequences") or []),
                   structured=bool(fmt), model=body["model"],
                   max_tool_calls=1 if single_call else None)
