"""count_tokens, models, organizations/me, health and configuration."""
import asyncio
import json

import anthropic
import pytest

from tests.support.http import post


async def test_count_tokens_counts_every_part(jp_fetch, cli_env, sdk_base, token):
    client = anthropic.AsyncAnthropic(base_url=sdk_base, api_key=token, max_retries=0)
    base = dict(model="sonnet", messages=[{"role": "user", "content": "Hello there"}])
    small = await client.messages.count_tokens(**base)
    with_system = await client.messages.count_tokens(**base, system="You are a careful assistant " * 20)
    with_tools = await client.messages.count_tokens(**base, tools=[{
        "name": "lookup", "description": "Look a word up in the dictionary",
        "input_schema": {"type": "object", "properties": {"word": {"type": "string"}}}}])
    assert small.input_tokens > 0
    assert with_system.input_tokens > small.input_tokens + 80
    assert with_tools.input_tokens > small.input_tokens


async def test_count_tokens_validates(jp_fetch, cli_env):
    resp = await post(jp_fetch, "v1/messages/count_tokens", {"model": "sonnet", "messages": "hi"})
    assert resp.code == 400
    assert "messages" in json.loads(resp.body)["error"]["message"]


async def test_models_list_pages_and_every_model_answers(jp_fetch, cli_env, sdk_base, token, upstream):
    client = anthropic.AsyncAnthropic(base_url=sdk_base, api_key=token, max_retries=0)
    ids = [m.id async for m in client.models.list(limit=3)]
    assert len(ids) == len(set(ids)) > 3            # paged by 3, followed to the end
    first = await client.models.retrieve("opus")
    assert first.id.startswith("claude-opus")
    answers = await asyncio.gather(*(client.messages.create(
        model=model_id, max_tokens=16, messages=[{"role": "user", "content": f"hi {model_id}"}])
        for model_id in ids))
    for model_id, message in zip(ids, answers):
        assert message.content[0].text == f"You said: hi {model_id}"
    assert sorted(r.body["model"] for r in upstream.message_requests) == sorted(ids)


async def test_unknown_model_retrieve_is_404(jp_fetch, cli_env, sdk_base, token):
    client = anthropic.AsyncAnthropic(base_url=sdk_base, api_key=token, max_retries=0)
    with pytest.raises(anthropic.NotFoundError):
        await client.models.retrieve("gpt-4")


async def test_organization(jp_fetch, cli_env, sdk_base, token):
    client = anthropic.AsyncAnthropic(base_url=sdk_base, api_key=token, max_retries=0)
    org = await client.organization.retrieve()
    assert org.type == "organization" and len(org.id) == 36


async def test_health_reports_cli_and_login(jp_fetch, cli_env):
    resp = await jp_fetch("health")
    body = json.loads(resp.body)
    assert body["cli"]["found"] is True
    assert body["cli"]["version"].startswith("2.")
    assert body["cli"]["logged_in"] is True and body["cli"]["auth_method"] == "api_key"
    anonymous = await jp_fetch("health", headers={"Authorization": ""})
    assert json.loads(anonymous.body) == {"status": "ok"}


async def test_health_says_when_logged_out(jp_fetch, cli_env, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    body = json.loads((await jp_fetch("health", params={"fresh": "1"})).body)
    assert body["status"] == "degraded"
    assert body["cli"]["logged_in"] is False
    assert "log in" in body["cli"]["message"]


async def test_traitlets_configure_the_bridge(jp_serverapp, jp_server_config):
    jp_serverapp.config.ClaudeBridge.max_concurrency = 3
    from server_ext.app import ClaudeNbApp
    app = ClaudeNbApp(config=jp_serverapp.config)
    app.initialize_settings()
    assert app.bridge.max_concurrency == 3
    assert app.bridge.limiter.capacity == 3


async def test_kernels_learn_the_server_url(claude_app, jp_serverapp):
    import os
    assert os.environ["CLAUDE_NB_URL"] == jp_serverapp.connection_url
    assert os.environ["CLAUDE_NB_TOKEN"] == jp_serverapp.identity_provider.token


async def test_unknown_route_and_wrong_method_answer_in_the_envelope(jp_fetch, claude_app):
    from tornado.httpclient import HTTPClientError
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("v1", "no-such-endpoint")
    assert info.value.code == 404
    assert json.loads(info.value.response.body)["error"]["type"] == "not_found_error"
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("v1", "messages")          # GET on a POST-only route
    assert info.value.code == 405
    assert json.loads(info.value.response.body)["type"] == "error"
