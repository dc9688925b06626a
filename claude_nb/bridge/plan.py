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
from ..protocol.models import cli_model_name
from .command import LaunchSpec, mcp_config_for_tools
from .events import CLIENT_TOOL_PREFIX

# file_id -> (bytes, mime_type, filename); raises NotFound for an unknown id.
FileResolver = Callable[[str], "tuple[bytes, str, str]"]

MCP_SERVER_SCRIPT = os.path.join(os.path.dirname(__file__), "tool_server.py")
TEXT_MIME_PREFIXES = ("text/",)
TEXT_MIME_TYPES = {"application/json", "application/xml", "application/x-yaml", "application/csv"}


@dataclass
class RunPlan:
    spec: LaunchSpec
    prior_turns: list[dict]
    user_content: list
    client_tools: list[str] = field(default_factory=list)
    stop_sequences: list[str] = field(default_factory=list)
    structured: bool = False
    model: str = ""


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
        return _resolve_file_block(block, resolve)
    if kind == "tool_use" and block.get("name") in client_tools:
        return {**block, "name": CLIENT_TOOL_PREFIX + block["name"]}
    if kind == "tool_result" and isinstance(block.get("content"), list):
        return {**block, "content": [_map_block(b, client_tools, resolve) for b in block["content"]]}
    return block


def _tool_choice_instruction(choice: dict | None) -> str:
    if not choice:
        return ""
    kind = choice.get("type")
    if kind == "any":
        return "You must answer by calling one of the available tools."
    if kind == "tool":
        return f"You must answer by calling the tool `{choice['name']}`."
    return ""


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
                             "assistant turn is not supported through the Claude Code CLI.")

    tool_choice = body.get("tool_choice") or {}
    tools = body.get("tools") or []
    if tool_choice.get("type") == "none":
        tools = []
    tool_names = {t["name"] for t in tools}
    history_tool_names = {t["name"] for t in body.get("tools") or []}
    if tool_choice.get("disable_parallel_tool_use"):
        system_parts.append("Call at most one tool in this answer.")
    system_parts.append(_tool_choice_instruction(tool_choice if tools else None))

    mapped = [{"role": t["role"],
               "content": [_map_block(b, history_tool_names, resolve_file) for b in _content_list(t["content"])]}
              for t in turns]

    thinking = body.get("thinking") or {"type": "disabled"}
    output_config = body.get("output_config") or {}
    fmt = output_config.get("format") or body.get("output_format")
    stop_sequences = list(body.get("stop_sequences") or [])
    spec = LaunchSpec(
        model=cli_model_name(body["model"]),
        system_prompt="\n\n".join(p for p in system_parts if p),
        max_output_tokens=int(body.get("max_tokens") or 4096),
        thinking=thinking["type"],
        thinking_budget=int(thinking.get("budget_tokens") or 0),
        effort=output_config.get("effort"),
        mcp_config=(mcp_config_for_tools(tools, python or sys.executable, MCP_SERVER_SCRIPT)
                    if tools else None),
        json_schema=json.dumps(fmt["schema"], sort_keys=True) if fmt else None,
    )
    return RunPlan(spec=spec, prior_turns=mapped[:-1], user_content=mapped[-1]["content"],
                   client_tools=sorted(tool_names), stop_sequences=stop_sequences,
                   structured=bool(fmt), model=body["model"])
