"""The /v1 API served by the Jupyter server, through the official SDK and raw HTTP."""
import json

import anthropic
import pytest

from tests.support.fake_upstream import Reply
from tests.support.http import post


async def test_messages_json(jp_fetch, cli_env, upstream):
    resp = await post(jp_fetch, "v1/messages", {"model": "sonnet", "max_tokens": 64,
                                                "messages": [{"role": "user", "content": "ping"}]})
    assert resp.code == 200
    body = json.loads(resp.body)
    assert body["content"][0]["text"] == "You said: ping"
    assert body["type"] == "message" and body["role"] == "assistant"
    assert resp.headers["request-id"].startswith("req_")


@pytest.mark.parametrize("route", ["v1/messages", "v1/chat/completions"])
async def test_streamed_text_with_unicode_line_separators_survives_line_splitting(
        jp_fetch, cli_env, upstream, route):
    # U+0085, U+2028 and U+2029 are line ends to str.splitlines(): raw inside an SSE data line
    # they would cut the event's JSON in two for a reader that splits the decoded text.
    text = "a\x85b\u2028c\u2029d é 中"
    upstream.push(Reply.text(text))
    body = {"model": "sonnet", "max_tokens": 64, "stream": True,
            "messages": [{"role": "user", "content": "go"}]}
    resp = await post(jp_fetch, route, body)
    assert resp.code == 200
    data = [line[len("data: "):] for line in resp.body.decode("utf-8").splitlines()
            if line.startswith("data: ") and line != "data: [DONE]"]
    events = [json.loads(d) for d in data]        # every line is whole JSON
    if route == "v1/messages":
        got = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    else:
        got = "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])
    assert got == text
    assert "中".encode() in resp.body                # other text stays UTF-8, not \u-escaped


@pytest.mark.parametrize("raw,field", [
    (b"{not json", "not valid JSON"),
    (json.dumps({"model": "sonnet", "messages": [{"role": "user", "content": "x"}]}).encode(), "max_tokens"),
    (json.dumps({"model": "sonnet", "max_tokens": 5, "messages": []}).encode(), "messages"),
    (json.dumps({"model": "sonnet", "max_tokens": 5,
                 "messages": [{"role": "robot", "content": "x"}]}).encode(), "messages.0.role"),
    (json.dumps({"model": "sonnet", "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "hologram"}]}]}).encode(), "messages.0.content.0.type"),
])
async def test_bad_requests_are_400_naming_the_field(jp_fetch, cli_env, upstream, raw, field):
    resp = await post(jp_fetch, "v1/messages", None, raw=raw)
    assert resp.code == 400
    body = json.loads(resp.body)
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert field in body["error"]["message"]
    assert upstream.message_requests == []


async def test_bad_session_header_is_400_and_nothing_runs(jp_fetch, cli_env, upstream):
    resp = await post(jp_fetch, "v1/messages", {"model": "sonnet", "max_tokens": 8,
                                               "messages": [{"role": "user", "content": "hi"}]},
                      headers={"claude-nb-session": "no spaces allowed"})
    assert resp.code == 400
    error = json.loads(resp.body)["error"]
    assert error["type"] == "invalid_request_error" and "claude-nb-session" in error["message"]
    assert upstream.message_requests == []


async def test_ending_an_unknown_session_is_harmless(jp_fetch, cli_env):
    resp = await jp_fetch("claude_nb", "sessions", "never-started", method="DELETE")
    assert json.loads(resp.body) == {"id": "never-started", "type": "session_deleted"}


async def test_unknown_model_is_404(jp_fetch, cli_env):
    resp = await post(jp_fetch, "v1/messages", {"model": "claude-imaginary-9", "max_tokens": 5,
                                                "messages": [{"role": "user", "content": "x"}]})
    assert resp.code == 404
    assert json.loads(resp.body)["error"]["type"] == "not_found_error"


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": "Bearer "}, {"x-api-key": ""}])
async def test_bad_credentials_are_401(jp_fetch, cli_env, headers, upstream):
    # jp_fetch adds the right token; override it.
    headers = {"Authorization": "", **headers}
    resp = await post(jp_fetch, "v1/messages", {"model": "sonnet", "max_tokens": 5,
                                                "messages": [{"role": "user", "content": "x"}]},
                      headers=headers)
    assert resp.code == 401
    body = json.loads(resp.body)
    assert body["error"]["type"] == "authentication_error"
    assert upstream.message_requests == []


async def test_sdk_create_and_stream(cli_env, upstream, sdk_base, token, jp_serverapp):
    client = anthropic.AsyncAnthropic(base_url=sdk_base, api_key=token, max_retries=0)
    message = await client.messages.create(model="sonnet", max_tokens=64,
                                           messages=[{"role": "user", "content": "hello sdk"}])
    assert message.content[0].text == "You said: hello sdk"
    assert message.usage.output_tokens == 12
    upstream.push(Reply.text("streamed in several pieces for the client"))
    texts = []
    async with client.messages.stream(model="sonnet", max_tokens=64,
                                      messages=[{"role": "user", "content": "stream please"}]) as stream:
        async for text in stream.text_stream:
            texts.append(text)
        final = await stream.get_final_message()
    assert len(texts) > 1
    assert "".join(texts) == "streamed in several pieces for the client"
    assert final.content[0].text == "streamed in several pieces for the client"
    assert final.stop_reason == "end_turn"


@pytest.mark.parametrize("style", ["x-api-key", "bearer", "token"])
async def test_token_in_every_header_style(cli_env, upstream, sdk_base, token, style, jp_fetch):
    headers = {"x-api-key": {"x-api-key": token, "Authorization": ""},
               "bearer": {"Authorization": f"Bearer {token}"},
               "token": {"Authorization": f"token {token}"}}[style]
    resp = await jp_fetch("v1", "models", headers=headers)
    assert resp.code == 200


async def test_image_block_reaches_upstream_whole(cli_env, upstream, sdk_base, token):
    import base64
    import struct
    import zlib

    def png(w, h):
        raw = b"".join(b"\x00" + b"\xff\x00\x00" * w for _ in range(h))
        def chunk(kind, data):
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

    data = base64.b64encode(png(8, 6)).decode()
    client = anthropic.AsyncAnthropic(base_url=sdk_base, api_key=token, max_retries=0)
    await client.messages.create(model="sonnet", max_tokens=32, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
        {"type": "text", "text": "What colour is this?"}]}])
    sent = upstream.message_requests[-1].conversation()[-1]["content"]
    images = [b for b in sent if b["type"] == "image"]
    assert images == [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}]
    assert "What colour is this?" in [b.get("text") for b in sent]


async def test_subscription_login_works_and_callers_key_never_reaches_upstream(
        subscription_env, upstream, sdk_base, token):
    client = anthropic.AsyncAnthropic(base_url=sdk_base, api_key=token, max_retries=0)
    message = await client.messages.create(model="sonnet", max_tokens=32,
                                           messages=[{"role": "user", "content": "as a subscriber"}])
    assert message.content[0].text == "You said: as a subscriber"
    sent = upstream.message_requests[-1]
    assert sent.headers.get("Authorization") == "Bearer sk-ant-oat01-test-subscription"
    for request in upstream.requests:
        assert token not in json.dumps(request.headers) + json.dumps(request.body)
