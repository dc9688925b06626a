"""Auth: every /v1 route (read from the app's own route table, so new ones are covered as they
land) refuses missing, wrong and empty keys with a 401 envelope; browser cookies need XSRF on
POST; the server's token never appears in a log line, an error message, or the CLI's
environment and command line."""
from __future__ import annotations

import base64
import json
import logging
import re
import secrets

import pytest
from tornado import web

from tests.support.fake_upstream import Reply
from tests.support.reliability import assert_envelope, assert_error_for, body
from server_ext.handlers.status import HealthHandler, UnknownRouteHandler

HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def v1_routes(claude_app) -> list[tuple[str, str, type]]:
    """(method, route, handler class) for every /v1 route the extension serves."""
    out = []
    for spec in claude_app.handlers:
        pattern, handler = spec[0], spec[1]
        if not (pattern == "/v1" or pattern.startswith(("/v1/", "/v1("))):
            continue
        if handler is UnknownRouteHandler:
            pattern = "/v1/no/such/route"
        route = re.sub(r"\(\?P<\w+>[^)]*\)", "x", pattern).lstrip("/")
        assert not re.search(r"[()\[\]*+?$^\\]", route), f"cannot fill in route {pattern}"
        for method in HTTP_METHODS:
            if getattr(handler, method) is not getattr(web.RequestHandler, method):
                out.append((method.upper(), route, handler))
    return out


def bad_credentials(token: str) -> dict[str, dict]:
    wrong = "sk-ant-" + secrets.token_hex(16)
    return {
        "missing": {},
        "empty_x_api_key": {"x-api-key": ""},
        "wrong_x_api_key": {"x-api-key": wrong},
        "empty_bearer": {"Authorization": "Bearer "},
        "bare_bearer": {"Authorization": "Bearer"},
        "wrong_bearer": {"Authorization": "Bearer " + wrong},
        "wrong_token_scheme": {"Authorization": "token " + wrong},
        "basic_scheme": {"Authorization": "Basic " + base64.b64encode(f"x:{token}".encode()).decode()},
        "token_prefix": {"x-api-key": token[:-1]},
        "token_with_suffix": {"x-api-key": token + "0"},
        "token_upper": {"x-api-key": token.upper()},
        "wrong_in_url": {"__query__": "token=" + wrong},
    }


async def test_every_v1_route_refuses_bad_keys(api, claude_app, upstream, token):
    routes = v1_routes(claude_app)
    assert {("POST", "v1/messages"), ("GET", "v1/models")} <= {(m, r) for m, r, _ in routes}
    refused = 0
    for method, route, handler in routes:
        for name, headers in bad_credentials(token).items():
            headers = dict(headers)
            query = headers.pop("__query__", None)
            path = route + ("?" + query if query else "")
            payload = body("x") if method != "GET" else None
            resp = await api.request(method, path, payload, headers=headers, auth=False)
            where = f"{method} {route} with {name}"
            if handler is HealthHandler:
                # by design: anyone may ask whether it is up, and learns nothing else
                assert resp.status == 200 and resp.json() == {"status": "ok"}, where
                continue
            assert resp.status == 401, (where, resp.status, resp.body[:200])
            error = assert_error_for(route, resp.json(), error_type="authentication_error")
            assert resp.headers["x-should-retry"] == "false", where
            for value in headers.values():       # the key presented is not echoed back
                if len(value) > 12:
                    assert value.split()[-1] not in resp.body.decode(), where
            assert token not in resp.body.decode()
            assert "api key" in error["message"].lower() or "x-api-key" in error["message"]
            refused += 1
    assert upstream.requests == []
    print(f"\nauth: {refused} bad-credential requests refused over {len(routes)} /v1 routes")


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
async def test_unknown_v1_paths_are_404_envelopes(api, claude_app, token, method):
    """What no route serves (an endpoint this server lacks, a typo) is Anthropic's 404, not
    Jupyter's HTML page (which SDKs cannot parse and which embeds the token)."""
    for route in ("v1/complete", "v1/messages/extra/path", f"v1/nothing?token={token}"):
        resp = await api.request(method, route, {"x": 1} if method != "GET" else None)
        assert resp.status == 404, (method, route, resp.body[:200])
        error = assert_envelope(resp.json(), error_type="not_found_error")
        assert token not in resp.body.decode()
        assert "not an endpoint" in error["message"]


@pytest.mark.parametrize("style", ["x-api-key", "bearer", "token", "query"])
async def test_the_right_token_in_every_style_is_accepted(api, claude_app, token, style):
    headers = {"x-api-key": {"x-api-key": token}, "bearer": {"Authorization": "Bearer " + token},
               "token": {"Authorization": "token " + token}, "query": {}}[style]
    route = "v1/models" + (f"?token={token}" if style == "query" else "")
    resp = await api.get(route, headers=headers, auth=False)
    assert resp.status == 200, resp.body


async def login_cookie(api) -> str:
    """The Jupyter login cookie a browser holds after visiting with the token."""
    resp = await api.get("v1/models")
    cookies = {k: v for k, v in resp.cookies.items() if k.startswith("username-")}
    assert cookies, resp.headers
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


async def test_cookie_post_without_xsrf_is_refused(api, claude_app, cli_env, upstream):
    cookie = await login_cookie(api)
    # the cookie alone is a login: reads work
    resp = await api.get("v1/models", headers={"Cookie": cookie}, auth=False)
    assert resp.status == 200
    # a cross-site form could POST with it: refused without the XSRF token
    resp = await api.post("v1/messages", body("x"), headers={"Cookie": cookie}, auth=False)
    assert resp.status == 403, resp.body
    assert_envelope(resp.json(), error_type="permission_error")
    xsrf = secrets.token_hex(16)
    resp = await api.post("v1/messages", body("x"), auth=False,
                          headers={"Cookie": f"{cookie}; _xsrf={xsrf}", "X-XSRFToken": secrets.token_hex(16)})
    assert resp.status == 403, resp.body
    assert_envelope(resp.json(), error_type="permission_error")
    resp = await api.post("v1/messages/count_tokens",
                          {"model": "sonnet", "messages": [{"role": "user", "content": "x"}]},
                          headers={"Cookie": cookie}, auth=False)
    assert resp.status == 403
    assert upstream.message_requests == []
    # the same cookie with the XSRF token (what JupyterLab's own requests carry) is accepted
    resp = await api.post("v1/messages", body("from the browser"), auth=False,
                          headers={"Cookie": f"{cookie}; _xsrf={xsrf}", "X-XSRFToken": xsrf})
    assert resp.status == 200, resp.body
    assert resp.json()["content"][0]["text"] == "You said: from the browser"


async def test_cookie_post_from_another_origin_is_refused(api, claude_app, upstream):
    cookie = await login_cookie(api)
    xsrf = secrets.token_hex(16)
    resp = await api.post("v1/messages", body("x"), auth=False,
                          headers={"Cookie": f"{cookie}; _xsrf={xsrf}", "X-XSRFToken": xsrf,
                                   "Origin": "http://evil.example"})
    assert 400 <= resp.status < 500 and resp.status != 200
    assert_envelope(resp.json())
    assert upstream.message_requests == []


async def test_forged_cookie_is_401(api, claude_app, upstream):
    resp = await api.post("v1/messages", body("x"), auth=False,
                          headers={"Cookie": "username-127-0-0-1-8888=2|1:0|10:1|forged"})
    assert resp.status == 401
    assert_envelope(resp.json(), error_type="authentication_error")


async def test_wrong_host_is_403_not_a_key_problem(api, claude_app, upstream):
    """Jupyter's DNS-rebinding guard refuses unknown Host names: the client is told that,
    not sent hunting for a token problem."""
    resp = await api.post("v1/messages", body("x"), headers={"Host": "rebind.example"})
    assert resp.status == 403
    error = assert_envelope(resp.json(), error_type="permission_error")
    assert "rebind.example" in error["message"] and "allow_remote_access" in error["message"]


async def test_token_never_in_logs_errors_or_the_cli(api, claude_app, cli_env, upstream, fake_cli,
                                                     token, caplog, tmp_path, monkeypatch):
    """Requests of every kind, good and bad, through every auth style, including server-side
    failures (which make Jupyter log request headers): the token shows up nowhere."""
    caplog.set_level(logging.DEBUG)
    answers = []
    for headers, query in [({"x-api-key": token}, ""), ({"Authorization": "Bearer " + token}, ""),
                           ({"Authorization": "token " + token}, ""), ({}, f"?token={token}")]:
        answers.append(await api.post("v1/messages" + query, body("hi"), headers=headers, auth=False))
        answers.append(await api.post("v1/messages" + query, raw=b"{broken", headers=headers, auth=False))
        answers.append(await api.get("v1/models/no-such-model" + query, headers=headers, auth=False))
        answers.append(await api.get("v1/no-such-route" + query, headers=headers, auth=False))
    answers.append(await api.post("v1/messages", body("x"), auth=False, headers={"x-api-key": "nope"}))
    upstream.push(Reply.error(529, "overloaded_error", "busy"), Reply.error(500, "api_error", "boom"))
    answers.append(await api.post("v1/messages", body("x")))
    answers.append(await api.post("v1/messages", body("x", stream=True)))
    upstream.push(Reply.text("cut me " * 20, drop_after_chars=10))
    answers.append(await api.post("v1/messages", body("x", stream=True)))
    # a CLI that fails and prints its whole environment and command line to stderr
    dump = tmp_path / "cli-dump.json"
    monkeypatch.setenv("FAKE_CLAUDE_DUMP", str(dump))
    fake_cli("env_dump")
    answers.append(await api.post("v1/messages", body("x")))
    answers.append(await api.post("v1/messages", body("x", stream=True)))

    statuses = sorted({a.status for a in answers})
    assert 200 in statuses and 401 in statuses and 500 in statuses and 529 in statuses, statuses
    for resp in answers:
        assert token not in resp.body.decode("utf-8", "replace")
        assert token not in json.dumps(resp.headers)
    seen = json.loads(dump.read_text())
    assert token not in json.dumps(seen), "the server's token reached the CLI"
    assert "ANTHROPIC_BASE_URL" in seen["env"]           # the CLI did get the server's environment
    log_text = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    assert "500 POST" in log_text or "529 POST" in log_text     # the failures were logged...
    assert token not in log_text                                # ...without the token
