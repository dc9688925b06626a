"""Fuzzing every route with hypothesis: generated bodies, headers, query strings, path ids and
methods. Whatever arrives, the answer is never a 5xx and never a hang: a 2xx, or a 4xx in the
route's error shape (Anthropic's; OpenAI's on its route). The server keeps serving afterwards.

Hypothesis drives the cases from a worker thread; each request runs on the test's event loop,
which also serves the Jupyter server (so the loop is never blocked). Example counts stay modest
for a 2-core CI machine; the totals are printed (run with -s) and kept in FUZZ_COUNTS.
"""
from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import string
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import proctable
from tests.support.reliability import assert_error_for, body, sse_events

FUZZ_COUNTS: collections.Counter = collections.Counter()

# Modest budgets for CI: the cheap strategies never start a CLI; the near-valid one mostly
# does. CLAUDE_NB_FUZZ_SCALE=10 runs ten times as many (a longer hunt on a quiet machine).
SCALE = float(os.environ.get("CLAUDE_NB_FUZZ_SCALE", "1"))
CHEAP = max(1, int(150 * SCALE))
WITH_CLI = max(1, int(30 * SCALE))
# The same cases every run by default, so a red CI always means a change broke something;
# CLAUDE_NB_FUZZ_RANDOM=1 draws new ones each run (a hunt: what it finds becomes a fixed test).
RANDOM = os.environ.get("CLAUDE_NB_FUZZ_RANDOM") == "1"
FUZZ_SETTINGS = dict(deadline=None, database=None, derandomize=not RANDOM,
                     suppress_health_check=list(HealthCheck))

KNOWN_KEYS = ["model", "messages", "max_tokens", "system", "stream", "role", "content", "type",
              "text", "tools", "name", "input_schema", "tool_choice", "thinking", "budget_tokens",
              "requests", "custom_id", "params", "source", "data", "media_type", "file_id",
              "stop_sequences", "metadata", "user_id", "temperature", "top_p", "top_k",
              "output_config", "format", "schema", "effort", "id", "input", "tool_use_id",
              "is_error", "signature", "thinking", "cache_control", "n", "stop", "tool_calls",
              "function", "arguments", "response_format", "max_completion_tokens", "url",
              "stream_options", "reasoning_effort", "image_url", "detail", "json_schema"]

json_keys = st.sampled_from(KNOWN_KEYS) | st.text(max_size=12)
json_leaves = (st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70)
               | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40)
               | st.sampled_from(["sonnet", "haiku", "opus", "user", "assistant", "system", "text",
                                  "image", "tool_use", "tool_result", "base64", "file", "enabled",
                                  "adaptive", "auto", "any", "tool", "none", "json_schema", "object",
                                  "-", "--help", "../../etc/passwd", "\x00", "file_000"]))
json_values = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(json_keys, inner, max_size=5), max_leaves=25)


@st.composite
def content_blocks(draw):
    kind = draw(st.sampled_from(["text", "image", "document", "tool_use", "tool_result",
                                 "thinking", "redacted_thinking", "bogus"]))
    block = {"type": kind}
    for key in draw(st.lists(st.sampled_from(["text", "source", "id", "name", "input",
                                              "tool_use_id", "content", "thinking", "signature",
                                              "data", "cache_control", "is_error"]), max_size=4)):
        block[key] = draw(json_values)
    return block


@st.composite
def mutated_messages(draw, route: str):
    """A valid Messages (or count_tokens) body with one to three parts replaced."""
    request = body("fuzz " + draw(st.text(max_size=20)))
    if route.endswith("count_tokens"):
        request.pop("max_tokens")
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["top", "message", "block", "drop"]))
        if where == "top":
            request[draw(json_keys)] = draw(json_values)
        elif where == "message" and isinstance(request.get("messages"), list) \
                and request["messages"] and isinstance(request["messages"][0], dict):
            request["messages"][0][draw(st.sampled_from(["role", "content", "extra"]))] = draw(json_values)
        elif where == "block":
            request["messages"] = [{"role": draw(st.sampled_from(["user", "assistant", "system"])),
                                    "content": draw(st.lists(content_blocks(), min_size=1, max_size=3))}]
        elif request:
            request.pop(draw(st.sampled_from(sorted(request))), None)
    return request


PNG_1PX = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
texts = st.text(min_size=1, max_size=60)
tool_names = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_-]{0,20}", fullmatch=True)


@st.composite
def plausible_messages(draw):
    """Requests a careful client might send: every field within its documented range, in
    random combinations, so most pass validation and run through the real CLI."""
    model = draw(st.sampled_from(["sonnet", "haiku", "opus", "claude-sonnet-5-5", "claude-haiku-4-5-20251001",
                                  "claude-opus-4-8", "claude-sonnet-4-5-20250929"]))
    max_tokens = draw(st.integers(1, 64_000))
    request = {"model": model, "max_tokens": max_tokens}
    tools = []
    if draw(st.booleans()):
        names = draw(st.lists(tool_names, min_size=1, max_size=3, unique_by=str.lower))
        tools = [{"name": n, "description": draw(st.text(max_size=40)),
                  "input_schema": {"type": "object", "properties": {
                      draw(tool_names): {"type": draw(st.sampled_from(["string", "integer", "boolean"]))}}}}
                 for n in names]
        request["tools"] = tools
        request["tool_choice"] = draw(st.sampled_from(
            [{"type": "auto"}, {"type": "any"}, {"type": "none"}, {"type": "tool", "name": names[0]},
             {"type": "auto", "disable_parallel_tool_use": True}]))
    turns = []
    if tools and draw(st.booleans()):
        turns += [{"role": "user", "content": draw(texts)},
                  {"role": "assistant", "content": [
                      {"type": "text", "text": draw(texts)},
                      {"type": "tool_use", "id": "toolu_01", "name": tools[0]["name"], "input": {}}]},
                  {"role": "user", "content": [
                      {"type": "tool_result", "tool_use_id": "toolu_01", "content": draw(st.text(max_size=40)),
                       "is_error": draw(st.booleans())}]}]
    elif draw(st.booleans()):
        turns += [{"role": "user", "content": draw(texts)}, {"role": "assistant", "content": draw(texts)}]
    last = [{"type": "text", "text": draw(texts)}]
    if draw(st.integers(0, 4)) == 0:
        last.append({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_1PX}})
    if draw(st.integers(0, 4)) == 0:
        last.append({"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                                    "data": draw(st.text(max_size=80))}})
    if turns and turns[-1]["role"] == "user":
        turns[-1]["content"] = (turns[-1]["content"] if isinstance(turns[-1]["content"], list)
                                else [{"type": "text", "text": turns[-1]["content"]}]) + last
    else:
        turns.append({"role": "user", "content": last})
    request["messages"] = turns
    optional = {
        "system": st.one_of(texts, st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": texts}),
                                            min_size=1, max_size=2)),
        "temperature": st.floats(0, 1), "top_p": st.floats(0, 1), "top_k": st.integers(0, 500),
        "stop_sequences": st.lists(texts, max_size=3),
        "metadata": st.fixed_dictionaries({"user_id": st.text(max_size=30)}),
        "thinking": st.one_of(st.just({"type": "disabled"}), st.just({"type": "adaptive"}),
                              st.integers(1024, 4096).map(lambda b: {"type": "enabled", "budget_tokens": b})),
        "output_config": st.fixed_dictionaries({"effort": st.sampled_from(["low", "medium", "high"])}),
        "service_tier": st.sampled_from(["auto", "standard_only"]),
    }
    for key in draw(st.lists(st.sampled_from(sorted(optional)), unique=True, max_size=4)):
        request[key] = draw(optional[key])
    thinking = request.get("thinking") or {}
    if thinking.get("type") == "enabled" and request["max_tokens"] <= thinking["budget_tokens"]:
        request["max_tokens"] = thinking["budget_tokens"] + draw(st.integers(1, 4000))
    return request


@st.composite
def mutated_chat(draw):
    request = {"model": "sonnet", "messages": [{"role": "user", "content": "fuzz"}]}
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            request[draw(json_keys)] = draw(json_values)
        else:
            request["messages"] = draw(st.lists(st.dictionaries(
                st.sampled_from(["role", "content", "name", "tool_calls", "tool_call_id"]),
                json_values, max_size=4), max_size=3))
    return request


def routes_of(claude_app) -> list[tuple[str, str]]:
    """(METHOD, route) for every route the extension serves, ids filled with a dummy."""
    from tornado import web
    out = []
    for spec in claude_app.handlers:
        pattern, handler = spec[0], spec[1]
        route = re.sub(r"\(\?P<\w+>[^)]*\)", "x", pattern).replace("(?:/.*)?", "/unknown").lstrip("/")
        for method in ("get", "post", "put", "patch", "delete"):
            if getattr(handler, method) is not getattr(web.RequestHandler, method):
                out.append((method.upper(), route))
    return out


class Fuzzer:
    """Runs a hypothesis test in a worker thread against the server on the test's loop."""

    def __init__(self, api):
        self.api, self.loop = api, None

    def call(self, strategy: str, method: str, route: str, payload=None, *, raw=None,
             headers=None, auth=True):
        FUZZ_COUNTS[strategy] += 1
        future = asyncio.run_coroutine_threadsafe(
            self.api.request(method, route, payload, raw=raw, headers=headers, auth=auth,
                             timeout=90), self.loop)
        resp = future.result(120)       # a hang fails here
        check(method, route, resp)
        return resp

    async def run(self, test):
        self.loop = asyncio.get_running_loop()
        await self.loop.run_in_executor(None, test)


def check(method: str, route: str, resp):
    where = f"{method} {route[:200]}"
    assert resp.status is not None, f"{where}: connection closed without an answer"
    assert resp.status < 500, f"{where}: {resp.status} {resp.body[:400]!r}"
    if resp.status >= 400 and method != "HEAD":
        assert_error_for(route, resp.json())
    ctype = resp.headers.get("content-type", "")
    if resp.status == 200 and ctype.startswith("text/event-stream"):
        for name, data in sse_events(resp.body):
            if name == "error" or (isinstance(data, dict) and "error" in data):
                error = data.get("error") if isinstance(data, dict) else None
                kind = error.get("type") if isinstance(error, dict) else None
                assert kind not in ("api_error", "overloaded_error", "timeout_error", None), \
                    f"{where}: a server-side failure after the 200: {data}"


@pytest.fixture
def fuzzer(api, claude_app, cli_env, upstream):
    return Fuzzer(api)


async def finish(api, claude_app, strategy, caplog):
    """No server-side exception was logged; the server still serves, every slot came back,
    nothing is left running."""
    crashes = [r.getMessage()[:300] for r in caplog.records
               if r.exc_info or "Uncaught exception" in r.getMessage() or "Traceback" in r.getMessage()]
    assert not crashes, crashes
    resp = await api.post("v1/messages", body("after the fuzz"))
    assert resp.status == 200 and resp.json()["content"][0]["text"] == "You said: after the fuzz"
    assert claude_app.bridge.limiter.active == 0
    assert not await proctable.settle(proctable.running_cli, timeout=30)
    print(f"\nfuzz {strategy}: {FUZZ_COUNTS[strategy]} cases")


# -- bodies ---------------------------------------------------------------------------------

POST_ROUTES = ["v1/messages", "v1/messages/count_tokens", "v1/messages/batches",
               "v1/chat/completions", "v1/files", "v1/messages/batches/msgbatch_x/cancel"]


async def test_fuzz_arbitrary_json_bodies(fuzzer, api, claude_app, caplog):
    @settings(max_examples=CHEAP, **FUZZ_SETTINGS)
    @given(route=st.sampled_from(POST_ROUTES), payload=json_values)
    def case(route, payload):
        fuzzer.call("json_bodies", "POST", route, raw=json.dumps(payload).encode())

    await fuzzer.run(case)
    await finish(api, claude_app, "json_bodies", caplog)


async def test_fuzz_raw_bytes_bodies(fuzzer, api, claude_app, caplog):
    @settings(max_examples=CHEAP, **FUZZ_SETTINGS)
    @given(route=st.sampled_from(POST_ROUTES),
           raw=st.binary(max_size=300) | st.text(max_size=200).map(str.encode)
           | st.sampled_from([b"{", b"[" * 10_000, b'{"a":NaN}', b'"\\ud800"', b"\xef\xbb\xbf{}",
                              b'{"model": "sonnet", "messages": [}', b"\x00\x00"]),
           content_type=st.sampled_from(["application/json", "text/plain", "multipart/form-data",
                                         "multipart/form-data; boundary=x", "", "application/x-www-form-urlencoded"]))
    def case(route, raw, content_type):
        headers = {"Content-Type": content_type} if content_type else {}
        fuzzer.call("raw_bodies", "POST", route, raw=raw, headers=headers)

    await fuzzer.run(case)
    await finish(api, claude_app, "raw_bodies", caplog)


async def test_fuzz_near_valid_requests_through_the_real_cli(fuzzer, api, claude_app, upstream, caplog):
    """Plausible requests (every field within range, random combinations) and valid requests
    with parts replaced: most run the real CLI."""
    statuses = collections.Counter()

    @settings(max_examples=WITH_CLI, **FUZZ_SETTINGS)
    @given(request=st.one_of(plausible_messages(), plausible_messages(), mutated_messages("v1/messages"),
                             mutated_chat().map(lambda c: ("chat", c))),
           stream=st.booleans())
    def case(request, stream):
        route = "v1/messages"
        if isinstance(request, tuple):
            route, request = "v1/chat/completions", request[1]
        if stream and isinstance(request, dict):
            request = {**request, "stream": True}
        resp = fuzzer.call("near_valid_cli", "POST", route, request)
        statuses[resp.status] += 1

    await fuzzer.run(case)
    print(f"\nnear-valid statuses: {dict(statuses)}; upstream requests: {len(upstream.message_requests)}")
    await finish(api, claude_app, "near_valid_cli", caplog)


async def test_fuzz_near_valid_count_tokens(fuzzer, api, claude_app, caplog):
    @settings(max_examples=CHEAP, **FUZZ_SETTINGS)
    @given(request=mutated_messages("v1/messages/count_tokens"))
    def case(request):
        fuzzer.call("near_valid_count", "POST", "v1/messages/count_tokens", request)

    await fuzzer.run(case)
    await finish(api, claude_app, "near_valid_count", caplog)


# -- headers, queries, paths, methods -------------------------------------------------------

TOKEN_CHARS = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
header_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                               blacklist_characters="\x7f"), max_size=120)
header_names = st.sampled_from(["Authorization", "x-api-key", "anthropic-version",
                                "anthropic-beta", "Content-Type", "Cookie", "Origin", "Referer",
                                "Accept", "Accept-Encoding", "X-XSRFToken", "User-Agent",
                                "x-stainless-retry-count", "Idempotency-Key", "Range",
                                "If-None-Match", "Expect"]) \
    | st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=24).filter(
        lambda n: n.lower() not in ("content-length", "transfer-encoding", "host", "connection"))


async def test_fuzz_headers_on_every_route(fuzzer, api, claude_app, token, caplog):
    routes = routes_of(claude_app)

    @settings(max_examples=CHEAP, **FUZZ_SETTINGS)
    @given(target=st.sampled_from(routes),
           auth=st.sampled_from(["x-api-key", "bearer", "wrong", "none"]),
           extra=st.dictionaries(header_names, header_values, max_size=6))
    def case(target, auth, extra):
        method, route = target
        headers = {"x-api-key": {"x-api-key": token}, "bearer": {"Authorization": "Bearer " + token},
                   "wrong": {"x-api-key": "sk-wrong"}, "none": {}}[auth]
        headers.update(extra)
        payload = b'{"model": "sonnet"}' if method in ("POST", "PUT", "PATCH") else b""
        fuzzer.call("headers", method, route, raw=payload, headers=headers, auth=False)

    await fuzzer.run(case)
    await finish(api, claude_app, "headers", caplog)


QUERY_KEYS = ["limit", "after_id", "before_id", "page", "starting_at", "ending_at", "bucket_width",
              "group_by[]", "group_by", "models[]", "lifecycle", "ids[]", "ids", "beta", "fresh",
              "api_key_ids[]", "token"]
query_values = st.one_of(st.integers(-10 ** 12, 10 ** 12).map(str), st.text(max_size=30),
                         st.sampled_from(["", "1d", "1h", "1m", "7d", "model", "api_key_id",
                                          "2026-01-01T00:00:00Z", "2026-13-45T99:99:99Z", "nan",
                                          "inf", "-1", "0", "1e309", "true", "../x", "%00"]))


async def test_fuzz_query_strings_on_get_routes(fuzzer, api, claude_app, caplog):
    gets = [r for m, r in routes_of(claude_app) if m == "GET"]

    @settings(max_examples=CHEAP, **FUZZ_SETTINGS)
    @given(route=st.sampled_from(gets),
           query=st.lists(st.tuples(st.sampled_from(QUERY_KEYS) | st.text(max_size=10), query_values),
                          max_size=6))
    def case(route, query):
        qs = "&".join(f"{quote(k, safe='[]')}={quote(v, safe='')}" for k, v in query)
        fuzzer.call("queries", "GET", route + ("?" + qs if qs else ""))

    await fuzzer.run(case)
    await finish(api, claude_app, "queries", caplog)


ID_ROUTES = ["v1/models/{}", "v1/messages/batches/{}", "v1/messages/batches/{}/results",
             "v1/messages/batches/{}/cancel", "v1/files/{}", "v1/files/{}/content"]
HOSTILE_IDS = ["..", "../..", "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
               "%2Fetc%2Fpasswd", "/etc/passwd", "file_x%00", "%00", "file_%00..%2F", "~root",
               ".", "%2e", "file_" + "A" * 5000, "file_ab%2F..%2F..%2Fclaude_nb.sqlite3",
               "msgbatch_%0a%0dSet-Cookie:x=1", "%ff%fe", "%c0%ae%c0%ae", "con", "NUL"]


async def test_fuzz_path_ids(fuzzer, api, claude_app, tmp_path, caplog):
    """Ids in paths: traversal, absolute paths, NUL bytes, encodings, huge ids. Nothing outside
    the store is ever served, nothing is a 5xx."""
    from jupyter_core.paths import jupyter_data_dir
    secret = "SECRET-" + "x1y2z3" * 4
    planted = [tmp_path / "secret.txt"]
    data_dir = jupyter_data_dir()
    for folder in (data_dir, str(claude_app.store.root), str(claude_app.store.files_dir)):
        path = f"{folder}/secret.txt"
        with open(path, "w") as f:
            f.write(secret)
        planted.append(path)
    with open(planted[0], "w") as f:
        f.write(secret)
    hostile = HOSTILE_IDS + [quote(str(p), safe="") for p in planted] + ["..%2Fsecret.txt", "secret.txt"]
    methods = {"v1/messages/batches/{}/cancel": ["POST"], "v1/files/{}": ["GET", "DELETE"],
               "v1/messages/batches/{}": ["GET", "DELETE"]}

    @settings(max_examples=CHEAP, **FUZZ_SETTINGS)
    @given(template=st.sampled_from(ID_ROUTES),
           ident=st.sampled_from(hostile) | st.text(min_size=1, max_size=80).map(lambda t: quote(t, safe="")),
           pick=st.integers(0, 1))
    def case(template, ident, pick):
        options = methods.get(template, ["GET"])
        method = options[pick % len(options)]
        resp = fuzzer.call("path_ids", method, template.format(ident))
        assert secret.encode() not in resp.body
        assert b"root:x:0:0" not in resp.body
        assert b"SQLite format" not in resp.body

    await fuzzer.run(case)
    await finish(api, claude_app, "path_ids", caplog)


async def test_fuzz_methods_on_every_route(fuzzer, api, claude_app, caplog):
    paths = sorted({r for _, r in routes_of(claude_app)}) + ["v1", "v1/", "v1/messages/", "v1//messages"]

    @settings(max_examples=CHEAP, **FUZZ_SETTINGS)
    @given(route=st.sampled_from(paths),
           method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]))
    def case(route, method):
        fuzzer.call("methods", method, route, raw=b"{}" if method in ("POST", "PUT", "PATCH") else b"")

    await fuzzer.run(case)
    await finish(api, claude_app, "methods", caplog)
