"""The API describes itself: an OpenAPI 3.1 document of every route the extension serves.

`build_document(server_url=..., version=...)` returns the document `GET {base_url}v1/openapi.json`
answers and the docs page at `{base_url}claude_nb/docs` renders. Pure: no tornado, no I/O.

It is built from the definitions the request checks use (`validation.MESSAGE_FIELDS`,
`COUNT_FIELDS`, `IGNORED_FIELDS`, `INPUT_BLOCK_TYPES`, the enums; `openai.request.KNOWN_FIELDS`,
`IGNORED_FIELDS`, `UNSUPPORTED_FIELDS`, `MAX_STOP_SEQUENCES`; `openai.response.FINISH_REASONS`;
`errors.ERROR_TYPES`; the model catalogue), so a field the server starts to accept appears here
by itself. What this module adds is prose and nested schemas: a validated field with no entry in
the tables below still appears, marked `x-claude-nb-support: undocumented`, and the tests fail on
that marker.

Every request field carries `x-claude-nb-support`: `honoured` (reaches the model whole),
`emulated` (rebuilt around what the CLI can do), `ignored` (accepted, no effect, named in the
`claude-nb-ignored` response header) or `refused` (a 400 saying why), as docs/compatibility.md
tells; enum values whose support differs carry `x-claude-nb-support-by-value`.
"""
from __future__ import annotations

import copy
import json
import shlex

from .openai import request as openai_request
from .openai import response as openai_response
from .errors import ERROR_TYPES
from .models import list_models
from .paging import LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT
from .threads import MESSAGE_THREADS_BETA
from .validation import (COUNT_FIELDS, EFFORTS, IGNORED_FIELDS, IGNORED_TOOL_FIELDS,
                         IMAGE_MEDIA_TYPES, INPUT_BLOCK_TYPES, MAX_MESSAGE_BYTES, MAX_MESSAGES,
                         MESSAGE_FIELDS, MIN_THINKING_BUDGET, ROLES, SESSION_HEADER,
                         THINKING_TYPES, TOOL_CHOICE_TYPES, TOOL_NAME_PATTERN)

OPENAPI_VERSION = "3.1.0"
SUPPORT = "x-claude-nb-support"
SUPPORT_BY_VALUE = "x-claude-nb-support-by-value"
REFUSED_LIST = "x-claude-nb-refused"
CODE_SAMPLES = "x-codeSamples"          # the key Redoc and other renderers read
EXAMPLE_BODY = "x-claude-nb-example"    # the request the docs page's "try it" starts from

HONOURED, EMULATED, IGNORED, REFUSED = "honoured", "emulated", "ignored", "refused"
UNDOCUMENTED = "undocumented"
SUPPORT_LEVELS = (HONOURED, EMULATED, IGNORED, REFUSED)

COMPATIBILITY_DOC = "docs/compatibility.md"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _field(schema: dict, support: str | None, description: str) -> dict:
    out = dict(schema)
    out["description"] = description
    if support:
        out[SUPPORT] = support
    return out


def _obj(properties: dict, required=(), *, description: str | None = None, extra=None,
         support: str | None = None) -> dict:
    out: dict = {"type": "object", "properties": properties}
    if required:
        out["required"] = list(required)
    if extra is not None:
        out["additionalProperties"] = extra
    if description:
        out["description"] = description
    if support:
        out[SUPPORT] = support
    return out


STRING = {"type": "string"}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
NUMBER = {"type": "number"}
ANY_OBJECT = {"type": "object"}
NULLABLE_STRING = {"type": ["string", "null"]}
TIMESTAMP = {"type": "string", "format": "date-time"}
NULLABLE_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}
CACHE_CONTROL = _obj({"type": {"const": "ephemeral"}, "ttl": {"enum": ["5m", "1h"]}}, ["type"],
                     description="A cache breakpoint; in message blocks it reaches upstream as sent.")


# -- Messages: request fields -------------------------------------------------------------------
# name -> (schema, support, description). `support` None: derived (IGNORED_FIELDS -> ignored).
MESSAGE_FIELD_DOCS: dict[str, tuple[dict, str | None, str]] = {
    "model": ({"type": "string", "minLength": 1}, HONOURED,
              "A model id or an alias (`opus`, `sonnet`, `haiku`, `fable`); `GET /v1/models` "
              "lists them. Passed to `claude --model`; the upstream gets the full id."),
    "max_tokens": ({"type": "integer", "minimum": 1}, HONOURED,
                   "Passed as CLAUDE_CODE_MAX_OUTPUT_TOKENS; the upstream `max_tokens` equals it."),
    "messages": ({"type": "array", "minItems": 1, "maxItems": MAX_MESSAGES,
                  "items": _ref("MessageParam")}, HONOURED,
                 "Every turn reaches the upstream as its own user/assistant message. The last "
                 "turn must be the user's (assistant prefill is refused)."),
    "system": ({"anyOf": [STRING, {"type": "array", "items": _ref("TextBlockParam")}]}, HONOURED,
               "Arrives after the CLI's own two system blocks; several text blocks arrive joined."),
    "stream": (BOOL, HONOURED, "Server-sent events (`text/event-stream`) when true."),
    "stop_sequences": ({"type": "array", "items": {"type": "string", "minLength": 1}}, EMULATED,
                       "Watched for in the streamed text: cut before the first match, "
                       "`stop_reason: stop_sequence`, and the CLI process is ended."),
    "tools": ({"type": "array", "items": _ref("ToolParam")}, HONOURED,
              "Custom tools, served to the CLI by a stdio MCP server that never runs anything; "
              "the client gets `tool_use` with its own names. Server tools are refused (400)."),
    "tool_choice": (_ref("ToolChoice"), EMULATED,
                    "`auto` is the CLI's default; `any`, `tool` and `none` are asked for in the "
                    "system prompt (`none` and single-call are enforced on the answer)."),
    "thinking": (_ref("ThinkingConfig"), HONOURED,
                 "Honoured as far as each model allows (see docs/compatibility.md's per-model table)."),
    "output_config": (_ref("OutputConfig"), HONOURED,
                      "`effort` is honoured; `format` (JSON schema) is emulated."),
    "output_format": (_ref("JsonSchemaFormat"), EMULATED,
                      "The beta spelling of `output_config.format`: the CLI's checked structured "
                      "output, returned as the text block."),
    "temperature": ({"type": "number", "minimum": 0, "maximum": 1}, None,
                    "The CLI cannot set it."),
    "top_p": ({"type": "number", "minimum": 0, "maximum": 1}, None, "The CLI cannot set it."),
    "top_k": ({"type": "integer", "minimum": 0}, None, "The CLI cannot set it."),
    "metadata": (_obj({"user_id": NULLABLE_STRING}), None,
                 "The CLI sends its own `metadata.user_id`."),
    "cache_control": (CACHE_CONTROL, None,
                      "Top level: the CLI places its own cache breakpoints."),
    "service_tier": (STRING, None, "No CLI counterpart."),
    "speed": (STRING, None, "No CLI counterpart."),
    "inference_geo": (STRING, None, "No CLI counterpart."),
    "container": ({}, None, "No CLI counterpart."),
    "diagnostics": ({}, None, "No CLI counterpart."),
    "context_management": (ANY_OBJECT, None, "No CLI counterpart."),
    "mcp_servers": ({"type": "array", "items": ANY_OBJECT}, None, "No CLI counterpart."),
    "thread": (_ref("ThreadParam"), HONOURED,
               f"Message threads (beta `{MESSAGE_THREADS_BETA}`): `create` holds the conversation "
               "under the response's `id`; `continue` from `previous_message_id` sends only the new "
               "turn and runs with the whole history. A 400 in batch requests and count_tokens."),
}
# `thread` is taken off the body by the handler (protocol/threads.parse_thread_param) before
# the Messages checks see it, so it is not in validation.MESSAGE_FIELDS.
THREAD_FIELD = "thread"
MESSAGE_REQUIRED = ("model", "messages", "max_tokens")
COUNT_REQUIRED = ("model", "messages")

# Things the Messages API takes that this server answers with a 400 saying why.
MESSAGE_REFUSALS = {
    "server_tools": "Server tools (`web_search`, `code_execution`, ...): not available through "
                    "the CLI; define a custom tool instead.",
    "prefill": "A last message from the assistant (prefill): the CLI only answers a user turn.",
}


def _field_support(name: str, declared: str | None, ignored: tuple) -> str:
    if name in ignored:
        return IGNORED
    return declared or UNDOCUMENTED


def _request_schema(fields, docs: dict, required, ignored: tuple, *, description: str) -> dict:
    def order(name):        # required first, then what has an effect, then the rest
        support = _field_support(name, docs.get(name, ({}, None, ""))[1], ignored)
        rank = (SUPPORT_LEVELS.index(support) if support in SUPPORT_LEVELS else -1)
        return (name not in required, rank, name)
    properties = {}
    for name in sorted(fields, key=order):
        schema, support, text = docs.get(name, ({}, None, "Not described yet."))
        properties[name] = _field(schema, _field_support(name, support, ignored), text)
    return _obj(properties, [r for r in required if r in fields], extra=False,
                description=description)


# -- Messages: content blocks -------------------------------------------------------------------
def _block(kind: str, properties: dict, required=(), *, support: str, description: str) -> dict:
    props = {"type": {"const": kind}, **properties}
    return _obj(props, ["type", *required], support=support, description=description)


CITATIONS = _obj({"enabled": BOOL})
BLOCK_DOCS: dict[str, dict] = {
    "text": _block("text", {"text": STRING, "cache_control": CACHE_CONTROL,
                            "citations": {"type": ["array", "null"], "items": ANY_OBJECT}},
                   ["text"], support=HONOURED, description="As sent, `cache_control` included."),
    "image": _block("image", {"source": {"anyOf": [_ref("Base64ImageSource"), _ref("URLSource"),
                                                   _ref("FileSource")]},
                              "cache_control": CACHE_CONTROL},
                    ["source"], support=HONOURED,
                    description="Base64 and URL sources are honoured; a `file` source is emulated "
                                "(resolved from this server's Files store)."),
    "document": _block("document", {
        "source": {"anyOf": [_ref("Base64PDFSource"), _ref("PlainTextSource"),
                             _ref("ContentBlockSource"), _ref("URLSource"), _ref("FileSource")]},
        "title": NULLABLE_STRING, "context": NULLABLE_STRING, "citations": CITATIONS,
        "cache_control": CACHE_CONTROL},
        ["source"], support=HONOURED,
        description="As sent, with `title`, `context` and `citations`; a `file` source is emulated."),
    "tool_use": _block("tool_use", {"id": STRING, "name": STRING, "input": ANY_OBJECT,
                                    "cache_control": CACHE_CONTROL},
                       ["id", "name", "input"], support=HONOURED,
                       description="Earlier assistant turns only; renamed `mcp__client__<name>` "
                                   "upstream so it matches the advertised tool."),
    "tool_result": _block("tool_result", {
        "tool_use_id": STRING,
        "content": {"anyOf": [STRING, {"type": "array", "items": _ref("ContentBlockParam")}]},
        "is_error": BOOL, "cache_control": CACHE_CONTROL},
        ["tool_use_id"], support=HONOURED,
        description="User turns only; as sent, nested text/images and `is_error` included."),
    "thinking": _block("thinking", {"thinking": STRING, "signature": STRING},
                       ["thinking", "signature"], support=HONOURED,
                       description="Earlier assistant turns; as sent, signatures included."),
    "redacted_thinking": _block("redacted_thinking", {"data": {"type": "string", "minLength": 1}},
                                ["data"], support=HONOURED,
                                description="Earlier assistant turns; as sent."),
    "search_result": _block("search_result", {
        "source": STRING, "title": STRING,
        "content": {"type": "array", "items": _ref("TextBlockParam")}, "citations": CITATIONS,
        "cache_control": CACHE_CONTROL}, support=HONOURED, description="As sent."),
    "server_tool_use": _block("server_tool_use", {"id": STRING, "name": STRING,
                                                  "input": ANY_OBJECT},
                              support=HONOURED, description="Earlier turns; passed on as sent."),
    "web_search_tool_result": _block("web_search_tool_result", {"tool_use_id": STRING,
                                                                "content": {}},
                                     support=HONOURED, description="Earlier turns; passed on as sent."),
    "container_upload": _block("container_upload", {"file_id": STRING}, support=HONOURED,
                               description="Passed on as sent."),
}


def _block_name(kind: str) -> str:
    return "".join(part.title() for part in kind.split("_")) + "BlockParam"


def _source_schemas() -> dict:
    return {
        "Base64ImageSource": _obj({"type": {"const": "base64"},
                                   "media_type": {"enum": sorted(IMAGE_MEDIA_TYPES)},
                                   "data": {"type": "string", "minLength": 1,
                                            "contentEncoding": "base64"}},
                                  ["type", "media_type", "data"], support=HONOURED,
                                  description="Byte for byte in earlier turns; in the last user "
                                              "turn the CLI scales images over 2000x2000 px down."),
        "Base64PDFSource": _obj({"type": {"const": "base64"},
                                 "media_type": {"const": "application/pdf"},
                                 "data": {"type": "string", "minLength": 1,
                                          "contentEncoding": "base64"}},
                                ["type", "media_type", "data"], support=HONOURED,
                                description="A PDF, as sent."),
        "PlainTextSource": _obj({"type": {"const": "text"}, "media_type": {"const": "text/plain"},
                                 "data": STRING}, ["type", "data"], support=HONOURED,
                                description="A text document, as sent."),
        "ContentBlockSource": _obj({"type": {"const": "content"},
                                    "content": {"anyOf": [STRING, {"type": "array", "items": {
                                        "anyOf": [_ref("TextBlockParam"), _ref("ImageBlockParam")]}}]}},
                                   ["type", "content"], support=HONOURED,
                                   description="A document made of text and image blocks, as sent."),
        "URLSource": _obj({"type": {"const": "url"}, "url": {"type": "string", "minLength": 1}},
                          ["type", "url"], support=HONOURED,
                          description="Passed on; the API fetches it."),
        "FileSource": _obj({"type": {"const": "file"}, "file_id": {"type": "string", "minLength": 1}},
                           ["type", "file_id"], support=EMULATED,
                           description="Resolved from this server's Files store (`POST /v1/files`) "
                                       "and sent as base64 (PDF, images) or a text source."),
    }


def _message_schemas() -> dict:
    blocks = {}
    for kind in sorted(INPUT_BLOCK_TYPES):
        blocks[_block_name(kind)] = copy.deepcopy(BLOCK_DOCS.get(kind)) or _block(
            kind, {}, support=UNDOCUMENTED, description="Not described yet.")
    role_support = {role: EMULATED if role == "system" else HONOURED for role in ROLES}
    choice_support = {kind: HONOURED if kind == "auto" else EMULATED for kind in TOOL_CHOICE_TYPES}
    thinking_support = dict.fromkeys(THINKING_TYPES, HONOURED)
    ignored_tool = {name: _field({}, IGNORED, "MCP tools carry only name, description and schema; "
                                 f"named as `tools.{name}` in `claude-nb-ignored`.")
                    for name in IGNORED_TOOL_FIELDS}
    message_param = _obj({
        "role": {"enum": list(ROLES), SUPPORT_BY_VALUE: role_support,
                 "description": "`system` turns are emulated: joined to the system prompt, after `system`."},
        "content": {"anyOf": [STRING, {"type": "array", "items": _ref("ContentBlockParam")}]},
    }, ["role", "content"], support=HONOURED, description="One turn of the conversation.")
    return {
        **blocks,
        "ContentBlockParam": {"anyOf": [_ref(name) for name in sorted(blocks)],
                              "description": "A content block of a request turn, by `type`."},
        **_source_schemas(),
        "MessageParam": message_param,
        "ToolParam": _obj({
            "type": {"enum": ["custom"], SUPPORT_BY_VALUE: {"custom": HONOURED},
                     "description": "Only custom tools; a server tool's type is a 400."},
            "name": {"type": "string", "pattern": TOOL_NAME_PATTERN},
            "description": STRING,
            "input_schema": _obj({"type": {"const": "object"}}, ["type"],
                                 description="A JSON schema object; unchanged upstream."),
            **ignored_tool,
        }, ["name", "input_schema"], support=HONOURED,
            description="A client tool. It is never run server-side: the answer carries `tool_use` "
                        "and the client sends the `tool_result` in its next request."),
        "ToolChoice": _obj({
            "type": {"enum": list(TOOL_CHOICE_TYPES), SUPPORT_BY_VALUE: choice_support},
            "name": _field(STRING, HONOURED, "With `type: tool`: one of the names in `tools`."),
            "disable_parallel_tool_use": _field(BOOL, EMULATED,
                                                "Asked for in the system prompt; only the first tool "
                                                "call of an answer is returned."),
        }, ["type"], support=EMULATED, description="How the model should use the tools."),
        "ThinkingConfig": _obj({
            "type": {"enum": list(THINKING_TYPES), SUPPORT_BY_VALUE: thinking_support},
            "budget_tokens": _field({"type": "integer", "minimum": MIN_THINKING_BUDGET}, HONOURED,
                                    "With `type: enabled`; below `max_tokens`. Models the CLI runs "
                                    "with adaptive thinking get `adaptive`."),
            "display": _field({"enum": ["summarized", "omitted"]}, HONOURED,
                              "Reaches upstream as `thinking.display`."),
        }, ["type"], support=HONOURED, description="Extended thinking, as far as each model allows."),
        "OutputConfig": _obj({
            "effort": _field({"enum": sorted(EFFORTS)}, HONOURED,
                             "Sent as CLAUDE_CODE_EFFORT_LEVEL; dropped by the CLI for models "
                             "without effort."),
            "format": _field(_ref("JsonSchemaFormat"), EMULATED,
                             "Structured output: the CLI checks the JSON against the schema; a "
                             "failed check is a 500 `api_error` (retryable)."),
        }, support=HONOURED, description="Output settings."),
        "ThreadParam": {"oneOf": [
            _obj({"type": {"const": "create"}}, ["type"], extra=False),
            _obj({"type": {"const": "continue"}, "previous_message_id": {"type": "string", "minLength": 1}},
                 ["type", "previous_message_id"], extra=False)],
            "description": "Start a thread, or continue one from the `id` of its latest response. "
                           "A continue sends no `system` or `tools` (the thread keeps them)."},
        "JsonSchemaFormat": _obj({"type": {"const": "json_schema"}, "schema": ANY_OBJECT},
                                 ["type", "schema"], support=EMULATED,
                                 description="Returned as one text block holding the JSON."),
        "MessageRequest": {
            **_request_schema(MESSAGE_FIELDS | {THREAD_FIELD}, MESSAGE_FIELD_DOCS, MESSAGE_REQUIRED, IGNORED_FIELDS,
                              description="POST /v1/messages. Ignored fields are named in the "
                                          "`claude-nb-ignored` response header."),
            REFUSED_LIST: MESSAGE_REFUSALS,
        },
        "CountTokensRequest": _request_schema(COUNT_FIELDS, MESSAGE_FIELD_DOCS, COUNT_REQUIRED,
                                              IGNORED_FIELDS,
                                              description="POST /v1/messages/count_tokens."),
    }


# -- Messages: responses ------------------------------------------------------------------------
STOP_REASONS = sorted(openai_response.FINISH_REASONS)


def _response_schemas() -> dict:
    usage = _obj({"input_tokens": INT, "output_tokens": INT,
                  "cache_creation_input_tokens": {"type": ["integer", "null"]},
                  "cache_read_input_tokens": {"type": ["integer", "null"]},
                  "cache_creation": {"type": ["object", "null"]},
                  "server_tool_use": {"type": ["object", "null"]},
                  "service_tier": NULLABLE_STRING},
                 ["input_tokens", "output_tokens"], description="From the CLI's `result` line.")
    content = {"anyOf": [
        _obj({"type": {"const": "text"}, "text": STRING,
              "citations": {"type": ["array", "null"], "items": ANY_OBJECT}}, ["type", "text"]),
        _obj({"type": {"const": "thinking"}, "thinking": STRING, "signature": STRING},
             ["type", "thinking"]),
        _obj({"type": {"const": "redacted_thinking"}, "data": STRING}, ["type", "data"]),
        _obj({"type": {"const": "tool_use"}, "id": STRING, "name": STRING, "input": ANY_OBJECT},
             ["type", "id", "name", "input"]),
    ]}
    events = ("message_start", "content_block_start", "content_block_delta", "content_block_stop",
              "message_delta", "message_stop", "ping", "error")
    return {
        "Usage": usage,
        "ContentBlock": content,
        "Message": _obj({
            "id": STRING, "type": {"const": "message"}, "role": {"const": "assistant"},
            "content": {"type": "array", "items": _ref("ContentBlock")},
            "model": STRING,
            "stop_reason": {"type": ["string", "null"], "enum": [*STOP_REASONS, None]},
            "stop_sequence": NULLABLE_STRING,
            "usage": _ref("Usage"),
        }, ["id", "type", "role", "content", "model", "stop_reason", "usage"],
            description="The answer. `stop_sequence` is emulated; the others come from upstream."),
        "MessageStreamEvent": _obj(
            {"type": {"enum": list(events)}}, ["type"], extra=True,
            description="One `data:` payload of the stream; the SSE `event:` name repeats `type`. "
                        "Events come in the API's order: message_start, then per block "
                        "content_block_start / _delta... / _stop, then message_delta and "
                        "message_stop; `ping` after 10 s of silence; `error` if the run fails "
                        "after the 200 was sent."),
        "CountTokensResponse": _obj({"input_tokens": INT}, ["input_tokens"]),
    }


# -- batches, files, models, reports, the rest ----------------------------------------------------
BATCH_CUSTOM_ID_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"     # batches.CUSTOM_ID (checked by a test)


def _list_of(item: str, *, next_page=False) -> dict:
    props = {"data": {"type": "array", "items": _ref(item)}, "has_more": BOOL,
             "first_id": NULLABLE_STRING, "last_id": NULLABLE_STRING}
    if next_page:
        props["next_page"] = NULLABLE_STRING
    return _obj(props, ["data", "has_more", "first_id", "last_id"])


def _report(item: dict) -> dict:
    bucket = _obj({"starting_at": TIMESTAMP, "ending_at": TIMESTAMP,
                   "results": {"type": "array", "items": item}},
                  ["starting_at", "ending_at", "results"])
    return _obj({"data": {"type": "array", "items": bucket}, "has_more": BOOL,
                 "next_page": NULLABLE_STRING}, ["data", "has_more", "next_page"])


def _schema_of(value) -> dict:
    """A JSON schema for a value the server builds (the model catalogue's entries), so the
    described shape is the served one."""
    if value is None:
        return {"type": "null"}
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return NUMBER
    if isinstance(value, str):
        return STRING
    if isinstance(value, list):
        return {"type": "array"}
    return _obj({k: _schema_of(v) for k, v in value.items()}, sorted(value))


def _model_schema() -> dict:
    sample = list_models()[0].to_json()
    schema = _schema_of(sample)
    for key in ("deprecated_at", "retires_at"):
        schema["properties"][key] = NULLABLE_TIMESTAMP
    schema["properties"]["lifecycle"] = {"enum": ["active", "deprecated", "retired"]}
    schema["description"] = ("A model the CLI runs; the Anthropic SDK reads `id`, `display_name`, "
                             "`created_at`; the OpenAI SDK reads `id`, `object`, `created`, `owned_by`.")
    return schema


def _other_schemas() -> dict:
    batch_status = ("in_progress", "canceling", "ended")
    result = _obj({"type": {"enum": ["succeeded", "errored", "canceled", "expired"]},
                   "message": _ref("Message"), "error": _ref("ErrorResponse")}, ["type"])
    return {
        "BatchCreateRequest": _obj({"requests": {"type": "array", "minItems": 1, "maxItems": 100_000,
                                                 "items": _ref("BatchRequestItem")}},
                                   ["requests"], extra=False,
                                   description="Up to 100,000 requests and 256 MB; checked whole "
                                               "before anything runs."),
        "BatchRequestItem": _obj({"custom_id": {"type": "string", "pattern": BATCH_CUSTOM_ID_PATTERN},
                                  "params": _ref("MessageRequest")},
                                 ["custom_id", "params"], extra=False,
                                 description="`params` is a Messages request without `stream`."),
        "MessageBatch": _obj({
            "id": STRING, "type": {"const": "message_batch"},
            "processing_status": {"enum": list(batch_status)},
            "request_counts": _obj({k: INT for k in ("processing", "succeeded", "errored",
                                                     "canceled", "expired")}),
            "ended_at": NULLABLE_TIMESTAMP, "created_at": TIMESTAMP, "expires_at": TIMESTAMP,
            "archived_at": NULLABLE_TIMESTAMP, "cancel_initiated_at": NULLABLE_TIMESTAMP,
            "results_url": {"type": ["string", "null"], "format": "uri"},
        }, ["id", "type", "processing_status", "request_counts", "created_at"],
            description="Runs in the background behind live requests and survives a server restart."),
        "MessageBatchList": _list_of("MessageBatch"),
        "MessageBatchDeleted": _obj({"id": STRING, "type": {"const": "message_batch_deleted"}},
                                    ["id", "type"]),
        "MessageBatchResult": _obj({"custom_id": STRING, "result": result}, ["custom_id", "result"],
                                   description="One line of the results (JSON Lines)."),
        "FileUpload": _obj({"file": {"type": "string", "contentMediaType": "application/octet-stream"},
                            "expires_in_seconds": INT}, ["file"],
                           description="multipart/form-data with one part named `file` (up to 500 MB)."),
        "FileMetadata": _obj({"id": STRING, "type": {"const": "file"}, "filename": STRING,
                              "mime_type": STRING, "size_bytes": INT, "created_at": TIMESTAMP,
                              "downloadable": BOOL, "expires_at": NULLABLE_TIMESTAMP},
                             ["id", "type", "filename", "mime_type", "size_bytes", "created_at"],
                             description="Stored on this machine; `downloadable` is always true."),
        "FileList": _list_of("FileMetadata", next_page=True),
        "FileDeleted": _obj({"id": STRING, "type": {"const": "file_deleted"}}, ["id", "type"]),
        "Model": _model_schema(),
        "ModelList": {**_list_of("Model"), "properties": {**_list_of("Model")["properties"],
                                                          "object": {"const": "list"}}},
        "UsageReport": _report(_obj({
            "uncached_input_tokens": INT, "cache_read_input_tokens": INT, "output_tokens": INT,
            "cache_creation": _obj({"ephemeral_5m_input_tokens": INT,
                                    "ephemeral_1h_input_tokens": INT}),
            "server_tool_use": _obj({"web_search_requests": INT}),
            "claude_nb_cache_hits": _obj({"requests": INT, "input_tokens": INT, "output_tokens": INT},
                                         description="With `include_cache_hits`: answers from the "
                                                     "result cache (billed nothing, in no other number)."),
            **{d: NULLABLE_STRING for d in ("api_key_id", "workspace_id", "model", "service_tier",
                                            "context_window")}})),
        "CostReport": _report(_obj({
            "amount": {"type": "string", "description": "US cents, as a decimal string."},
            "currency": {"const": "USD"},
            **{d: NULLABLE_STRING for d in ("workspace_id", "description", "cost_type", "model",
                                            "service_tier", "context_window", "token_type")}})),
        "Organization": _obj({"id": STRING, "type": {"const": "organization"}, "name": STRING},
                             ["id", "type", "name"]),
        "Health": _obj({"status": {"enum": ["ok", "degraded"]}, "cli": ANY_OBJECT,
                        "concurrency": _obj({"limit": INT, "active": INT, "queued": INT}),
                        "processes": _obj({"live": INT})}, ["status"], extra=True,
                       description="Without a token only `status`; with it the CLI's login, the "
                                   "queue, the processes and a section per subsystem."),
        "PlanQuota": _obj({"object": {"const": "plan_quota"},
                           "status": STRING, "limited_by": NULLABLE_STRING,
                           "resets_at": NULLABLE_TIMESTAMP, "updated_at": NULLABLE_TIMESTAMP,
                           "windows": {"type": "object", "additionalProperties": ANY_OBJECT},
                           "note": NULLABLE_STRING}, ["object", "status", "windows"],
                          description="The latest rate-limit status the CLI reported per window "
                                      "(subscription logins). `unknown` until one is reported."),
        "SessionDeleted": _obj({"id": STRING, "type": {"const": "session_deleted"}}, ["id", "type"]),
        "ThreadDeleted": _obj({"id": STRING, "type": {"const": "thread_deleted"}}, ["id", "type"]),
        "CacheStats": _obj({"enabled": BOOL, "max_size_mb": NUMBER, "entries": INT, "size_bytes": INT,
                            "hits": INT}, ["enabled", "max_size_mb", "entries", "size_bytes", "hits"],
                           description="The result cache: on or off, its bound, what it holds and "
                                       "how many answers it gave."),
        "MessageBatchProgress": _obj({
            "id": STRING, "type": {"const": "message_batch_progress"},
            "processing_status": {"enum": list(batch_status)}, "total": INT, "answered": INT,
            "counts": _obj({k: INT for k in ("pending", "running", "succeeded", "errored",
                                             "canceled", "expired")})},
            ["id", "type", "processing_status", "total", "answered", "counts"],
            description="How far a batch has got right now: requests waiting (`pending`), being "
                        "answered (`running`) and with each kind of result."),
        "CacheCleared": _obj({"type": {"const": "cache_cleared"}, "deleted": INT}, ["type", "deleted"]),
        "CacheLookupRequest": _obj({"requests": {"type": "array", "items": _ref("MessageRequest")}},
                                   ["requests"], extra=False,
                                   description="Messages requests, as they would be sent."),
        "CacheLookupResult": _obj({"cached": {"type": "array", "items": BOOL}, "concurrency": INT},
                                  ["cached", "concurrency"],
                                  description="For each request, whether the cache would answer it; "
                                              "and how many requests this server runs at once."),
        "OpenAPIDocument": _obj({"openapi": STRING, "info": ANY_OBJECT, "paths": ANY_OBJECT},
                                ["openapi", "info", "paths"], extra=True,
                                description="This document."),
    }


# -- OpenAI chat completions ------------------------------------------------------------------------
CHAT_FIELD_DOCS: dict[str, tuple[dict, str | None, str]] = {
    "model": ({"type": "string", "minLength": 1}, HONOURED, "As for /v1/messages; 404 if unknown."),
    "messages": ({"type": "array", "minItems": 1, "items": ANY_OBJECT}, HONOURED,
                 "system/developer/user/assistant/tool messages; text, images (`image_url` data "
                 "or http URLs) and PDFs (`file`)."),
    "max_tokens": ({"type": "integer", "minimum": 1}, HONOURED, "Older name of max_completion_tokens."),
    "max_completion_tokens": ({"type": "integer", "minimum": 1}, HONOURED,
                              "Wins over `max_tokens`; a default applies when both are absent."),
    "stop": ({"anyOf": [STRING, {"type": "array", "maxItems": openai_request.MAX_STOP_SEQUENCES,
                                 "items": STRING}]}, EMULATED,
             "Becomes `stop_sequences` (emulated: cut before the first match)."),
    "stream": (BOOL, HONOURED, "Data-only SSE of `chat.completion.chunk`, ending with `data: [DONE]`."),
    "stream_options": (_obj({"include_usage": BOOL, "include_obfuscation": BOOL}), HONOURED,
                       "`include_usage` adds a last chunk with usage. Only with `stream`."),
    "tools": ({"type": "array", "items": ANY_OBJECT}, HONOURED,
              "`[{type: function, function: {name, description, parameters}}]`."),
    "tool_choice": ({"anyOf": [{"enum": ["auto", "none", "required"]}, ANY_OBJECT]}, EMULATED,
                    "As /v1/messages `tool_choice` (`required` is `any`)."),
    "parallel_tool_calls": (BOOL, EMULATED, "`false` is `disable_parallel_tool_use`."),
    "response_format": (ANY_OBJECT, EMULATED,
                        "`json_schema` is the checked structured output; `json_object` is asked "
                        "for in the system prompt; `text` is the default."),
    "reasoning_effort": ({"enum": ["none", "minimal", "low", "medium", "high", "xhigh", "max"]},
                         HONOURED, "Becomes `output_config.effort` and thinking; `none` turns "
                                   "thinking off."),
    "n": ({"type": "integer", "minimum": 1, "maximum": 1}, HONOURED,
          "Only 1: `n > 1` is a 400 (send n requests instead)."),
    "logprobs": (BOOL, REFUSED, "`true` is a 400: not available through the CLI."),
    "top_logprobs": (INT, REFUSED, "A 400: not available through the CLI."),
    "logit_bias": (ANY_OBJECT, REFUSED, "A non-empty map is a 400."),
    "modalities": ({"type": "array", "items": STRING}, HONOURED,
                   "`[\"text\"]` only; `audio` is a 400."),
}


def _chat_schemas() -> dict:
    docs = dict(CHAT_FIELD_DOCS)
    for name in openai_request.IGNORED_FIELDS:
        docs.setdefault(name, ({}, None, "Accepted; no effect through the CLI."))
    for name in openai_request.UNSUPPORTED_FIELDS:
        docs.setdefault(name, ({}, REFUSED, "A 400 naming the field: not available through the CLI."))
    choice = _obj({"index": INT, "message": ANY_OBJECT,
                   "finish_reason": {"enum": sorted(set(openai_response.FINISH_REASONS.values()))}},
                  ["index", "message", "finish_reason"])
    return {
        "ChatCompletionRequest": _request_schema(
            openai_request.KNOWN_FIELDS, docs, ("model", "messages"),
            tuple(openai_request.IGNORED_FIELDS),
            description="OpenAI's chat API over the same bridge; ignored fields are named in "
                        "the `claude-nb-ignored` response header."),
        "ChatCompletion": _obj({"id": STRING, "object": {"const": "chat.completion"},
                                "created": INT, "model": STRING,
                                "choices": {"type": "array", "items": choice},
                                "usage": ANY_OBJECT},
                               ["id", "object", "created", "model", "choices"]),
        "ChatCompletionChunk": _obj({"id": STRING, "object": {"const": "chat.completion.chunk"},
                                     "created": INT, "model": STRING,
                                     "choices": {"type": "array", "items": ANY_OBJECT},
                                     "usage": {"type": ["object", "null"]}},
                                    ["id", "object", "choices"], extra=True,
                                    description="One `data:` line of the stream; the stream ends "
                                                "with `data: [DONE]`."),
        "OpenAIErrorResponse": _obj({"error": _obj({"message": STRING, "type": STRING,
                                                    "param": NULLABLE_STRING, "code": NULLABLE_STRING},
                                                   ["message", "type"])}, ["error"],
                                    description="OpenAI's error shape (chat completions only)."),
    }


# -- errors ------------------------------------------------------------------------------------------
ERROR_DESCRIPTIONS = {
    400: "The request is malformed or names a field wrongly; the message names the field.",
    401: "No or a wrong token: use this Jupyter server's token.",
    403: "The token may not do this, or the Host header is not allowed.",
    404: "No such object, model or route.",
    405: "The route exists, but not with this method.",
    409: "Conflict.",
    413: "The body is over the size limit.",
    429: "Rate limited upstream; retry after the `retry-after` header.",
    500: "The CLI or the server failed; retryable.",
    503: "Unavailable.",
    504: "The request took longer than c.ClaudeBridge.request_timeout.",
    529: "Anthropic's API is overloaded; retryable.",
}


def _error_schemas() -> dict:
    return {
        "ErrorResponse": _obj({
            "type": {"const": "error"},
            "error": _obj({"type": {"enum": sorted(set(ERROR_TYPES.values()))}, "message": STRING,
                           "details": _obj({"error_code": STRING})}, ["type", "message"]),
            "request_id": NULLABLE_STRING,
        }, ["type", "error"], description="Anthropic's error envelope; the same `request_id` is "
                                          "in the `request-id` header."),
    }


def _error_responses() -> dict:
    out = {}
    for status, kind in sorted(ERROR_TYPES.items()):
        out[f"Error{status}"] = {
            "description": f"{ERROR_DESCRIPTIONS.get(status, kind)} (`{kind}`)",
            "headers": {"request-id": {"schema": STRING},
                        "x-should-retry": {"schema": {"enum": ["true", "false"]}}},
            "content": {"application/json": {"schema": {
                "allOf": [_ref("ErrorResponse"),
                          {"properties": {"error": {"properties": {"type": {"const": kind}}}}}]}}},
        }
        out[f"OpenAIError{status}"] = {
            "description": f"{ERROR_DESCRIPTIONS.get(status, kind)} (OpenAI's error shape)",
            "content": {"application/json": {"schema": _ref("OpenAIErrorResponse")}},
        }
    return out


# -- operations --------------------------------------------------------------------------------------
def _json_response(schema: str, description: str, headers: dict | None = None) -> dict:
    out: dict = {"description": description,
                 "content": {"application/json": {"schema": _ref(schema)}}}
    if headers:
        out["headers"] = headers
    return out


def _errors(*statuses: int, openai=False) -> dict:
    prefix = "OpenAIError" if openai else "Error"
    base = (401, 403, 500)
    return {str(s): {"$ref": f"#/components/responses/{prefix}{s}"}
            for s in sorted(set(statuses) | set(base))}


def _param(name: str, where: str, schema: dict, description: str, required=False) -> dict:
    return {"name": name, "in": where, "required": required or where == "path",
            "schema": schema, "description": description}


def _path_param(name: str, what: str) -> dict:
    return _param(name, "path", STRING, what)


LIST_PARAMS = [
    _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": LIST_MAX_LIMIT,
                              "default": LIST_DEFAULT_LIMIT}, "Items per page."),
    _param("after_id", "query", STRING, "The page after this id."),
    _param("before_id", "query", STRING, "The page before this id."),
]
REPORT_COMMON = [
    _param("starting_at", "query", TIMESTAMP, "Start of the first bucket (RFC 3339).", required=True),
    _param("ending_at", "query", TIMESTAMP, "End of the last bucket."),
    _param("limit", "query", {"type": "integer", "minimum": 1}, "Buckets per page."),
    _param("page", "query", STRING, "`next_page` of the previous answer."),
]
ARRAY_OF_STRINGS = {"type": "array", "items": STRING}
IGNORED_HEADER = {"claude-nb-ignored": {
    "schema": STRING, "description": "Comma-separated request fields accepted with no effect."}}
REQUEST_ID_HEADER = {"request-id": {"schema": STRING}}
CACHE_HEADER = "claude-nb-cache"         # service/cache.CACHE_HEADER (checked by a test)
CACHE_PARAM = _param(CACHE_HEADER, "header", STRING,
                     "`use` answers an identical earlier request from the result cache (no CLI "
                     "run, billed nothing); the response's header says `hit` or `miss`.")
SESSION_PARAM = _param(SESSION_HEADER, "header",
                       {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
                       "Keep the CLI process that answered for the next turn of this chat (a "
                       "hint: the answer never depends on it). "
                       "`DELETE /claude_nb/sessions/{session}` lets it go.")


def _operation(op_id: str, tag: str, summary: str, *, responses: dict, description: str = "",
               params=(), body: dict | None = None, example: dict | None = None,
               anonymous: bool = False) -> dict:
    out: dict = {"operationId": op_id, "tags": [tag], "summary": summary}
    if description:
        out["description"] = description
    if params:
        out["parameters"] = list(params)
    if body is not None:
        out["requestBody"] = body
    out["responses"] = responses
    if example is not None:
        out[EXAMPLE_BODY] = example
    if anonymous:
        out["security"] = [{}, {"apiKey": []}, {"bearerAuth": []}]
    return out


def _json_body(schema: str, example: dict | None = None) -> dict:
    media: dict = {"schema": _ref(schema)}
    if example is not None:
        media["example"] = example
    return {"required": True, "content": {"application/json": media}}


HELLO = {"role": "user", "content": "Say hello in five words."}
MESSAGE_EXAMPLE = {"model": "sonnet", "max_tokens": 256, "messages": [HELLO]}
CHAT_EXAMPLE = {"model": "sonnet", "messages": [HELLO]}
BATCH_EXAMPLE = {"requests": [{"custom_id": "first", "params": MESSAGE_EXAMPLE}]}
CACHE_LOOKUP_EXAMPLE = {"requests": [MESSAGE_EXAMPLE]}


def _paths() -> dict:
    ok_message = {"description": "The Message, or its events when `stream` is true.",
                  "headers": {**REQUEST_ID_HEADER, **IGNORED_HEADER,
                              CACHE_HEADER: {"schema": {"enum": ["hit", "miss"]},
                                             "description": f"With `{CACHE_HEADER}: use`."}},
                  "content": {"application/json": {"schema": _ref("Message")},
                              "text/event-stream": {"schema": {
                                  "type": "string",
                                  "description": "`event: <type>` / `data: <MessageStreamEvent>` pairs.",
                                  "contentMediaType": "text/event-stream"},
                                  "x-claude-nb-event-schema": _ref("MessageStreamEvent")}}}
    ok_chat = {"description": "A chat.completion, or chunks when `stream` is true.",
               "headers": {**IGNORED_HEADER, "x-request-id": {"schema": STRING}},
               "content": {"application/json": {"schema": _ref("ChatCompletion")},
                           "text/event-stream": {"schema": {"type": "string"},
                                                 "x-claude-nb-event-schema": _ref("ChatCompletionChunk")}}}
    batch_id = _path_param("batch_id", "A message batch id (`msgbatch_...`).")
    file_id = _path_param("file_id", "A file id (`file_...`).")
    model_id = _path_param("model_id", "A model id or alias.")
    return {
        "/v1/messages": {"post": _operation(
            "messages_create", "Messages", "Create a message",
            description="Runs the Claude Code CLI; JSON, or server-sent events with `stream: true`. "
                        "Field by field support: docs/compatibility.md.",
            params=[SESSION_PARAM, CACHE_PARAM], body=_json_body("MessageRequest", MESSAGE_EXAMPLE),
            example=MESSAGE_EXAMPLE,
            responses={"200": ok_message, **_errors(400, 404, 413, 429, 504, 529)})},
        "/v1/messages/count_tokens": {"post": _operation(
            "messages_count_tokens", "Messages", "Count the tokens of a request",
            description="Counted locally, without running the CLI; an estimate close to the API's.",
            body=_json_body("CountTokensRequest", CHAT_EXAMPLE), example=CHAT_EXAMPLE,
            responses={"200": _json_response("CountTokensResponse", "The count."),
                       **_errors(400, 404, 413)})},
        "/v1/messages/batches": {
            "post": _operation(
                "batches_create", "Message batches", "Create a message batch",
                body=_json_body("BatchCreateRequest", BATCH_EXAMPLE), example=BATCH_EXAMPLE,
                responses={"200": _json_response("MessageBatch", "The new batch."),
                           **_errors(400, 413)}),
            "get": _operation(
                "batches_list", "Message batches", "List message batches (newest first)",
                params=LIST_PARAMS,
                responses={"200": _json_response("MessageBatchList", "A page of batches."),
                           **_errors(400, 404)})},
        "/v1/messages/batches/{batch_id}": {
            "get": _operation("batches_retrieve", "Message batches", "Retrieve a message batch",
                              params=[batch_id],
                              responses={"200": _json_response("MessageBatch", "The batch."),
                                         **_errors(404)}),
            "delete": _operation("batches_delete", "Message batches", "Delete an ended batch",
                                 params=[batch_id],
                                 responses={"200": _json_response("MessageBatchDeleted", "Deleted."),
                                            **_errors(400, 404)})},
        "/v1/messages/batches/{batch_id}/cancel": {"post": _operation(
            "batches_cancel", "Message batches", "Cancel a message batch",
            description="Requests not yet run end `canceled`; the batch ends once running ones finish.",
            params=[batch_id],
            responses={"200": _json_response("MessageBatch", "The batch, `canceling` or `ended`."),
                       **_errors(400, 404)})},
        "/v1/messages/batches/{batch_id}/results": {"get": _operation(
            "batches_results", "Message batches", "Results of an ended batch (JSON Lines)",
            params=[batch_id],
            responses={"200": {"description": "One MessageBatchResult per line.",
                               "content": {"application/x-jsonl": {
                                   "schema": {"type": "string"},
                                   "x-claude-nb-line-schema": _ref("MessageBatchResult")}}},
                       **_errors(400, 404)})},
        "/claude_nb/batches/{batch_id}/results": {"get": _operation(
            "batches_results_so_far", "Message batches", "Results stored so far, while the batch runs",
            description="claude-nb's own: the API's results route answers only once a batch has ended.",
            params=[batch_id],
            responses={"200": {"description": "One MessageBatchResult per line, in input order.",
                               "content": {"application/x-jsonl": {
                                   "schema": {"type": "string"},
                                   "x-claude-nb-line-schema": _ref("MessageBatchResult")}}},
                       **_errors(404)})},
        "/claude_nb/batches/{batch_id}/progress": {"get": _operation(
            "batches_progress", "Message batches", "How far a batch has got, while it runs",
            description="claude-nb's own: the API's `request_counts` stay in `processing` until a "
                        "batch ends; the notebook's progress bar reads this.",
            params=[batch_id],
            responses={"200": _json_response("MessageBatchProgress", "Its counts right now."),
                       **_errors(404)})},
        "/v1/files": {
            "post": _operation(
                "files_upload", "Files", "Upload a file",
                body={"required": True, "content": {"multipart/form-data": {
                    "schema": _ref("FileUpload")}}},
                responses={"200": _json_response("FileMetadata", "The stored file."),
                           **_errors(400, 413)}),
            "get": _operation(
                "files_list", "Files", "List files (newest first)",
                params=[*LIST_PARAMS,
                        _param("page", "query", STRING, "`next_page` of the previous answer."),
                        _param("ids", "query", ARRAY_OF_STRINGS,
                               "Only these ids (`ids[]=a&ids[]=b` or `ids=a,b`), at most 100.")],
                responses={"200": _json_response("FileList", "A page of files."), **_errors(400, 404)})},
        "/v1/files/{file_id}": {
            "get": _operation("files_retrieve", "Files", "A file's metadata", params=[file_id],
                              responses={"200": _json_response("FileMetadata", "The metadata."),
                                         **_errors(404)}),
            "delete": _operation("files_delete", "Files", "Delete a file", params=[file_id],
                                 responses={"200": _json_response("FileDeleted", "Deleted."),
                                            **_errors(404)})},
        "/v1/files/{file_id}/content": {"get": _operation(
            "files_content", "Files", "Download a file's bytes", params=[file_id],
            responses={"200": {"description": "The bytes, as an attachment.",
                               "content": {"application/octet-stream": {
                                   "schema": {"type": "string",
                                              "contentMediaType": "application/octet-stream"}}}},
                       **_errors(404)})},
        "/v1/models": {"get": _operation(
            "models_list", "Models", "List the models",
            params=[*LIST_PARAMS, _param("lifecycle", "query",
                                         {"type": "array", "items": {"enum": ["active", "deprecated",
                                                                              "retired"]}},
                                         "Only models in these lifecycle states.")],
            responses={"200": _json_response("ModelList", "A page of models (both SDKs' shapes)."),
                       **_errors(400, 404)})},
        "/v1/models/{model_id}": {"get": _operation(
            "models_retrieve", "Models", "Retrieve a model", params=[model_id],
            responses={"200": _json_response("Model", "The model; an alias resolves to its id."),
                       **_errors(404)})},
        "/v1/organizations/usage_report/messages": {"get": _operation(
            "usage_report", "Reports", "Token usage report",
            description="Sums every CLI run this server made: API requests, batch requests and magics.",
            params=[*REPORT_COMMON,
                    _param("bucket_width", "query", {"enum": ["1d", "1h", "1m"], "default": "1d"},
                           "Bucket size."),
                    _param("group_by", "query", {"type": "array", "items": {"enum": [
                        "api_key_id", "workspace_id", "model", "service_tier", "context_window"]}},
                        "Split each bucket by these."),
                    _param("models", "query", ARRAY_OF_STRINGS, "Only these models (aliases resolve)."),
                    _param("api_key_ids", "query", ARRAY_OF_STRINGS, "Only these API key ids."),
                    _param("workspace_ids", "query", ARRAY_OF_STRINGS, "Only these workspaces."),
                    _param("service_tiers", "query", ARRAY_OF_STRINGS, "Only these service tiers."),
                    _param("context_window", "query", ARRAY_OF_STRINGS,
                           "Only these context windows (`0-200k`, `200k-1M`)."),
                    _param("include_cache_hits", "query", {"type": "boolean", "default": False},
                           "claude-nb's own: add `claude_nb_cache_hits` to each result.")],
            responses={"200": _json_response("UsageReport", "Buckets of usage."), **_errors(400)})},
        "/v1/organizations/cost_report": {"get": _operation(
            "cost_report", "Reports", "Cost report",
            description="What the runs would cost at API prices (daily buckets).",
            params=[*REPORT_COMMON,
                    _param("bucket_width", "query", {"const": "1d", "default": "1d"},
                           "Daily buckets only."),
                    _param("group_by", "query", {"type": "array", "items": {"enum": [
                        "workspace_id", "description"]}}, "Split each bucket by these."),
                    _param("workspace_ids", "query", ARRAY_OF_STRINGS, "Only these workspaces.")],
            responses={"200": _json_response("CostReport", "Buckets of cost."), **_errors(400)})},
        "/v1/organizations/me": {"get": _operation(
            "organization_me", "Server", "This server as an organization",
            responses={"200": _json_response("Organization", "A stable id for this Jupyter data dir."),
                       **_errors()})},
        "/v1/usage/quota": {"get": _operation(
            "usage_quota", "Server", "Plan quota the CLI reported",
            responses={"200": _json_response("PlanQuota", "The windows and the latest status."),
                       **_errors()})},
        "/v1/chat/completions": {"post": _operation(
            "chat_completions_create", "OpenAI", "Create a chat completion (OpenAI's API)",
            description="Point the `openai` SDK at `{base_url}v1`. Errors come in OpenAI's shape.",
            body=_json_body("ChatCompletionRequest", CHAT_EXAMPLE), example=CHAT_EXAMPLE,
            responses={"200": ok_chat, **_errors(400, 404, 413, 429, 504, 529, openai=True)})},
        "/health": {"get": _operation(
            "health", "Server", "Is it up?", anonymous=True,
            params=[_param("fresh", "query", {"enum": ["1"]}, "Check the CLI's login now, not "
                                                                "from the 30 s cache.")],
            responses={"200": _json_response("Health", "`status` for anyone; details with the token."),
                       **_errors()})},
        "/v1/health": {"get": _operation(
            "health_v1", "Server", "Is it up? (under /v1)", anonymous=True,
            params=[_param("fresh", "query", {"enum": ["1"]}, "As for /health.")],
            responses={"200": _json_response("Health", "As /health."), **_errors()})},
        "/metrics": {"get": _operation(
            "metrics", "Server", "Prometheus metrics",
            description="Jupyter's own series, then `claude_nb_*` (token required for ours).",
            responses={"200": {"description": "Prometheus text format.",
                               "content": {"text/plain": {"schema": STRING}}}, **_errors()})},
        "/claude_nb/sessions/{session}": {"delete": _operation(
            "session_delete", "Server", "End a chat session's kept CLI process",
            params=[_param("session", "path", {"type": "string",
                                               "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
                           f"The `{SESSION_HEADER}` key.")],
            responses={"200": _json_response("SessionDeleted", "Ended (or there was none)."),
                       **_errors(400)})},
        "/claude_nb/threads/{message_id}": {"delete": _operation(
            "thread_delete", "Server", "Drop a message thread and its kept CLI process",
            params=[_path_param("message_id", "The `id` of any response of the thread.")],
            responses={"200": _json_response("ThreadDeleted", "Dropped."), **_errors(404)})},
        "/claude_nb/cache": {
            "get": _operation("cache_stats", "Server", "The result cache",
                              responses={"200": _json_response("CacheStats", "Its state."), **_errors()}),
            "delete": _operation("cache_clear", "Server", "Empty the result cache",
                                 responses={"200": _json_response("CacheCleared", "How many went."),
                                            **_errors()})},
        "/claude_nb/cache/lookup": {"post": _operation(
            "cache_lookup", "Server", "Which requests the result cache would answer",
            description="Nothing runs and nothing counts as used: for estimates made before sending.",
            body=_json_body("CacheLookupRequest", CACHE_LOOKUP_EXAMPLE), example=CACHE_LOOKUP_EXAMPLE,
            responses={"200": _json_response("CacheLookupResult", "One answer per request."),
                       **_errors(400, 413)})},
        "/v1/openapi.json": {"get": _operation(
            "openapi", "Server", "This document",
            responses={"200": _json_response("OpenAPIDocument", "OpenAPI 3.1."), **_errors()})},
        "/claude_nb/docs": {"get": _operation(
            "docs_page", "Server", "This document for a person (HTML, with a try-it form)",
            description="Behind Jupyter's login: a browser without the session cookie is sent "
                        "to the login page.",
            responses={"200": {"description": "The page.",
                               "content": {"text/html": {"schema": STRING}}},
                       "302": {"description": "Not logged in: to Jupyter's login page."}})},
    }


# -- examples --------------------------------------------------------------------------------------
# operationId -> the Python that does it (`client` is anthropic.Anthropic pointed at the server).
PYTHON_CALLS = {
    "messages_create": "message = client.messages.create(model=\"sonnet\", max_tokens=256,\n"
                       "    messages=[{\"role\": \"user\", \"content\": \"Say hello in five words.\"}])\n"
                       "print(message.content[0].text)",
    "messages_count_tokens": "print(client.messages.count_tokens(model=\"sonnet\",\n"
                             "    messages=[{\"role\": \"user\", \"content\": \"Say hello in five words.\"}])"
                             ".input_tokens)",
    "batches_create": "batch = client.messages.batches.create(requests=[{\"custom_id\": \"first\",\n"
                      "    \"params\": {\"model\": \"sonnet\", \"max_tokens\": 256,\n"
                      "               \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}}])\n"
                      "print(batch.id, batch.processing_status)",
    "batches_list": "for batch in client.messages.batches.list(limit=20):\n"
                    "    print(batch.id, batch.processing_status)",
    "batches_retrieve": "print(client.messages.batches.retrieve(\"{batch_id}\").processing_status)",
    "batches_delete": "client.messages.batches.delete(\"{batch_id}\")",
    "batches_cancel": "print(client.messages.batches.cancel(\"{batch_id}\").processing_status)",
    "batches_results": "for line in client.messages.batches.results(\"{batch_id}\"):\n"
                       "    print(line.custom_id, line.result.type)",
    "files_upload": "with open(\"notes.txt\", \"rb\") as f:\n"
                    "    print(client.beta.files.upload(file=(\"notes.txt\", f, \"text/plain\")).id)",
    "files_list": "for f in client.beta.files.list():\n    print(f.id, f.filename)",
    "files_retrieve": "print(client.beta.files.retrieve_metadata(\"{file_id}\"))",
    "files_delete": "client.beta.files.delete(\"{file_id}\")",
    "files_content": "client.beta.files.download(\"{file_id}\").write_to_file(\"copy.bin\")",
    "models_list": "for model in client.models.list():\n    print(model.id, model.display_name)",
    "models_retrieve": "print(client.models.retrieve(\"sonnet\").id)",
    "usage_report": "print(client.get(\"/v1/organizations/usage_report/messages\", cast_to=object,\n"
                    "    options={\"params\": {\"starting_at\": \"2026-01-01T00:00:00Z\"}}))",
    "cost_report": "print(client.get(\"/v1/organizations/cost_report\", cast_to=object,\n"
                   "    options={\"params\": {\"starting_at\": \"2026-01-01T00:00:00Z\"}}))",
    "organization_me": "print(client.get(\"/v1/organizations/me\", cast_to=object))",
    "usage_quota": "print(client.get(\"/v1/usage/quota\", cast_to=object))",
    "health": "print(client.get(\"/health\", cast_to=object))",
    "health_v1": "print(client.get(\"/v1/health\", cast_to=object))",
    "metrics": "print(client.get(\"/metrics\", cast_to=str))",
    "session_delete": "print(client.delete(\"/claude_nb/sessions/my-chat\", cast_to=object))",
    "thread_delete": "print(client.delete(\"/claude_nb/threads/{message_id}\", cast_to=object))",
    "cache_stats": "print(client.get(\"/claude_nb/cache\", cast_to=object))",
    "cache_clear": "print(client.delete(\"/claude_nb/cache\", cast_to=object))",
    "cache_lookup": "print(client.post(\"/claude_nb/cache/lookup\", cast_to=object, body={\"requests\": [\n"
                    "    {\"model\": \"sonnet\", \"max_tokens\": 256,\n"
                    "     \"messages\": [{\"role\": \"user\", \"content\": \"Say hello in five words.\"}]}]}))",
    "batches_results_so_far": "print(client.get(\"/claude_nb/batches/{batch_id}/results\", cast_to=str))",
    "batches_progress": "print(client.get(\"/claude_nb/batches/{batch_id}/progress\", cast_to=object))",
    "openapi": "print(client.get(\"/v1/openapi.json\", cast_to=object)[\"info\"])",
    "docs_page": "import webbrowser\nwebbrowser.open(f\"{client.base_url}claude_nb/docs\")",
}
OPENAI_CALLS = {
    "chat_completions_create": "completion = client.chat.completions.create(model=\"sonnet\",\n"
                               "    messages=[{\"role\": \"user\", \"content\": \"Say hello in five words.\"}])\n"
                               "print(completion.choices[0].message.content)",
}
CURL_PATHS = {"batch_id": "msgbatch_...", "file_id": "file_...", "model_id": "sonnet",
              "session": "my-chat", "message_id": "msg_..."}
CURL_QUERY = {"usage_report": "?starting_at=2026-01-01T00:00:00Z",
              "cost_report": "?starting_at=2026-01-01T00:00:00Z"}


def _python_sample(op_id: str, server_url: str) -> str:
    if op_id in OPENAI_CALLS:
        return ("import os, openai\n"
                f"client = openai.OpenAI(base_url={server_url + 'v1'!r},\n"
                "                       api_key=os.environ[\"JUPYTER_TOKEN\"])\n"
                + OPENAI_CALLS[op_id])
    call = PYTHON_CALLS.get(op_id)
    if call is None:
        return ""
    for name, value in CURL_PATHS.items():
        call = call.replace("{" + name + "}", value)
    return ("import os, anthropic\n"
            f"client = anthropic.Anthropic(base_url={server_url!r},\n"
            "                             api_key=os.environ[\"JUPYTER_TOKEN\"])\n" + call)


def _curl_sample(path: str, method: str, op: dict, server_url: str) -> str:
    url_path = path
    for name, value in CURL_PATHS.items():
        url_path = url_path.replace("{" + name + "}", value)
    url = server_url.rstrip("/") + url_path + CURL_QUERY.get(op["operationId"], "")
    lines = [f"curl {shlex.quote(url)}"]
    if method != "get":
        lines[0] = f"curl -X {method.upper()} {shlex.quote(url)}"
    lines.append('-H "x-api-key: $JUPYTER_TOKEN"')
    content = op.get("requestBody", {}).get("content", {})
    if "multipart/form-data" in content:
        lines.append("-F file=@notes.txt")
    elif op.get(EXAMPLE_BODY) is not None:
        lines.append('-H "content-type: application/json"')
        lines.append("-d " + shlex.quote(json.dumps(op[EXAMPLE_BODY])))
    if op["operationId"] == "files_content":
        lines.append("-o copy.bin")
    return " \\\n  ".join(lines)


def _add_samples(paths: dict, server_url: str) -> None:
    for path, item in paths.items():
        for method, op in item.items():
            samples = [{"lang": "Shell", "label": "curl",
                        "source": _curl_sample(path, method, op, server_url)}]
            python = _python_sample(op["operationId"], server_url)
            if python:
                label = "Python (openai)" if op["operationId"] in OPENAI_CALLS else "Python (anthropic)"
                samples.append({"lang": "Python", "label": label, "source": python})
            op[CODE_SAMPLES] = samples


# -- the document ------------------------------------------------------------------------------------
def build_document(*, server_url: str = "http://127.0.0.1:8888/", version: str = "0") -> dict:
    """The OpenAPI 3.1 document. `server_url` is this server's base URL (with base_url, ending
    in "/"); paths are relative to it."""
    if not server_url.endswith("/"):
        server_url += "/"
    paths = _paths()
    _add_samples(paths, server_url)
    schemas = {**_error_schemas(), **_message_schemas(), **_response_schemas(),
               **_other_schemas(), **_chat_schemas()}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "claude-nb: Anthropic-compatible API over the Claude Code CLI",
            "version": version,
            "description": (
                "Served by the claude-nb Jupyter server extension and answered by the Claude Code "
                "CLI this server is logged in to. Use the Jupyter server's token as the API key: "
                "`x-api-key: <token>` or `Authorization: Bearer <token>` (`Authorization: token "
                "<token>` works too); a browser logged in to Jupyter may use its session cookie "
                "with the `X-XSRFToken` header. Every request field says whether it is honoured, "
                f"emulated, ignored or refused (`{SUPPORT}`; details in {COMPATIBILITY_DOC})."),
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": [{"url": server_url.rstrip("/") or "/",
                     "description": "This Jupyter server (its base_url included)."}],
        "security": [{"apiKey": []}, {"bearerAuth": []}],
        "tags": [{"name": name} for name in ("Messages", "Message batches", "Files", "Models",
                                             "Reports", "OpenAI", "Server")],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key",
                           "description": "The Jupyter server's token."},
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "The Jupyter server's token, as `Authorization: Bearer`."},
            },
            "schemas": schemas,
            "responses": _error_responses(),
        },
        "x-claude-nb-limits": {"max_request_bytes": MAX_MESSAGE_BYTES, "max_messages": MAX_MESSAGES},
    }


def iter_support(document: dict):
    """(location, support) for every node of the document that declares one; locations are
    `Schema`, `Schema/prop`, `Schema/prop/sub` and `Schema/prop=value`."""
    def walk(node, where):
        if not isinstance(node, dict):
            return
        if SUPPORT in node:
            yield where, node[SUPPORT]
        for value, support in node.get(SUPPORT_BY_VALUE, {}).items():
            yield f"{where}={value}", support
        for name, child in node.get("properties", {}).items():
            yield from walk(child, f"{where}/{name}")
    for name, schema in document["components"]["schemas"].items():
        yield from walk(schema, name)
