"""Errors reach the client in Anthropic's format, whether before or after the stream began."""
import asyncio
import json
import os

import anthropic
import pytest

from tests.support.fake_upstream import Reply
from tests.support.http import post

BODY = {"model": "sonnet", "max_tokens": 64, "messages": [{"role": "user", "content": "x"}]}


async def test_upstream_429_before_stream_is_http_429(jp_fetch, cli_env, upstream):
    upstream.push(Reply.error(429, "rate_limit_error", "Number of requests has exceeded your rate limit"))
    resp = await post(jp_fetch, "v1/messages", {**BODY, "stream": True})
    assert resp.code == 429
    body = json.loads(resp.body)
    assert body["error"]["type"] == "rate_limit_error"
    assert "rate limit" in body["error"]["message"]


async def test_upstream_529_json_is_overloaded(jp_fetch, cli_env, upstream):
    upstream.push(Reply.error(529, "overloaded_error", "Overloaded"))
    resp = await post(jp_fetch, "v1/messages", BODY)
    assert resp.code == 529
    assert json.loads(resp.body)["error"]["type"] == "overloaded_error"


async def test_cut_stream_ends_with_error_event(jp_fetch, cli_env, upstream, sdk_base, token):
    upstream.push(Reply.text("a long answer that the upstream will drop halfway through", drop_after_chars=16))
    client = anthropic.AsyncAnthropic(base_url=sdk_base, api_key=token, max_retries=0)
    seen = []
    with pytest.raises(anthropic.APIStatusError) as info:
        async with client.messages.stream(**BODY) as stream:
            async for text in stream.text_stream:
                seen.append(text)
    assert info.value.status_code == 200        # the 200 was already sent
    assert info.value.body["error"]["type"] == "api_error"
    assert info.value.body["error"]["message"]
    assert seen, "the client saw the partial text stream before the error"


async def test_missing_cli_says_where_it_looked(jp_fetch, cli_env, monkeypatch, tmp_path):
    monkeypatch.setenv("CLAUDE_NB_CLI", str(tmp_path / "no-such-claude"))
    monkeypatch.setenv("PATH", str(tmp_path))
    resp = await post(jp_fetch, "v1/messages", BODY)
    assert resp.code == 500
    body = json.loads(resp.body)
    assert resp.headers["x-should-retry"] == "false"
    assert "no-such-claude" in body["error"]["message"]
    assert "npm install -g @anthropic-ai/claude-code" in body["error"]["message"]


async def test_logged_out_cli_says_to_log_in(jp_fetch, cli_env, monkeypatch, upstream):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    resp = await post(jp_fetch, "v1/messages", BODY)
    assert resp.code == 401
    body = json.loads(resp.body)
    assert body["error"]["type"] == "authentication_error"
    assert "run `claude`" in body["error"]["message"] and "log in" in body["error"]["message"]
    assert upstream.message_requests == []


async def test_client_disconnect_ends_the_cli_process(jp_fetch, cli_env, upstream, sdk_base,
                                                      token, jp_serverapp):
    upstream.push(Reply.text("word " * 400, delay_per_chunk=0.05))
    app = jp_serverapp.extension_manager.extension_apps["server_ext"]
    bridge = next(iter(app)).bridge
    client = anthropic.AsyncAnthropic(base_url=sdk_base, api_key=token, max_retries=0)
    async with client.messages.stream(**BODY) as stream:
        async for _ in stream.text_stream:
            break
        pids = [p.pid for p in bridge.live]
        assert len(pids) == 1
    # leaving the context closes the HTTP response: the server must end the CLI process
    for _ in range(100):
        if not bridge.live and not _alive(pids[0]):
            break
        await asyncio.sleep(0.05)
    assert not bridge.live
    assert not _alive(pids[0])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie counts as gone only once reaped; ours are reaped by asyncio
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"




@pytest.mark.parametrize("args, message", [((), "bad %s"), (("a",), "bad a"), (("a", "b"), "bad a, b")])
async def test_http_errors_with_format_arguments_are_formatted(jp_serverapp, jp_fetch, claude_app,
                                                               jp_base_url, args, message):
    # Tornado keeps only the format arguments in HTTPError.args, and with none it escapes the
    # message's `%` signs: the client reads log_message % args, whatever the count.
    from tornado import web

    from server_ext.handlers.base import ApiHandler

    class Raises(ApiHandler):
        async def get(self):
            raise web.HTTPError(400, "bad %s" + ", %s" * (len(args) - 1), *args)

    jp_serverapp.web_app.add_handlers(".*$", [(jp_base_url + "claude_nb/test-raises", Raises,
                                               {"name": "server_ext"})])
    resp = await jp_fetch("claude_nb", "test-raises", raise_error=False)
    assert resp.code == 400
    body = json.loads(resp.body)
    assert body["type"] == "error" and body["error"] == {"type": "invalid_request_error",
                                                         "message": message}
