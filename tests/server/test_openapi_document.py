"""GET {base_url}v1/openapi.json: a valid OpenAPI 3.1 document of every route the extension
serves and every field the request checks accept, marked as docs/compatibility.md says, whose
response schemas match what the server answers and whose examples run."""
from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import json
import os
import re
from pathlib import Path

import jsonschema
import pytest
from openapi_spec_validator import validate as validate_openapi
from tornado import web
from tornado.httpclient import AsyncHTTPClient

from claude_nb.protocol.openai import request as openai_request
from claude_nb.protocol import openapi, validation
from claude_nb.protocol.openapi import (REFUSED_LIST, SUPPORT, UNDOCUMENTED, build_document,
                                        iter_support)
from claude_nb.service import batches, cache, reports
from tests.support.fake_upstream import Reply

ROOT = Path(__file__).resolve().parents[2]
HANDLERS_DIR = ROOT / "server_ext" / "handlers"
METHODS = ("get", "post", "put", "patch", "delete")
# Served, but not routes of the API: the /v1 catch-all (a 404 envelope for any other path) and
# the docs page's own script and style sheet.
NOT_API_ROUTES = {"UnknownRouteHandler", "DocsAssetHandler"}


@pytest.fixture(scope="module")
def document():
    return build_document(server_url="http://127.0.0.1:8888/", version="test")


def schema_validator(document, name):
    """A JSON Schema 2020-12 validator for components/schemas/<name> (OpenAPI 3.1 schemas are
    JSON Schema), its $refs resolved inside the document."""
    root = {**document, "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": f"#/components/schemas/{name}"}
    return jsonschema.Draft202012Validator(root)


def assert_matches(document, name, value):
    errors = sorted(schema_validator(document, name).iter_errors(value), key=str)
    assert not errors, f"{name}: " + "; ".join(e.message[:200] for e in errors[:5])


def openapi_path(pattern: str) -> str:
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern)
    return path.replace("\\.", ".")


def served_operations(app) -> set[tuple[str, str]]:
    out = set()
    for pattern, handler, *_ in app.handlers:
        if handler.__name__ in NOT_API_ROUTES:
            continue
        for method in METHODS:
            if getattr(handler, method) is not getattr(web.RequestHandler, method):
                out.add((openapi_path(pattern), method))
    return out


# -- the document itself ------------------------------------------------------------------------
def test_document_is_valid_openapi_3_1(document):
    validate_openapi(document)
    assert document["openapi"].startswith("3.1")
    schemes = document["components"]["securitySchemes"]
    assert schemes["apiKey"] == {"type": "apiKey", "in": "header", "name": "x-api-key",
                                 "description": schemes["apiKey"]["description"]}
    assert schemes["bearerAuth"]["scheme"] == "bearer"


def test_the_validator_catches_a_broken_document(document):
    """The check above can fail: a path parameter the path does not declare is refused."""
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
    broken = json.loads(json.dumps(document))
    broken["paths"]["/v1/models/{model_id}"]["get"]["parameters"] = []
    with pytest.raises(OpenAPIValidationError):
        validate_openapi(broken)


async def test_every_served_route_is_in_the_served_document(jp_fetch, claude_app, cli_env):
    resp = await jp_fetch("v1", "openapi.json")
    served = json.loads(resp.body)
    validate_openapi(served)
    documented = {(path, method) for path, item in served["paths"].items() for method in item}
    missing = served_operations(claude_app) - documented
    assert not missing, f"served but not in v1/openapi.json: {sorted(missing)}"
    stale = documented - served_operations(claude_app)
    assert not stale, f"in v1/openapi.json but not served: {sorted(stale)}"


async def test_the_document_needs_the_token_and_names_this_server(jp_fetch, claude_app, cli_env,
                                                                  http_server_port, jp_base_url):
    url = f"http://127.0.0.1:{http_server_port[1]}{jp_base_url}v1/openapi.json"
    anonymous = await AsyncHTTPClient().fetch(url, raise_error=False)
    assert anonymous.code == 401
    assert json.loads(anonymous.body)["error"]["type"] == "authentication_error"
    resp = await jp_fetch("v1", "openapi.json")
    doc = json.loads(resp.body)
    assert doc["servers"][0]["url"] == f"http://127.0.0.1:{http_server_port[1]}{jp_base_url}".rstrip("/")
    sample = next(s["source"] for s in doc["paths"]["/v1/models"]["get"]["x-codeSamples"]
                  if s["label"] == "curl")
    assert f"127.0.0.1:{http_server_port[1]}{jp_base_url}v1/models" in sample


async def test_the_docs_page_is_served_from_the_package(jp_fetch, claude_app, cli_env, jp_base_url):
    page = (await jp_fetch("claude_nb", "docs")).body.decode()
    links = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert links and all(link.startswith(jp_base_url) for link in links), links   # nothing from outside
    for link in links:
        if "/claude_nb/docs/" in link:
            asset = await jp_fetch(*link[len(jp_base_url):].split("/"))
            assert asset.code == 200 and asset.body
    missing = await jp_fetch("claude_nb", "docs", "nope.js", raise_error=False)
    assert missing.code == 404
    error = json.loads(missing.body)["error"]
    assert error["type"] == "not_found_error" and "'nope.js'" in error["message"]
    wrong = await jp_fetch("claude_nb", "docs", method="POST", body="{}", raise_error=False)
    assert wrong.code in (403, 405) and json.loads(wrong.body)["type"] == "error"


# -- fields: every one the checks accept, none undocumented ------------------------------------------
def test_every_validated_field_is_documented(document):
    schemas = document["components"]["schemas"]
    # `thread` is read (and taken off the body) by the handler before the Messages checks
    assert set(schemas["MessageRequest"]["properties"]) == validation.MESSAGE_FIELDS | {"thread"}
    assert set(schemas["CountTokensRequest"]["properties"]) == validation.COUNT_FIELDS
    assert set(schemas["ChatCompletionRequest"]["properties"]) == openai_request.KNOWN_FIELDS
    block_types = {s["properties"]["type"]["const"] for n, s in schemas.items()
                   if n.endswith("BlockParam") and "properties" in s}
    assert block_types == validation.INPUT_BLOCK_TYPES
    assert set(schemas["BatchCreateRequest"]["properties"]) == {"requests"}
    assert set(schemas["BatchRequestItem"]["properties"]) == {"custom_id", "params"}
    assert (schemas["BatchRequestItem"]["properties"]["custom_id"]["pattern"]
            == batches.CUSTOM_ID.pattern)
    messages_create = document["paths"]["/v1/messages"]["post"]
    assert cache.CACHE_HEADER in {p["name"] for p in messages_create["parameters"]}
    session = document["paths"]["/claude_nb/sessions/{session}"]["delete"]["parameters"][0]
    assert re.fullmatch(session["schema"]["pattern"].strip("^$"), "chat-1.a:b")
    assert session["schema"]["pattern"].strip("^$") == validation._SESSION_KEY.pattern
    undocumented = [where for where, support in iter_support(document) if support == UNDOCUMENTED]
    assert not undocumented, f"validated but not described in claude_nb/protocol/openapi.py: {undocumented}"


@pytest.mark.parametrize("schema", ["MessageRequest", "CountTokensRequest", "ChatCompletionRequest"])
def test_every_request_field_says_how_it_is_handled(document, schema):
    properties = document["components"]["schemas"][schema]["properties"]
    for name, prop in properties.items():
        assert prop.get(SUPPORT) in openapi.SUPPORT_LEVELS, (schema, name)
        assert prop.get("description"), (schema, name)


def test_ignored_fields_are_exactly_the_ones_the_server_names_ignored(document):
    schemas = document["components"]["schemas"]
    ignored = {n for n, p in schemas["MessageRequest"]["properties"].items() if p[SUPPORT] == "ignored"}
    assert ignored == set(validation.IGNORED_FIELDS)
    tool_ignored = {n for n, p in schemas["ToolParam"]["properties"].items()
                    if p.get(SUPPORT) == "ignored"}
    assert tool_ignored == set(validation.IGNORED_TOOL_FIELDS)
    chat = schemas["ChatCompletionRequest"]["properties"]
    assert {n for n, p in chat.items() if p[SUPPORT] == "ignored"} == set(openai_request.IGNORED_FIELDS)
    assert set(openai_request.UNSUPPORTED_FIELDS) <= {n for n, p in chat.items() if p[SUPPORT] == "refused"}
    # and the server says so for a request that sends them all
    body = {"model": "sonnet", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
            **{f: {} for f in validation.IGNORED_FIELDS}}
    assert set(validation.ignored_fields(body)) == ignored


def _enum_values(schema):
    return set(schema.get("enum", []))


def test_enums_follow_the_checks(document):
    schemas = document["components"]["schemas"]
    assert _enum_values(schemas["OutputConfig"]["properties"]["effort"]) == validation.EFFORTS
    assert _enum_values(schemas["Base64ImageSource"]["properties"]["media_type"]) == validation.IMAGE_MEDIA_TYPES
    assert _enum_values(schemas["ThinkingConfig"]["properties"]["type"]) == set(validation.THINKING_TYPES)
    assert _enum_values(schemas["ToolChoice"]["properties"]["type"]) == set(validation.TOOL_CHOICE_TYPES)
    assert _enum_values(schemas["MessageParam"]["properties"]["role"]) == set(validation.ROLES)
    errors = document["components"]["schemas"]["ErrorResponse"]["properties"]["error"]
    from claude_nb.protocol.errors import ERROR_TYPES
    assert _enum_values(errors["properties"]["type"]) == set(ERROR_TYPES.values())


def test_request_examples_pass_the_server_checks_and_the_schemas(document):
    for path, item in document["paths"].items():
        for method, op in item.items():
            example = op.get(openapi.EXAMPLE_BODY)
            if example is None:
                continue
            schema = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
            assert_matches(document, schema, example)
    validation.validate_message_request(document["paths"]["/v1/messages"]["post"][openapi.EXAMPLE_BODY])
    batches.validate_batch_requests(document["paths"]["/v1/messages/batches"]["post"][openapi.EXAMPLE_BODY])
    for request in document["paths"]["/claude_nb/cache/lookup"]["post"][openapi.EXAMPLE_BODY]["requests"]:
        validation.validate_message_request(request)
    openai_request.translate_chat_request(document["paths"]["/v1/chat/completions"]["post"][openapi.EXAMPLE_BODY])


def test_the_schemas_refuse_what_the_checks_refuse(document):
    """Spot checks that the schema is as strict as the server where a client generator relies on it."""
    validator = schema_validator(document, "MessageRequest")
    good = {"model": "sonnet", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    assert validator.is_valid(good)
    for bad in ({**good, "max_tokens": 0}, {**good, "bogus": 1}, {k: v for k, v in good.items() if k != "model"},
                {**good, "messages": [{"role": "robot", "content": "hi"}]},
                {**good, "output_config": {"effort": "extreme"}}):
        assert not validator.is_valid(bad), bad
        with pytest.raises(Exception):
            validation.validate_message_request(bad)


# -- every error status in the envelope ---------------------------------------------------------------
def test_every_operation_lists_its_errors_in_the_envelope(document):
    for path, item in document["paths"].items():
        for method, op in item.items():
            if op["operationId"] == "docs_page":
                continue
            statuses = {s for s in op["responses"] if s.startswith(("4", "5"))}
            assert {"401", "500"} <= statuses, (path, method)
            for status in statuses:
                ref = op["responses"][status]["$ref"]
                expected = "OpenAIError" if path == "/v1/chat/completions" else "Error"
                assert ref == f"#/components/responses/{expected}{status}"


# -- query parameters the handlers read ----------------------------------------------------------------
_QUERY_READERS = {"get_query_argument", "get_query_arguments", "query_list"}


def _loop_constants(func: ast.AST) -> dict[str, list[str]]:
    """Loop variable -> the literal strings it runs over (`for name in ("a", "b")`, also in a
    comprehension), so `get_query_argument(name)` inside such a loop counts too."""
    out: dict[str, list[str]] = {}
    for node in ast.walk(func):
        if isinstance(node, (ast.For, ast.comprehension)) and isinstance(node.target, ast.Name) \
                and isinstance(node.iter, (ast.Tuple, ast.List, ast.Set)):
            out[node.target.id] = [e.value for e in node.iter.elts
                                   if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return out


def _names_read(func: ast.AST, helpers: dict[str, set[str]]) -> set[str]:
    names = set()
    looped = _loop_constants(func)
    for node in ast.walk(func):
        if not isinstance(node, ast.Call):
            continue
        callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        args = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if callee in _QUERY_READERS and args:
            names.add(args[0].removesuffix("[]"))
        elif callee in _QUERY_READERS:
            for arg in node.args:
                if isinstance(arg, ast.Name) and arg.id in looped:
                    names |= {v.removesuffix("[]") for v in looped[arg.id]}
        names |= helpers.get(callee, set())
    return names


def handler_query_params() -> dict[str, set[str]]:
    """Handler class -> query parameter names its methods read (directly or through the
    server_ext.handlers.paging helpers), found in the source."""
    paging = ast.parse((HANDLERS_DIR / "paging.py").read_text())
    helpers = {f.name: _names_read(f, {}) for f in paging.body if isinstance(f, ast.FunctionDef)}
    helpers.pop("query_list", None)
    out: dict[str, set[str]] = {}
    for source in HANDLERS_DIR.glob("*.py"):
        for cls in ast.parse(source.read_text()).body:
            if isinstance(cls, ast.ClassDef):
                read = set()
                for fn in cls.body:
                    if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and fn.name in METHODS:
                        read |= _names_read(fn, helpers)
                out[cls.name] = read
    return out


def _report_params(from_query) -> set[str]:
    with pytest.raises(Exception) as caught:
        from_query(None, {"zz_not_a_parameter": ["1"]})
    return set(str(caught.value).split("expected one of ", 1)[1].split(", "))


def test_every_query_parameter_read_is_documented(document, jp_serverapp):
    app = next(iter(jp_serverapp.extension_manager.extension_apps["server_ext"]))
    read = handler_query_params()
    assert read["ModelsHandler"] >= {"lifecycle", "limit", "after_id", "before_id"}   # the scan sees
    checked = 0
    for pattern, handler, *_ in app.handlers:
        if handler.__name__ in NOT_API_ROUTES:
            continue
        for method in METHODS:
            op = document["paths"].get(openapi_path(pattern), {}).get(method)
            if op is None or method != "get":
                continue
            documented = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
            missing = read.get(handler.__name__, set()) - documented
            assert not missing, f"{handler.__name__} reads {missing} but {pattern} does not document them"
            checked += 1
    assert checked > 10
    for path, from_query in (("/v1/organizations/usage_report/messages", reports.usage_report_from_query),
                             ("/v1/organizations/cost_report", reports.cost_report_from_query)):
        documented = {p["name"] for p in document["paths"][path]["get"]["parameters"]}
        assert documented == _report_params(from_query), path


# -- docs/compatibility.md and the document agree ----------------------------------------------------
# A row of the compatibility tables -> where the document says the same. Rows that only list
# top-level fields (`temperature`, `top_p`) map to MessageRequest by themselves.
ROW_LOCATIONS = {
    '`messages[].role: "system"`': ["MessageParam/role=system"],
    "`tools` (custom)": ["MessageRequest/tools", "ToolParam", "ToolParam/type=custom"],
    "`tools` (server tools: `web_search`, `code_execution`, ...)": ["MessageRequest!server_tools"],
    "`tool_choice: auto`": ["ToolChoice/type=auto"],
    "`thread` (beta `message-threads-2026-08-12`)": ["MessageRequest/thread"],
    "`tool_choice: any` / `tool`": ["ToolChoice/type=any", "ToolChoice/type=tool"],
    "`tool_choice: none`": ["ToolChoice/type=none"],
    "`tool_choice.disable_parallel_tool_use`": ["ToolChoice/disable_parallel_tool_use"],
    "`thinking: enabled` + `budget_tokens`": ["ThinkingConfig/type=enabled", "ThinkingConfig/budget_tokens"],
    "`thinking: adaptive`": ["ThinkingConfig/type=adaptive"],
    "`thinking: disabled` / absent": ["ThinkingConfig/type=disabled", "MessageRequest/thinking"],
    "`thinking.display`": ["ThinkingConfig/display"],
    "`output_config.effort`": ["OutputConfig/effort"],
    "`output_config.effort` absent": ["OutputConfig/effort"],
    "`output_config.format` (`json_schema`), beta `output_format`":
        ["OutputConfig/format", "MessageRequest/output_format", "JsonSchemaFormat"],
    "`cache_control` (top level)": ["MessageRequest/cache_control"],
    "Prefill (last message from the assistant)": ["MessageRequest!prefill"],
    "`text`": ["TextBlockParam"],
    "`image`, base64": ["ImageBlockParam", "Base64ImageSource"],
    "`image` / `document`, `url` source": ["URLSource"],
    "`image` / `document`, `file` source": ["FileSource"],
    "`document`, base64 PDF / `text` / `content` source":
        ["DocumentBlockParam", "Base64PDFSource", "PlainTextSource", "ContentBlockSource"],
    "`search_result`": ["SearchResultBlockParam"],
    "`tool_use` (earlier assistant turn)": ["ToolUseBlockParam"],
    "`tool_result`": ["ToolResultBlockParam"],
    "`thinking`, `redacted_thinking` (earlier assistant turn)":
        ["ThinkingBlockParam", "RedactedThinkingBlockParam"],
    "`server_tool_use`, `web_search_tool_result` (earlier turns)":
        ["ServerToolUseBlockParam", "WebSearchToolResultBlockParam"],
}


def compatibility_rows(section: str) -> list[tuple[str, str]]:
    text = (ROOT / "docs" / "compatibility.md").read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and line.startswith("|") and not set(cells[0]) <= {"-"} and cells[0] != "Field" \
                and cells[0] != "Block":
            rows.append((cells[0], cells[1].split()[0]))
    return rows


def _locations(label: str) -> list[str]:
    if label in ROW_LOCATIONS:
        return ROW_LOCATIONS[label]
    if label.startswith("`tools[].strict`"):
        return [f"ToolParam/{name}" for name in validation.IGNORED_TOOL_FIELDS]
    names = re.findall(r"`([^`]+)`", label)
    assert names and re.sub(r"`[a-z_]+`|,|\s", "", label) == "", \
        f"docs/compatibility.md row {label!r}: add where the document says it to ROW_LOCATIONS"
    return [f"MessageRequest/{name}" for name in names]


@pytest.mark.parametrize("section", ["Request fields", "Content blocks"])
def test_support_markers_agree_with_docs_compatibility(document, section):
    marked = dict(iter_support(document))
    refused = document["components"]["schemas"]["MessageRequest"][REFUSED_LIST]
    rows = compatibility_rows(section)
    assert len(rows) > 8
    for label, status in rows:
        for where in _locations(label):
            if "!" in where:
                assert status == "refused" and where.split("!")[1] in refused, (label, where)
                continue
            assert marked.get(where) == status, f"{label}: {where} is {marked.get(where)}, the doc says {status}"


# -- answers match the response schemas ------------------------------------------------------------------
async def test_answers_match_the_documented_schemas(jp_fetch, claude_app, cli_env, sdk_base, token):
    doc = json.loads((await jp_fetch("v1", "openapi.json")).body)
    for path, schema in (("v1/models", "ModelList"), ("v1/models/opus", "Model"),
                         ("v1/organizations/me", "Organization"), ("v1/usage/quota", "PlanQuota"),
                         ("health", "Health"), ("v1/messages/batches", "MessageBatchList"),
                         ("v1/files", "FileList"), ("claude_nb/cache", "CacheStats"),
                         ("v1/organizations/usage_report/messages?starting_at=2026-01-01T00:00:00Z", "UsageReport"),
                         ("v1/organizations/cost_report?starting_at=2026-01-01T00:00:00Z", "CostReport")):
        resp = await jp_fetch(*path.split("?")[0].split("/"),
                              params=dict([path.split("?")[1].split("=")]) if "?" in path else None)
        assert_matches(doc, schema, json.loads(resp.body))
    count = await jp_fetch("v1", "messages", "count_tokens", method="POST",
                           body=json.dumps({"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}))
    assert_matches(doc, "CountTokensResponse", json.loads(count.body))
    for path, status in (("v1/models/gpt-9", 404), ("v1/messages", 400)):
        resp = await jp_fetch(*path.split("/"), method="POST" if status == 400 else "GET",
                              body="{}" if status == 400 else None, raise_error=False)
        assert resp.code == status
        assert_matches(doc, "ErrorResponse", json.loads(resp.body))
        ref = doc["paths"]["/" + path.replace("gpt-9", "{model_id}")]["post" if status == 400 else "get"]
        assert str(status) in ref["responses"]


# -- the examples run -----------------------------------------------------------------------------------
def _run_python(source: str, cwd: Path) -> str:
    out = io.StringIO()
    before = os.getcwd()          # the examples read and write files beside them
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(source, "<example>", "exec"), {"__name__": "__example__"})
    finally:
        os.chdir(before)
    return out.getvalue()


async def test_every_python_example_runs_against_the_server(jp_fetch, claude_app, cli_env, sdk_base,
                                                           token, tmp_path, monkeypatch, upstream):
    doc = json.loads((await jp_fetch("v1", "openapi.json")).body)
    monkeypatch.setenv("JUPYTER_TOKEN", token)
    (tmp_path / "notes.txt").write_text("remember the milk\n")
    samples = {op["operationId"]: next(s["source"] for s in op["x-codeSamples"] if s["lang"] == "Python")
               for item in doc["paths"].values() for op in item.values()}
    assert len(samples) == sum(len(item) for item in doc["paths"].values())
    ids = {}

    async def run(op_id: str) -> str:
        source = samples[op_id]
        for placeholder, value in (("msgbatch_...", ids.get("batch")), ("file_...", ids.get("file")),
                                   ("msg_...", ids.get("thread"))):
            if value:
                source = source.replace(placeholder, value)
        return await asyncio.to_thread(_run_python, source, tmp_path)

    assert "You said: Say hello in five words." in await run("messages_create")
    assert "You said: Say hello in five words." in await run("chat_completions_create")
    assert int(await run("messages_count_tokens")) > 0
    ids["file"] = (await run("files_upload")).strip()
    assert ids["file"].startswith("file_")
    assert ids["file"] in await run("files_list")
    assert "notes.txt" in await run("files_retrieve")
    await run("files_content")
    assert (tmp_path / "copy.bin").read_text() == "remember the milk\n"
    await run("files_delete")
    ids["batch"] = (await run("batches_create")).split()[0]
    assert ids["batch"] in await run("batches_list")
    for _ in range(600):
        if (await run("batches_retrieve")).strip() == "ended":
            break
        await asyncio.sleep(0.1)
    assert "first succeeded" in await run("batches_results")
    assert '"custom_id":"first"' in await run("batches_results_so_far")
    assert "'answered': 1" in await run("batches_progress")
    await run("batches_delete")
    # another one, to cancel: its answer streams slowly, so it cannot end before the cancel arrives
    upstream.push(Reply.text("slow " * 80, delay_per_chunk=0.1))
    ids["batch"] = (await run("batches_create")).split()[0]
    assert (await run("batches_cancel")).strip() in ("canceling", "ended")
    for op_id in ("models_list", "models_retrieve", "usage_report", "cost_report", "organization_me",
                  "usage_quota", "health", "health_v1", "metrics", "session_delete", "openapi",
                  "cache_stats", "cache_lookup", "cache_clear"):
        assert (await run(op_id)).strip(), op_id
    threaded = await jp_fetch("v1", "messages", method="POST", body=json.dumps(
        {**openapi.MESSAGE_EXAMPLE, "thread": {"type": "create"}}))
    ids["thread"] = json.loads(threaded.body)["id"]
    assert "thread_deleted" in await run("thread_delete")
    compile(samples["docs_page"], "<example>", "exec")      # opens a browser: compiled, not run
    curl = [s["source"] for item in doc["paths"].values() for op in item.values()
            for s in op["x-codeSamples"] if s["label"] == "curl"]
    assert all(c.startswith("curl ") and "$JUPYTER_TOKEN" in c for c in curl)


def test_the_builder_is_pure():
    source = (ROOT / "claude_nb" / "protocol" / "openapi.py").read_text()
    imports = {n.module or "" for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom)}
    imports |= {a.name for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imports if m.split(".")[0] in ("tornado", "jupyter_server", "server_ext")}
