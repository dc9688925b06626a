"""OpenAI chat requests in: `translate_chat_request(body)` checks a `POST /v1/chat/completions`
body and builds the equivalent, validated Anthropic Messages body (plus what the response side
needs to know). Pure: the result runs through the one `ClaudeBridge` like any /v1/messages request.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass, field

from ..errors import AnthropicError, InvalidRequest
from ..models import DEFAULT_MAX_TOKENS, resolve_model
from ..validation import IMAGE_MEDIA_TYPES, is_int, is_number, validate_message_request
from .errors import ChatRequestError
MAX_STOP_SEQUENCES = 4          # OpenAI's own limit on `stop`

# Accepted, and with no effect through the CLI: named in the `claude-nb-ignored` header.
IGNORED_FIELDS = ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty",
                  "user", "safety_identifier", "metadata", "store", "service_tier",
                  "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention",
                  "verbosity", "moderation")
# Fields the bridge cannot honour: a 400 naming the field beats a silently different answer.
_UNSUPPORTED = {
    "audio": "audio output is not available through the Claude Code CLI",
    "prediction": "predicted outputs are not available through the Claude Code CLI",
    "web_search_options": "web search is not available through the Claude Code CLI bridge",
    "functions": "the deprecated `functions` parameter is not supported; pass `tools` "
                 "([{\"type\": \"function\", \"function\": {...}}]) instead",
    "function_call": "the deprecated `function_call` parameter is not supported; use `tool_choice`",
}
UNSUPPORTED_FIELDS = tuple(_UNSUPPORTED)      # a 400 naming the field (the OpenAPI document lists them)
KNOWN_FIELDS = ({"model", "messages", "max_tokens", "max_completion_tokens", "stop", "stream",
                 "stream_options", "tools", "tool_choice", "parallel_tool_calls",
                 "response_format", "reasoning_effort", "n", "logprobs", "top_logprobs",
                 "logit_bias", "modalities"}
                | set(IGNORED_FIELDS) | set(_UNSUPPORTED))

# Anthropic effort levels for OpenAI's reasoning_effort ("none" turns thinking off).
_EFFORT = {"minimal": "low", "low": "low", "medium": "medium", "high": "high",
           "xhigh": "xhigh", "max": "max"}

JSON_OBJECT_INSTRUCTION = ("Respond with one valid JSON object and nothing else: no Markdown code "
                           "fences, no text before or after it.")

_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _fail(param: str | None, message: str, code: str | None = None):
    raise ChatRequestError(param, message, code=code)


@dataclass
class ChatRequest:
    """An OpenAI chat request, translated."""
    messages_body: dict                 # the Anthropic Messages request, validated
    model: str                          # the model name as the client sent it
    stream: bool = False
    include_usage: bool = False
    ignored: list[str] = field(default_factory=list)
    created: int = field(default_factory=lambda: int(time.time()))


# -- request ---------------------------------------------------------------------------------

def translate_chat_request(body: dict) -> ChatRequest:
    """Check an OpenAI chat body and build the equivalent Anthropic Messages body."""
    if not isinstance(body, dict):
        _fail(None, "The request body must be a JSON object.")
    unknown = sorted(set(body) - KNOWN_FIELDS)
    if unknown:
        _fail(unknown[0], f"Unrecognized request argument supplied: {unknown[0]}",
              "unknown_parameter")
    for name, why in _UNSUPPORTED.items():
        if body.get(name) is not None:
            _fail(name, why, "unsupported_parameter")
    _check_unsupported_values(body)

    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        _fail("model", "you must provide a model name (GET /v1/models lists them)", "missing_required_parameter")
    try:
        resolve_model(model)
    except AnthropicError:
        raise ChatRequestError("model", f"The model `{model}` does not exist. GET /v1/models lists "
                               "the models available through Claude Code.",
                               code="model_not_found", status=404) from None

    system_parts, turns = _translate_messages(body.get("messages"))
    out: dict = {"model": model.strip(), "messages": turns,
                 "max_tokens": _max_tokens(body)}

    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            _fail("stop", "Input should be a string or a list of strings")
        if len(stops) > MAX_STOP_SEQUENCES:
            _fail("stop", f"at most {MAX_STOP_SEQUENCES} stop sequences are allowed")
        stops = [s for s in stops if s]
        if stops:
            out["stop_sequences"] = stops

    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        _fail("stream", "Input should be a valid boolean")
    include_usage = False
    options = body.get("stream_options")
    if options is not None:
        if not stream:
            _fail("stream_options", "The 'stream_options' parameter is only allowed when 'stream' is enabled.")
        if not isinstance(options, dict):
            _fail("stream_options", "Input should be an object")
        extra = sorted(set(options) - {"include_usage", "include_obfuscation"})
        if extra:
            _fail(f"stream_options.{extra[0]}", "Unrecognized stream option")
        include_usage = options.get("include_usage") is True

    tools = _translate_tools(body.get("tools"))
    if tools:
        out["tools"] = tools
    choice = _translate_tool_choice(body.get("tool_choice"), {t["name"] for t in tools},
                                    body.get("parallel_tool_calls"))
    if choice:
        out["tool_choice"] = choice

    fmt_instruction = _translate_response_format(body.get("response_format"), out)
    if fmt_instruction:
        system_parts.append(fmt_instruction)
    _translate_reasoning(body.get("reasoning_effort"), out)

    system = "\n\n".join(p for p in system_parts if p)
    if system:
        out["system"] = system

    ignored = [f for f in IGNORED_FIELDS if body.get(f) is not None]
    _check_ignored_types(body)
    if any(_part_has_cache_breakpoint(m) for m in body.get("messages") or []):
        ignored.append("prompt_cache_breakpoint")
    try:
        validate_message_request(out)
    except ChatRequestError:
        raise
    except InvalidRequest as exc:     # a translated body the Messages API would refuse
        _fail(None, str(exc))
    return ChatRequest(messages_body=out, model=model.strip(), stream=bool(stream),
                       include_usage=include_usage, ignored=ignored)


def _check_unsupported_values(body: dict) -> None:
    n = body.get("n")
    if n is not None:
        if not is_int(n) or n < 1:
            _fail("n", "Input should be a positive integer")
        if n > 1:
            _fail("n", "only n=1 is supported: the Claude Code CLI returns one choice per request; "
                  "send n requests instead", "unsupported_value")
    if body.get("logprobs"):
        _fail("logprobs", "log probabilities are not available through the Claude Code CLI",
              "unsupported_parameter")
    if body.get("top_logprobs") is not None:
        _fail("top_logprobs", "log probabilities are not available through the Claude Code CLI",
              "unsupported_parameter")
    if body.get("logit_bias"):
        _fail("logit_bias", "logit_bias is not available through the Claude Code CLI",
              "unsupported_parameter")
    modalities = body.get("modalities")
    if modalities is not None:
        if not isinstance(modalities, list) or not all(isinstance(m, str) for m in modalities):
            _fail("modalities", "Input should be a list of strings")
        if "audio" in modalities:
            _fail("modalities", "audio output is not available through the Claude Code CLI; "
                  "use modalities=[\"text\"]", "unsupported_value")
        bad = [m for m in modalities if m != "text"]
        if bad:
            _fail("modalities", f"unknown modality {bad[0]!r}; only \"text\" is supported")


def _check_ignored_types(body: dict) -> None:
    """Ignored fields still get OpenAI's type checks, so a typo is not silently accepted."""
    for key, low, high in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0),
                           ("frequency_penalty", -2.0, 2.0), ("presence_penalty", -2.0, 2.0)):
        value = body.get(key)
        if value is not None and (not is_number(value) or not low <= value <= high):
            _fail(key, f"Input should be a number between {low:g} and {high:g}")
    if body.get("seed") is not None and not is_int(body["seed"]):
        _fail("seed", "Input should be a valid integer")
    for key in ("user", "safety_identifier", "prompt_cache_key"):
        if body.get(key) is not None and not isinstance(body[key], str):
            _fail(key, "Input should be a valid string")
    if body.get("metadata") is not None and not isinstance(body["metadata"], dict):
        _fail("metadata", "Input should be an object")


def _max_tokens(body: dict) -> int:
    for key in ("max_completion_tokens", "max_tokens"):    # the newer name wins
        value = body.get(key)
        if value is None:
            continue
        if not is_int(value):
            _fail(key, "Input should be a valid integer")
        if value < 1:
            _fail(key, "Input should be greater than or equal to 1")
        return value
    return DEFAULT_MAX_TOKENS


def _text_of_parts(content, param: str, *, allow_refusal=False) -> str:
    """system/developer/tool/assistant content: a string or a list of text parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        _fail(param, "Input should be a string or a list of text parts")
    texts = []
    for i, part in enumerate(content):
        ptype = part.get("type") if isinstance(part, dict) else None
        if ptype == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif allow_refusal and ptype == "refusal" and isinstance(part.get("refusal"), str):
            texts.append(part["refusal"])
        else:
            _fail(f"{param}[{i}]", "Input should be a text part ({\"type\": \"text\", \"text\": ...})")
    return "\n\n".join(t for t in texts)


def _image_block(image_url, param: str) -> dict:
    if isinstance(image_url, str):      # some clients send the bare string
        image_url = {"url": image_url}
    if not isinstance(image_url, dict) or not isinstance(image_url.get("url"), str):
        _fail(f"{param}.image_url.url", "Field required: a data: URL or an http(s) URL")
    detail = image_url.get("detail")
    if detail is not None and detail not in ("auto", "low", "high", "original"):
        _fail(f"{param}.image_url.detail", "Input should be 'auto', 'low', 'high' or 'original'")
    url = image_url["url"].strip()
    if url.startswith("data:"):
        media, data = _decode_data_url(url, f"{param}.image_url.url")
        if media == "image/jpg":
            media = "image/jpeg"
        if media not in IMAGE_MEDIA_TYPES:
            _fail(f"{param}.image_url.url", f"image type {media!r} is not supported; use one of "
                  + ", ".join(sorted(IMAGE_MEDIA_TYPES)), "invalid_image_format")
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    if url.lower().startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    _fail(f"{param}.image_url.url", "Input should be a data: URL (data:image/png;base64,...) or an "
          "http(s) URL", "invalid_image_url")


def _decode_data_url(url: str, param: str) -> tuple[str, str]:
    """A data: URL's media type and its payload as clean base64."""
    header, comma, payload = url[5:].partition(",")        # after "data:"
    params = [p.strip().lower() for p in header.split(";")]
    if not comma or not params[0] or "/" not in params[0]:
        _fail(param, "malformed data: URL; expected data:<media type>;base64,<data>", "invalid_image_url")
    if "base64" not in params[1:]:
        _fail(param, "data: URLs must be base64 encoded (data:<media type>;base64,<data>)",
              "invalid_image_url")
    payload = "".join(payload.split())       # line-wrapped base64 is common; str.split is fast
    if not payload:
        _fail(param, "the data: URL is empty", "invalid_image_url")
    try:
        base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        _fail(param, "the data: URL's payload is not valid base64", "invalid_image_url")
    return params[0], payload


def _file_block(file, param: str) -> dict:
    if not isinstance(file, dict):
        _fail(f"{param}.file", "Field required: an object with `file_data` or `file_id`")
    filename = file.get("filename")
    if file.get("file_id") is not None:
        if not isinstance(file["file_id"], str) or not file["file_id"]:
            _fail(f"{param}.file.file_id", "Input should be a non-empty string")
        block = {"type": "document", "source": {"type": "file", "file_id": file["file_id"]}}
    elif isinstance(file.get("file_data"), str):
        data = file["file_data"]
        if data.startswith("data:"):
            media, data = _decode_data_url(data, f"{param}.file.file_data")
        else:
            media = "application/pdf"
        if media.startswith("image/"):
            return _image_block({"url": f"data:{media};base64,{data}"}, param)
        if media == "application/pdf":
            block = {"type": "document", "source": {"type": "base64", "media_type": media, "data": data}}
        elif media.startswith("text/") or media in ("application/json", "application/xml"):
            text = base64.b64decode(data).decode("utf-8", "replace")
            block = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": text}}
        else:
            _fail(f"{param}.file.file_data", f"file type {media!r} cannot be read by the model: "
                  "send a PDF, a text file or an image")
    else:
        _fail(f"{param}.file", "Field required: `file_data` (a data: URL) or `file_id`")
    if isinstance(filename, str) and filename:
        block["title"] = filename
    return block


def _user_blocks(content, param: str) -> list:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        _fail(param, "Input should be a string or a list of content parts")
    blocks = []
    for i, part in enumerate(content):
        ppath = f"{param}[{i}]"
        if not isinstance(part, dict):
            _fail(ppath, "Input should be a content part object")
        ptype = part.get("type")
        if ptype == "text":
            if not isinstance(part.get("text"), str):
                _fail(f"{ppath}.text", "Input should be a valid string")
            blocks.append({"type": "text", "text": part["text"]})
        elif ptype == "image_url":
            blocks.append(_image_block(part.get("image_url"), ppath))
        elif ptype == "file":
            blocks.append(_file_block(part.get("file"), ppath))
        elif ptype == "input_audio":
            _fail(f"{ppath}.type", "audio input is not available through the Claude Code CLI",
                  "unsupported_value")
        else:
            _fail(f"{ppath}.type", f"Invalid value: {ptype!r}. Supported values are: 'text', "
                  "'image_url' and 'file'.", "invalid_value")
    return blocks


def _tool_id(raw: str) -> str:
    """Anthropic tool ids allow [a-zA-Z0-9_-]; map other ids the same way on both sides."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", raw)


def _translate_messages(messages) -> tuple[list[str], list[dict]]:
    if not isinstance(messages, list):
        _fail("messages", "Input should be a valid list", "missing_required_parameter" if messages is None else None)
    if not messages:
        _fail("messages", "at least one message is required", "empty_array")
    system: list[str] = []
    turns: list[dict] = []
    pending_calls: dict[str, int] = {}      # tool_call id -> index of the assistant message
    pending_at: int | None = None

    def append(role: str, blocks: list):
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)   # the API merges consecutive turns: so do we
        else:
            turns.append({"role": role, "content": list(blocks)})

    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            _fail(param, "Input should be an object with `role` and `content`")
        role = message.get("role")
        if role != "tool" and pending_calls:
            _unanswered(pending_at, pending_calls)
        if role in ("system", "developer"):
            if "content" not in message:
                _fail(f"{param}.content", "Field required")
            system.append(_text_of_parts(message["content"], f"{param}.content"))
        elif role == "user":
            if "content" not in message:
                _fail(f"{param}.content", "Field required")
            append("user", _user_blocks(message["content"], f"{param}.content"))
        elif role == "assistant":
            blocks = []
            content = message.get("content")
            if content is not None:
                text = _text_of_parts(content, f"{param}.content", allow_refusal=True)
                if text:
                    blocks.append({"type": "text", "text": text})
            elif message.get("refusal"):
                blocks.append({"type": "text", "text": str(message["refusal"])})
            if message.get("audio") is not None:
                _fail(f"{param}.audio", "audio is not available through the Claude Code CLI",
                      "unsupported_parameter")
            if message.get("function_call") is not None:
                _fail(f"{param}.function_call", "the deprecated `function_call` is not supported; "
                      "use `tool_calls`", "unsupported_parameter")
            calls = message.get("tool_calls")
            if calls is not None:
                if not isinstance(calls, list):
                    _fail(f"{param}.tool_calls", "Input should be a valid list")
                for j, call in enumerate(calls):
                    block = _tool_call_block(call, f"{param}.tool_calls[{j}]")
                    pending_calls[block["id"]] = i
                    blocks.append(block)
                pending_at = i
            if not blocks:
                continue        # an empty assistant turn says nothing; the API would refuse it
            append("assistant", blocks)
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                _fail(f"{param}.tool_call_id", "Field required")
            if "content" not in message:
                _fail(f"{param}.content", "Field required")
            if _tool_id(call_id) not in pending_calls:
                _fail(f"{param}.role", "messages with role 'tool' must be a response to a preceding "
                      f"message with 'tool_calls' (no pending tool call has id {call_id!r})")
            pending_calls.pop(_tool_id(call_id))
            result = _text_of_parts(message["content"], f"{param}.content")
            append("user", [{"type": "tool_result", "tool_use_id": _tool_id(call_id), "content": result}])
        elif role == "function":
            _fail(f"{param}.role", "the deprecated 'function' role is not supported; answer tool "
                  "calls with role 'tool' and `tool_call_id`", "unsupported_value")
        else:
            _fail(f"{param}.role", f"Invalid value: {role!r}. Supported values are: 'system', "
                  "'developer', 'user', 'assistant' and 'tool'.", "invalid_value")
    if pending_calls:
        _unanswered(pending_at, pending_calls)
    for turn in turns:     # the Messages API wants tool results first in their user turn
        if turn["role"] == "user":
            turn["content"].sort(key=lambda b: b.get("type") != "tool_result")
    if not turns:
        _fail("messages", "at least one user message is required (system and developer messages "
              "alone give the model nothing to answer)")
    return system, turns


def _unanswered(at, pending: dict):
    _fail(f"messages[{at}].tool_calls", "An assistant message with 'tool_calls' must be followed "
          "by tool messages responding to each 'tool_call_id'. The following tool_call_ids did "
          f"not have response messages: {', '.join(pending)}")


def _tool_call_block(call, param: str) -> dict:
    if not isinstance(call, dict):
        _fail(param, "Input should be a tool call object")
    if call.get("type", "function") != "function":
        _fail(f"{param}.type", "only function tool calls are supported", "unsupported_value")
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id:
        _fail(f"{param}.id", "Field required")
    fn = call.get("function")
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        _fail(f"{param}.function.name", "Field required")
    arguments = fn.get("arguments", "")
    if not isinstance(arguments, str):
        _fail(f"{param}.function.arguments", "Input should be a string holding a JSON object")
    try:
        args = json.loads(arguments) if arguments.strip() else {}
    except ValueError as exc:
        _fail(f"{param}.function.arguments", f"not valid JSON: {exc}")
    if not isinstance(args, dict):
        _fail(f"{param}.function.arguments", "Input should be a JSON object")
    return {"type": "tool_use", "id": _tool_id(call_id), "name": fn["name"], "input": args}


def _translate_tools(tools) -> list[dict]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        _fail("tools", "Input should be a valid list")
    out, names = [], set()
    for i, tool in enumerate(tools):
        param = f"tools[{i}]"
        if not isinstance(tool, dict):
            _fail(param, "Input should be a tool object")
        if tool.get("type") != "function":
            _fail(f"{param}.type", f"Invalid value: {tool.get('type')!r}. Only 'function' tools "
                  "are supported through the Claude Code CLI.", "invalid_value")
        fn = tool.get("function")
        if not isinstance(fn, dict):
            _fail(f"{param}.function", "Field required")
        name = fn.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            _fail(f"{param}.function.name", "Input should match pattern '^[a-zA-Z0-9_-]{1,64}$'")
        if name in names:
            _fail(f"{param}.function.name", f"tool names must be unique; {name!r} appears twice")
        names.add(name)
        params = fn.get("parameters")
        if params is None:
            params = {"type": "object", "properties": {}}
        if not isinstance(params, dict):
            _fail(f"{param}.function.parameters", "Input should be a JSON schema object")
        if params.get("type", "object") != "object":
            _fail(f"{param}.function.parameters.type", "function parameters must be a JSON schema of "
                  "type 'object'")
        params = {**params, "type": "object"}
        entry = {"name": name, "input_schema": params}
        description = fn.get("description")
        if description is not None:
            if not isinstance(description, str):
                _fail(f"{param}.function.description", "Input should be a valid string")
            entry["description"] = description
        out.append(entry)
    return out


def _translate_tool_choice(choice, names: set[str], parallel) -> dict | None:
    if parallel is not None and not isinstance(parallel, bool):
        _fail("parallel_tool_calls", "Input should be a valid boolean")
    out: dict | None = None
    if choice is None:
        out = {"type": "auto"} if names and parallel is False else None
    elif choice == "auto":
        out = {"type": "auto"}
    elif choice == "none":
        out = {"type": "none"}
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name") if isinstance(choice.get("function"), dict) else None
        if not isinstance(name, str) or not name:
            _fail("tool_choice.function.name", "Field required")
        out = {"type": "tool", "name": name}
    elif isinstance(choice, dict) and choice.get("type") in ("allowed_tools", "custom"):
        _fail("tool_choice.type", f"tool_choice type {choice['type']!r} is not supported; use "
              "'auto', 'none', 'required' or {\"type\": \"function\", ...}", "unsupported_value")
    else:
        _fail("tool_choice", "Input should be 'none', 'auto', 'required' or "
              "{\"type\": \"function\", \"function\": {\"name\": ...}}", "invalid_value")
    if out and out["type"] in ("any", "tool") and not names:
        _fail("tool_choice", "tool_choice is only allowed when `tools` are specified")
    if out and out["type"] == "tool" and out["name"] not in names:
        _fail("tool_choice.function.name", f"{out['name']!r} is not one of the functions in `tools`")
    if out and parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def _translate_response_format(fmt, out: dict) -> str:
    """Sets output_config.format for json_schema; returns a system instruction for json_object."""
    if fmt is None:
        return ""
    if not isinstance(fmt, dict):
        _fail("response_format", "Input should be an object with a `type`")
    kind = fmt.get("type")
    if kind == "text":
        return ""
    if kind == "json_object":
        return JSON_OBJECT_INSTRUCTION
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict):
            _fail("response_format.json_schema", "Field required")
        if not isinstance(spec.get("name"), str) or not spec["name"]:
            _fail("response_format.json_schema.name", "Field required")
        schema = spec.get("schema")
        if schema is None:
            schema = {"type": "object"}
        if not isinstance(schema, dict):
            _fail("response_format.json_schema.schema", "Input should be a JSON schema object")
        out.setdefault("output_config", {})["format"] = {"type": "json_schema", "schema": schema}
        return ""
    _fail("response_format.type", f"Invalid value: {kind!r}. Supported values are: 'text', "
          "'json_object' and 'json_schema'.", "invalid_value")


def _translate_reasoning(effort, out: dict) -> None:
    if effort is None:
        return
    if effort == "none":
        out["thinking"] = {"type": "disabled"}
        return
    if effort not in _EFFORT:
        _fail("reasoning_effort", "Invalid value: Supported values are: 'none', 'minimal', 'low', "
              "'medium', 'high', 'xhigh' and 'max'.", "invalid_value")
    out["thinking"] = {"type": "adaptive"}
    out.setdefault("output_config", {})["effort"] = _EFFORT[effort]


def _part_has_cache_breakpoint(message) -> bool:
    content = message.get("content") if isinstance(message, dict) else None
    return isinstance(content, list) and any(
        isinstance(p, dict) and p.get("prompt_cache_breakpoint") is not None for p in content)
