"""Limits and malformed input: oversized bodies and headers, bytes that are not UTF-8, JSON
that is too deep or not JSON at all (NaN, Infinity, lone surrogates), text the CLI's command
line cannot carry. Each is refused with a 4xx in Anthropic's envelope (or, where Tornado itself
refuses before any handler runs, a 4xx and a closed connection); none reaches the upstream;
the server keeps serving."""
from __future__ import annotations

import json

import pytest

from claude_nb.protocol.validation import MAX_MESSAGE_BYTES
from tests.support.reliability import assert_envelope, body

MESSAGES = "v1/messages"
COUNT = "v1/messages/count_tokens"


async def still_serving(api):
    resp = await api.get("v1/models")
    assert resp.status == 200 and resp.json()["data"]


def count_body(prompt: str = "x") -> dict:
    return {k: v for k, v in body(prompt).items() if k != "max_tokens"}


def padded(size: int, route: str = MESSAGES) -> bytes:
    """A valid body for `route` of exactly `size` bytes (the padding is the prompt)."""
    make = body if route == MESSAGES else count_body
    base = json.dumps(make("")).encode()
    pad = size - len(base)
    raw = json.dumps(make("x" * pad)).encode()
    assert len(raw) == size
    return raw


@pytest.mark.parametrize("route", [MESSAGES, COUNT])
async def test_body_over_32_mb_is_413_request_too_large(api, claude_app, upstream, route):
    """Just over the limit: Anthropic's 413 (Tornado's own body limit, 512 MB by default in
    Jupyter, does not cut it first with a bare 400)."""
    resp = await api.post(route, raw=padded(MAX_MESSAGE_BYTES + 1, route))
    assert resp.status == 413
    error = assert_envelope(resp.json(), error_type="request_too_large")
    assert "32 MB" in error["message"]
    assert claude_app.serverapp.max_body_size > MAX_MESSAGE_BYTES
    assert upstream.message_requests == []
    await still_serving(api)


async def test_body_at_32_mb_is_accepted(api, claude_app, upstream):
    """Exactly at the limit the body is read and counted (count_tokens: no CLI run needed)."""
    resp = await api.post(COUNT, raw=padded(MAX_MESSAGE_BYTES, COUNT))
    assert resp.status == 200, resp.body[:300]
    assert resp.json()["input_tokens"] > 1_000_000


async def test_body_beyond_the_server_limit_is_refused_not_read(api, claude_app):
    """A Content-Length beyond Jupyter's max_body_size: Tornado refuses before any handler (a
    bare 400 and a closed connection; no envelope is possible there) and reads nothing."""
    resp = await api.post(MESSAGES, raw=b"", headers={"Content-Length": str(2 ** 40)})
    assert resp.status is None or 400 <= resp.status < 500
    await still_serving(api)


@pytest.mark.parametrize("size", [8 * 1024, 60 * 1024])
async def test_large_headers_within_tornado_limit_get_envelopes(api, claude_app, upstream, size):
    resp = await api.post(MESSAGES, body("x"), auth=False, headers={"x-api-key": "k" * size})
    assert resp.status == 401
    assert_envelope(resp.json(), error_type="authentication_error")
    resp = await api.post(MESSAGES, raw=b"{", headers={"anthropic-beta": "b" * size})
    assert resp.status == 400
    assert_envelope(resp.json(), error_type="invalid_request_error")
    assert upstream.message_requests == []


@pytest.mark.parametrize("headers", [{"x-api-key": "k" * 200_000},
                                     {f"x-h{i}": "v" * 100 for i in range(2000)}],
                         ids=["one_huge_header", "two_thousand_headers"])
async def test_oversized_headers_are_refused_and_the_server_survives(api, claude_app, upstream, headers):
    """Beyond Tornado's 64 KB header limit the connection is refused before any handler."""
    resp = await api.post(MESSAGES, body("x"), auth=False, headers=headers)
    assert resp.status is None or 400 <= resp.status < 500
    assert upstream.message_requests == []
    await still_serving(api)


@pytest.mark.parametrize("raw,words", [
    (b'{"model": "sonnet", "max_tokens": 5, "messages": [{"role": "user", "content": "\xff\xfe"}]}', "UTF-8"),
    (b"\xc3\x28\xa0\xa1", "UTF-8"),
    (b"\xef\xbb\xbf" + json.dumps(body("x")).encode(), "JSON"),       # a byte-order mark
    (b"[" * 200_000 + b"]" * 200_000, "nested"),
    (b'{"a":' * 5_000 + b"1" + b"}" * 5_000, "nested"),
    (json.dumps({**body("x"), "metadata": json.loads('{"a":' * 70 + "1" + "}" * 70)}).encode(), "nested"),
    (json.dumps(body("x")).replace('"max_tokens": 64', '"max_tokens": NaN').encode(), "NaN"),
    (json.dumps(body("x")).replace('"max_tokens": 64', '"max_tokens": Infinity').encode(), "Infinity"),
    (json.dumps(body("x")).replace('"max_tokens": 64', '"max_tokens": -Infinity').encode(), "Infinity"),
    (json.dumps(body("x", metadata={"user_id": "u"})).replace('"u"', 'NaN').encode(), "NaN"),
    (json.dumps(body("x", tools=[{"name": "t", "input_schema": {"type": "object"}}]))
     .replace('"object"}', '"object", "maximum": Infinity}').encode(), "Infinity"),
    (json.dumps(body("x")).replace('"x"', '"\\ud800"').encode(), "surrogate"),
    (json.dumps(body("x", system="s")).replace('"s"', '"\\udfff tail"').encode(), "surrogate"),
    (b'{"model": "sonnet", "max_tokens": ' + b"9" * 5000 + b', "messages": []}', "JSON"),
    (b"", "empty"),
    (b"   \n\t ", "empty"),
    (b"null", "JSON object"),
    (b'"a string"', "JSON object"),
    (b"[1, 2]", "JSON object"),
    (b'{"model": "sonnet",', "JSON"),
    (b"\x00" * 64, "JSON"),
], ids=["bad_utf8_in_string", "bad_utf8", "bom", "deep_list", "deep_object", "deep_metadata",
        "nan", "infinity", "minus_infinity", "nan_in_metadata", "infinity_in_schema",
        "lone_high_surrogate", "lone_low_surrogate_in_system", "5000_digit_number", "empty",
        "whitespace", "null", "string", "list", "truncated", "nul_bytes"])
@pytest.mark.parametrize("route", [MESSAGES, COUNT])
async def test_malformed_bodies_are_400(api, claude_app, upstream, route, raw, words):
    resp = await api.post(route, raw=raw)
    assert resp.status == 400, resp.body[:300]
    error = assert_envelope(resp.json(), error_type="invalid_request_error")
    assert words.lower() in error["message"].lower()
    assert upstream.message_requests == []


async def test_valid_surrogate_pairs_and_nul_in_user_text_still_work(api, claude_app, cli_env, upstream):
    """The checks refuse only what is broken: an emoji as an escaped pair, and a NUL inside the
    user's text (it travels on stdin as JSON), reach the model intact."""
    raw = json.dumps(body("smile \U0001F600 nul \x00 end"), ensure_ascii=True).encode()
    assert b"\\ud83d\\ude00" in raw
    resp = await api.post(MESSAGES, raw=raw)
    assert resp.status == 200, resp.body
    assert resp.json()["content"][0]["text"] == "You said: smile \U0001F600 nul \x00 end"


@pytest.mark.parametrize("where", ["system", "system_message"])
async def test_nul_in_system_prompt_is_400_not_a_crash(api, claude_app, cli_env, upstream, where):
    """The system prompt rides on the CLI's command line, which cannot hold NUL."""
    if where == "system":
        request = body("x", system="be \x00 brief")
    else:
        request = body("x")
        request["messages"].insert(0, {"role": "system", "content": "be \x00 brief"})
    resp = await api.post(MESSAGES, request)
    assert resp.status == 400, resp.body
    error = assert_envelope(resp.json(), error_type="invalid_request_error")
    assert "NUL" in error["message"]
    assert upstream.message_requests == []
    assert claude_app.bridge.limiter.active == 0


async def test_header_values_that_are_not_ascii_are_harmless(api, claude_app, cli_env, upstream):
    resp = await api.post(MESSAGES, body("x"), headers={"anthropic-version": b"\xff\xfe\x80",
                                                          "anthropic-beta": "caf\xe9".encode("latin-1")})
    assert resp.status == 200, resp.body
    resp = await api.post(MESSAGES, body("x"), auth=False, headers={"x-api-key": b"\xff" + api.token.encode()})
    assert resp.status == 401
    assert_envelope(resp.json(), error_type="authentication_error")


async def test_many_messages_and_huge_strings_are_refused_cleanly(api, claude_app, upstream):
    many = count_body()
    many["messages"] = [{"role": "user", "content": "x"}] * 100_001
    resp = await api.post(COUNT, many)
    assert resp.status == 400
    assert "100000" in assert_envelope(resp.json())["message"]
    resp = await api.post(MESSAGES, {**body("x"), "model": "m" * 1_000_000})
    assert resp.status == 404
    error = assert_envelope(resp.json(), error_type="not_found_error")
    assert len(error["message"]) < 1_100_000
