"""OpenAI Chat Completions over the same Messages machinery: pure translations both ways.

`translate_chat_request(body)` turns a `POST /v1/chat/completions` body into a validated
Anthropic Messages body (plus what the response side needs to know); the result runs through
the one `ClaudeBridge.stream` like any `/v1/messages` request. `ChatChunkTranslator` turns the
bridge's Anthropic stream events into `chat.completion.chunk` objects, and
`completion_from_message` turns a whole Message into a `chat.completion`. `chat_chunks` and
`chat_completion` compose them with a bridge passed in (duck-typed: this module imports no
bridge), so the HTTP handler and the tests share one code path.

Errors keep being `AnthropicError`s; `openai_error(exc)` gives the status and the
`{"error": {"message", "type", "param", "code"}}` body OpenAI clients parse.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import AsyncIterator

from .errors import AnthropicError, InvalidRequest
from .models import DEFAULT_MAX_TOKENS, resolve_model
from .sse import sse_json
from .validation import IMAGE_MEDIA_TYPES, validate_message_request
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

FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
                  "max_tokens": "length", "model_context_window_exceeded": "length",
                  "tool_use": "tool_calls", "refusal": "content_filter"}

JSON_OBJECT_INSTRUCTION = ("Respond with one valid JSON object and nothing else: no Markdown code "
                           "fences, no text before or after it.")

_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class ChatRequestError(InvalidRequest):
    """A 400 that names the OpenAI request field at fault (OpenAI's `param`)."""

    def __init__(self, param: str | None, message: str, *, code: str | None = None,
                 status: int = 400):
        super().__init__(message if param is None else f"{param}: {message}", status=status,
                         should_retry=False)
        self.param = param
        self.code = code


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
        if not _is_int(n) or n < 1:
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
        if value is not None and (not _is_number(value) or not low <= value <= high):
            _fail(key, f"Input should be a number between {low:g} and {high:g}")
    if body.get("seed") is not None and not _is_int(body["seed"]):
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
        if not _is_int(value):
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


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# -- response --------------------------------------------------------------------------------

def completion_id(message_id: str | None) -> str:
    """A chat completion id derived from the Message id, so logs can match the two."""
    if message_id and message_id.startswith("msg_"):
        return "chatcmpl-" + message_id[4:]
    return "chatcmpl-" + (message_id or uuid.uuid4().hex)


def finish_reason(stop_reason: str | None) -> str | None:
    if stop_reason is None:
        return None
    return FINISH_REASONS.get(stop_reason, "stop")


def usage_from_anthropic(usage: dict | None) -> dict:
    """OpenAI's usage: every input token the model read counts as a prompt token."""
    usage = usage or {}
    cached = int(usage.get("cache_read_input_tokens") or 0)
    prompt = (int(usage.get("input_tokens") or 0) + cached
              + int(usage.get("cache_creation_input_tokens") or 0))
    completion = int(usage.get("output_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0}}


def completion_from_message(message: dict, *, created: int | None = None) -> dict:
    """A whole Anthropic Message as a `chat.completion`."""
    texts, reasoning, calls = [], [], []
    for block in message.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "thinking":
            reasoning.append(block.get("thinking", ""))
        elif kind == "tool_use":
            calls.append({"id": block["id"], "type": "function",
                          "function": {"name": block["name"],
                                       "arguments": json.dumps(block.get("input") or {},
                                                               ensure_ascii=False)}})
    reply: dict = {"role": "assistant", "content": "".join(texts) if texts or not calls else None,
                   "refusal": None, "annotations": []}
    if calls:
        reply["tool_calls"] = calls
    if reasoning:
        reply["reasoning_content"] = "".join(reasoning)   # the de facto field (vLLM, DeepSeek)
    return {
        "id": completion_id(message.get("id")),
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": message.get("model") or "",
        "choices": [{"index": 0, "message": reply, "logprobs": None,
                     "finish_reason": finish_reason(message.get("stop_reason")) or "stop"}],
        "usage": usage_from_anthropic(message.get("usage")),
        "service_tier": "default",
        "system_fingerprint": None,
    }


class ChatChunkTranslator:
    """Anthropic stream events in, `chat.completion.chunk` objects out (one choice, index 0).

    The bridge's last internal `claude_nb.final_usage` event becomes the usage chunk when the
    client asked for `stream_options.include_usage`.
    """

    def __init__(self, *, created: int | None = None, include_usage: bool = False, model: str = ""):
        self.created = created if created is not None else int(time.time())
        self.include_usage = include_usage
        self.model = model
        self.id = completion_id(None)
        self.started = False
        self.finish: str | None = None
        self._calls: dict[int, dict] = {}     # block index -> {"index", "arguments_sent"}
        self._usage: dict = {}

    def _chunk(self, delta: dict | None, finish: str | None = None, *, usage=None,
               choices: bool = True) -> dict:
        chunk = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                 "model": self.model, "service_tier": "default", "system_fingerprint": None,
                 "choices": ([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
                             if choices else [])}
        if self.include_usage:
            chunk["usage"] = usage
        return chunk

    def feed(self, event: dict) -> list[dict]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.id = completion_id(message.get("id"))
            self.model = message.get("model") or self.model
            self._usage = dict(message.get("usage") or {})
            self.started = True
            return [self._chunk({"role": "assistant", "content": "", "refusal": None})]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = len(self._calls)
                self._calls[event.get("index", 0)] = {"index": index, "sent": False}
                return [self._chunk({"tool_calls": [{
                    "index": index, "id": block.get("id"), "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""}}]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta" and delta.get("text"):
                return [self._chunk({"content": delta["text"]})]
            if dtype == "thinking_delta" and delta.get("thinking"):
                return [self._chunk({"reasoning_content": delta["thinking"]})]
            if dtype == "input_json_delta" and delta.get("partial_json"):
                call = self._calls.get(event.get("index", 0))
                if call is None:
                    return []
                call["sent"] = True
                return [self._chunk({"tool_calls": [{"index": call["index"],
                                                     "function": {"arguments": delta["partial_json"]}}]})]
            return []
        if kind == "content_block_stop":
            call = self._calls.get(event.get("index", 0))
            if call is not None and not call["sent"]:
                call["sent"] = True    # no arguments streamed: still hand the client valid JSON
                return [self._chunk({"tool_calls": [{"index": call["index"],
                                                     "function": {"arguments": "{}"}}]})]
            return []
        if kind == "message_delta":
            self._usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            reason = (event.get("delta") or {}).get("stop_reason")
            if reason is not None and self.finish is None:
                self.finish = finish_reason(reason)
                return [self._chunk({}, self.finish)]
            return []
        if kind == "claude_nb.final_usage":
            self._usage = dict(event.get("usage") or self._usage)
            if self.include_usage:
                return [self._chunk(None, usage=usage_from_anthropic(self._usage), choices=False)]
            return []
        return []      # message_stop, ping


# -- errors ----------------------------------------------------------------------------------

# Anthropic status -> (status, OpenAI error type, default code)
_OPENAI_ERRORS = {
    400: (400, "invalid_request_error", None),
    401: (401, "authentication_error", "invalid_api_key"),
    402: (402, "insufficient_quota", "insufficient_quota"),
    403: (403, "permission_error", None),
    404: (404, "invalid_request_error", "not_found"),
    405: (405, "invalid_request_error", None),
    409: (409, "invalid_request_error", "conflict"),
    413: (413, "invalid_request_error", "request_too_large"),
    429: (429, "rate_limit_error", "rate_limit_exceeded"),
    500: (500, "server_error", None),
    503: (503, "server_error", "service_unavailable"),
    504: (504, "server_error", "timeout"),
    529: (503, "server_error", "overloaded"),       # OpenAI clients know 503, not 529
}


def openai_error(exc: AnthropicError) -> tuple[int, dict]:
    """The HTTP status and OpenAI-shaped body for an error on the OpenAI route."""
    status, kind, code = _OPENAI_ERRORS.get(
        exc.status, (exc.status, "invalid_request_error" if exc.status < 500 else "server_error", None))
    code = getattr(exc, "code", None) or exc.error_code or code
    return status, {"error": {"message": exc.message, "type": kind,
                              "param": getattr(exc, "param", None), "code": code}}


# -- one code path over the bridge -----------------------------------------------------------

async def chat_chunks(bridge, chat: ChatRequest, **stream_kwargs) -> AsyncIterator[dict]:
    """The chunks of one streamed chat completion, run through `bridge.stream`."""
    translator = ChatChunkTranslator(created=chat.created, include_usage=chat.include_usage,
                                     model=chat.model)
    events = bridge.stream(chat.messages_body, **stream_kwargs)
    try:
        async for event in events:
            for chunk in translator.feed(event):
                yield chunk
    finally:
        await events.aclose()      # a consumer that stops early ends the CLI run now


async def chat_completion(bridge, chat: ChatRequest, **create_kwargs) -> dict:
    """One whole chat completion, run through `bridge.create`."""
    message = await bridge.create(chat.messages_body, **create_kwargs)
    return completion_from_message(message, created=chat.created)


def encode_chunk(chunk: dict) -> bytes:
    """One data-only SSE line, the way OpenAI streams (no `event:` names)."""
    return b"data: " + sse_json(chunk).encode("utf-8") + b"\n\n"


DONE = b"data: [DONE]\n\n"
