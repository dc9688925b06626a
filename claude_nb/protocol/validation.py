"""Request validation as strict as the real Messages API, with errors that name the field."""
from __future__ import annotations

import json
import math
import re

from .errors import InvalidRequest, RequestTooLarge

MAX_MESSAGE_BYTES = 32 * 1024 * 1024
MAX_MESSAGES = 100_000
MAX_JSON_DEPTH = 64

INPUT_BLOCK_TYPES = {
    "text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking",
    "search_result", "server_tool_use", "web_search_tool_result", "container_upload",
}
IMAGE_MEDIA_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
EFFORTS = {"low", "medium", "high", "xhigh", "max"}
ROLES = ("user", "assistant", "system")
THINKING_TYPES = ("enabled", "adaptive", "disabled")
MIN_THINKING_BUDGET = 1024
TOOL_CHOICE_TYPES = ("auto", "any", "tool", "none")
TOOL_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,128}$"

# Fields accepted on /v1/messages. Some are honoured, some emulated, some accepted and
# declared ignored (see IGNORED_FIELDS and the README's compatibility table).
MESSAGE_FIELDS = {
    "model", "messages", "max_tokens", "system", "stop_sequences", "stream", "metadata",
    "tools", "tool_choice", "thinking", "output_config", "output_format", "service_tier",
    "temperature", "top_p", "top_k", "cache_control", "speed", "inference_geo", "container",
    "diagnostics", "context_management", "mcp_servers",
}
COUNT_FIELDS = {"model", "messages", "system", "tools", "tool_choice", "thinking",
                "output_config", "output_format", "cache_control", "speed", "context_management",
                "mcp_servers"}
# Accepted but with no effect through the CLI: echoed in the `claude-nb-ignored` header.
IGNORED_FIELDS = ("temperature", "top_p", "top_k", "service_tier", "speed", "inference_geo",
                  "container", "diagnostics", "context_management", "mcp_servers", "metadata",
                  "cache_control")

_TOOL_NAME = re.compile(TOOL_NAME_PATTERN)


def parse_json_body(raw: bytes, *, limit: int = MAX_MESSAGE_BYTES) -> dict:
    """Decode a JSON object body, or raise the 400/413 the real API gives."""
    if len(raw) > limit:
        raise RequestTooLarge(f"Request exceeds the maximum allowed size of {limit // (1024 * 1024)} MB.")
    if not raw.strip():
        raise InvalidRequest("The request body is empty; it must be a JSON object.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid UTF-8 (byte {exc.start}).") from None
    try:
        body = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise InvalidRequest("The request body is nested too deeply.") from None
    except ValueError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequest("The request body is not valid JSON: a string holds an unpaired "
                                 "UTF-16 surrogate (\\ud800-\\udfff escape).") from None
    if _depth(body) > MAX_JSON_DEPTH:
        raise InvalidRequest(f"The request body is nested deeper than {MAX_JSON_DEPTH} levels.")
    return body


# Only a \\uXXXX escape can put a lone surrogate into decoded text (UTF-8 input cannot).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def _reject_constant(name: str):
    # Python's json accepts NaN and Infinity; JSON (and the real API) does not.
    raise ValueError(f"{name} is not a valid JSON value")


def _depth(value, level=1) -> int:
    stack = [(value, level)]
    deepest = level
    while stack:
        item, lvl = stack.pop()
        deepest = max(deepest, lvl)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, lvl + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, lvl + 1) for v in item)
    return deepest


def _fail(path: str, message: str):
    raise InvalidRequest(f"{path}: {message}")


def is_int(v) -> bool:
    """An int that is not a bool (JSON true is not a number)."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v) -> bool:
    """A finite int or float that is not a bool."""
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v))


def _require_str(obj: dict, key: str, path: str, *, allow_empty=False) -> str:
    if key not in obj:
        _fail(f"{path}.{key}", "Field required")
    v = obj[key]
    if not isinstance(v, str):
        _fail(f"{path}.{key}", "Input should be a valid string")
    if not allow_empty and not v:
        _fail(f"{path}.{key}", "String should have at least 1 character")
    return v


def _check_text_blocks(blocks, path: str):
    if not isinstance(blocks, list):
        _fail(path, "Input should be a string or a list of text blocks")
    for i, b in enumerate(blocks):
        if not isinstance(b, dict) or b.get("type") != "text":
            _fail(f"{path}.{i}", "Input should be a text block ({\"type\": \"text\", \"text\": ...})")
        _require_str(b, "text", f"{path}.{i}", allow_empty=True)


def _check_source(source, path: str, kind: str):
    if not isinstance(source, dict):
        _fail(path, "Field required: an object with a `type`")
    stype = source.get("type")
    if kind == "image":
        if stype == "base64":
            media = _require_str(source, "media_type", path)
            if media not in IMAGE_MEDIA_TYPES:
                _fail(f"{path}.media_type", f"Input should be one of {sorted(IMAGE_MEDIA_TYPES)}")
            _require_str(source, "data", path)
        elif stype == "url":
            _require_str(source, "url", path)
        elif stype == "file":
            _require_str(source, "file_id", path)
        else:
            _fail(f"{path}.type", "Input should be 'base64', 'url' or 'file'")
    else:
        if stype == "base64":
            media = _require_str(source, "media_type", path)
            if media != "application/pdf":
                _fail(f"{path}.media_type", "Input should be 'application/pdf'")
            _require_str(source, "data", path)
        elif stype == "text":
            media = source.get("media_type", "text/plain")
            if media != "text/plain":
                _fail(f"{path}.media_type", "Input should be 'text/plain'")
            _require_str(source, "data", path, allow_empty=True)
        elif stype == "content":
            content = source.get("content")
            if isinstance(content, str):
                return
            if not isinstance(content, list):
                _fail(f"{path}.content", "Input should be a string or a list of blocks")
            for i, b in enumerate(content):
                if not isinstance(b, dict) or b.get("type") not in ("text", "image"):
                    _fail(f"{path}.content.{i}", "Input should be a text or image block")
                _check_block(b, f"{path}.content.{i}", "user")
        elif stype == "url":
            _require_str(source, "url", path)
        elif stype == "file":
            _require_str(source, "file_id", path)
        else:
            _fail(f"{path}.type", "Input should be 'base64', 'text', 'content', 'url' or 'file'")


def _check_block(block, path: str, role: str):
    if not isinstance(block, dict):
        _fail(path, "Input should be a content block object")
    kind = block.get("type")
    if not isinstance(kind, str):
        _fail(f"{path}.type", "Field required")
    if kind not in INPUT_BLOCK_TYPES:
        _fail(f"{path}.type", f"Input tag '{kind}' found using 'type' does not match any of the "
              f"expected tags: {', '.join(sorted(INPUT_BLOCK_TYPES))}")
    if kind == "text":
        _require_str(block, "text", path, allow_empty=True)
    elif kind in ("image", "document"):
        _check_source(block.get("source"), f"{path}.source", kind)
    elif kind == "tool_use":
        if role != "assistant":
            _fail(path, "tool_use blocks may only appear in assistant messages")
        _require_str(block, "id", path)
        _require_str(block, "name", path)
        if not isinstance(block.get("input"), dict):
            _fail(f"{path}.input", "Input should be a valid dictionary")
    elif kind == "tool_result":
        if role != "user":
            _fail(path, "tool_result blocks may only appear in user messages")
        _require_str(block, "tool_use_id", path)
        content = block.get("content", "")
        if not isinstance(content, str):
            if not isinstance(content, list):
                _fail(f"{path}.content", "Input should be a string or a list of blocks")
            for i, b in enumerate(content):
                _check_block(b, f"{path}.content.{i}", "user")
        if "is_error" in block and not isinstance(block["is_error"], bool):
            _fail(f"{path}.is_error", "Input should be a valid boolean")
    elif kind == "thinking":
        _require_str(block, "thinking", path, allow_empty=True)
        _require_str(block, "signature", path, allow_empty=True)
    elif kind == "redacted_thinking":
        _require_str(block, "data", path)


def _check_messages(messages, path="messages"):
    if not isinstance(messages, list):
        _fail(path, "Input should be a valid list")
    if not messages:
        _fail(path, "at least one message is required")
    if len(messages) > MAX_MESSAGES:
        _fail(path, f"at most {MAX_MESSAGES} messages are allowed")
    for i, m in enumerate(messages):
        mpath = f"{path}.{i}"
        if not isinstance(m, dict):
            _fail(mpath, "Input should be an object with `role` and `content`")
        role = m.get("role")
        if role not in ROLES:
            _fail(f"{mpath}.role", "Input should be 'user', 'assistant' or 'system'")
        if "content" not in m:
            _fail(f"{mpath}.content", "Field required")
        content = m["content"]
        if role == "system":
            if not isinstance(content, str):
                _check_text_blocks(content, f"{mpath}.content")
            continue
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            _fail(f"{mpath}.content", "Input should be a string or a list of content blocks")
        for j, block in enumerate(content):
            _check_block(block, f"{mpath}.content.{j}", role)
        extra = set(m) - {"role", "content"}
        if extra:
            _fail(f"{mpath}.{sorted(extra)[0]}", "Extra inputs are not permitted")


def _check_tools(body: dict):
    tools = body.get("tools")
    names = set()
    if tools is not None:
        if not isinstance(tools, list):
            _fail("tools", "Input should be a valid list")
        for i, tool in enumerate(tools):
            path = f"tools.{i}"
            if not isinstance(tool, dict):
                _fail(path, "Input should be a tool object")
            ttype = tool.get("type", "custom")
            if ttype not in ("custom", None):
                _fail(f"{path}.type", f"server tool '{ttype}' is not available through the Claude Code "
                      "bridge; define a custom tool with `name` and `input_schema` instead")
            name = _require_str(tool, "name", path)
            if not _TOOL_NAME.match(name):
                _fail(f"{path}.name", "String should match pattern '^[a-zA-Z0-9_-]{1,128}$'")
            if name in names:
                _fail(f"{path}.name", f"tool names must be unique; '{name}' appears twice")
            names.add(name)
            schema = tool.get("input_schema")
            if not isinstance(schema, dict):
                _fail(f"{path}.input_schema", "Field required: a JSON schema object")
            if schema.get("type") != "object":
                _fail(f"{path}.input_schema.type", "Input should be 'object'")
            if "description" in tool and not isinstance(tool["description"], str):
                _fail(f"{path}.description", "Input should be a valid string")
    choice = body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict) or choice.get("type") not in TOOL_CHOICE_TYPES:
            _fail("tool_choice.type", "Input should be 'auto', 'any', 'tool' or 'none'")
        if choice["type"] == "tool":
            name = _require_str(choice, "name", "tool_choice")
            if name not in names:
                _fail("tool_choice.name", f"'{name}' is not one of the tools in `tools`")
        if choice["type"] in ("any", "tool") and not names:
            _fail("tool_choice", "tool_choice requires `tools`")


def _check_thinking_and_output(body: dict):
    thinking = body.get("thinking")
    if thinking is not None:
        if not isinstance(thinking, dict) or thinking.get("type") not in THINKING_TYPES:
            _fail("thinking.type", "Input should be 'enabled', 'adaptive' or 'disabled'")
        if thinking["type"] == "enabled":
            budget = thinking.get("budget_tokens")
            if not is_int(budget):
                _fail("thinking.budget_tokens", "Field required: an integer")
            if budget < MIN_THINKING_BUDGET:
                _fail("thinking.budget_tokens",
                      f"Input should be greater than or equal to {MIN_THINKING_BUDGET}")
            max_tokens = body.get("max_tokens")
            if is_int(max_tokens) and budget >= max_tokens:
                _fail("thinking.budget_tokens", "`max_tokens` must be greater than `thinking.budget_tokens`")
    config = body.get("output_config")
    if config is not None:
        if not isinstance(config, dict):
            _fail("output_config", "Input should be an object")
        effort = config.get("effort")
        if effort is not None and effort not in EFFORTS:
            _fail("output_config.effort", f"Input should be one of {sorted(EFFORTS)}")
        fmt = config.get("format")
        if fmt is not None:
            _check_format(fmt, "output_config.format")
    if body.get("output_format") is not None:   # the beta spelling
        _check_format(body["output_format"], "output_format")


def _check_format(fmt, path):
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        _fail(f"{path}.type", "Input should be 'json_schema'")
    if not isinstance(fmt.get("schema"), dict):
        _fail(f"{path}.schema", "Field required: a JSON schema object")


def _check_common(body: dict, allowed: set[str]):
    extra = sorted(set(body) - allowed)
    if extra:
        _fail(extra[0], "Extra inputs are not permitted")
    model = body.get("model")
    if model is None:
        _fail("model", "Field required")
    if not isinstance(model, str) or not model.strip():
        _fail("model", "Input should be a non-empty string")
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        _check_text_blocks(system, "system")
    _check_messages(body.get("messages"))
    _check_tools(body)
    _check_thinking_and_output(body)


def validate_message_request(body: dict) -> dict:
    """Check a /v1/messages body; returns it unchanged or raises InvalidRequest."""
    _check_common(body, MESSAGE_FIELDS)
    if "max_tokens" not in body:
        _fail("max_tokens", "Field required")
    max_tokens = body["max_tokens"]
    if not is_int(max_tokens):
        _fail("max_tokens", "Input should be a valid integer")
    if max_tokens < 1:
        _fail("max_tokens", "Input should be greater than or equal to 1")
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
            _fail("stop_sequences", "Input should be a list of non-empty strings")
    if "stream" in body and not isinstance(body["stream"], bool):
        _fail("stream", "Input should be a valid boolean")
    for key, low, high in (("temperature", 0.0, 1.0), ("top_p", 0.0, 1.0)):
        if key in body and body[key] is not None:
            if not is_number(body[key]) or not low <= body[key] <= high:
                _fail(key, f"Input should be a number between {low} and {high}")
    if body.get("top_k") is not None and (not is_int(body["top_k"]) or body["top_k"] < 0):
        _fail("top_k", "Input should be a non-negative integer")
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            _fail("metadata", "Input should be an object")
        uid = metadata.get("user_id")
        if uid is not None and not isinstance(uid, str):
            _fail("metadata.user_id", "Input should be a valid string")
    return body


def validate_count_request(body: dict) -> dict:
    _check_common(body, COUNT_FIELDS)
    return body


# Tool definition fields the CLI cannot carry (client tools reach it as MCP tools, which have a
# name, a description and an input schema only).
IGNORED_TOOL_FIELDS = ("strict", "cache_control", "input_examples", "eager_input_streaming",
                       "defer_loading", "allowed_callers")


def ignored_fields(body: dict) -> list[str]:
    """Request fields that were accepted but have no effect through the CLI (docs/
    compatibility.md): top-level names, then `tools.<field>` for tool definition fields.
    The server echoes them in the `claude-nb-ignored` response header."""
    out = [f for f in IGNORED_FIELDS if body.get(f) is not None]
    tools = body.get("tools") if isinstance(body.get("tools"), list) else []
    for name in IGNORED_TOOL_FIELDS:
        if any(isinstance(t, dict) and t.get(name) not in (None, False) for t in tools):
            out.append("tools." + name)
    return out


# A chat's key, so its CLI process is kept between turns (our extension to the API; the
# Anthropic API itself is stateless). Only a hint: a turn continues the kept process only when
# its history is exactly the previous turn's plus the answer, so a key cannot leak a chat.
SESSION_HEADER = "claude-nb-session"
_SESSION_KEY = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def parse_session_key(value: str | None, where: str = SESSION_HEADER) -> str | None:
    if value is None or value == "":
        return None
    if not _SESSION_KEY.fullmatch(value):
        raise InvalidRequest(f"{where}: {value[:40]!r} is not a session key; use 1 to 128 letters, "
                             "digits, '.', '_', ':' or '-'.")
    return value
