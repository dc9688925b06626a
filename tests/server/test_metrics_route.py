"""{base_url}metrics, {base_url}v1/usage/quota and the quota section of /health on the live
Jupyter server, with the real CLI behind them."""
import asyncio
import json

import anthropic
import openai
import pytest
from tornado.httpclient import HTTPClientError

from tests.support.fake_upstream import Reply
from tests.support.http import parse_prometheus as parse

CHAT = "/v1/chat/completions"


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0)


async def fetch(jp_fetch, *path, headers=None):
    try:
        return await jp_fetch(*path, method="GET", headers=headers or {})
    except HTTPClientError as err:
        return err.response


async def scrape(jp_fetch) -> dict:
    resp = await fetch(jp_fetch, "metrics")
    assert resp.code == 200 and resp.headers["Content-Type"].startswith("text/plain")
    return parse(resp.body.decode())


async def test_metrics_count_requests_tokens_and_first_tokens(jp_fetch, claude_app, sdk_base, token,
                                                              cli_env, upstream):
    before = await scrape(jp_fetch)
    oai = openai.AsyncOpenAI(base_url=sdk_base + "v1", api_key=token, max_retries=0)
    stream = await oai.chat.completions.create(model="sonnet", stream=True,
                                               messages=[{"role": "user", "content": "x"}])
    async for _ in stream:
        pass
    await oai.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "y"}])
    with pytest.raises(openai.BadRequestError):
        await oai.chat.completions.create(model="sonnet", n=3, messages=[{"role": "user", "content": "z"}])
    ant = anthropic.AsyncAnthropic(base_url=sdk_base, api_key=token, max_retries=0)
    await ant.messages.create(model="sonnet", max_tokens=20, messages=[{"role": "user", "content": "w"}])
    await ant.models.retrieve("claude-sonnet-5")
    await fetch(jp_fetch, "v1", "no-such-thing-" + "x" * 10)

    after = await scrape(jp_fetch)

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)
    assert grew("claude_nb_http_requests_total", route=CHAT, method="POST", status="200") == 2
    assert grew("claude_nb_http_requests_total", route=CHAT, method="POST", status="400") == 1
    assert grew("claude_nb_http_requests_total", route="/v1/messages", method="POST", status="200") == 1
    # ids in paths become {names}: one series per route, not per model or batch
    assert grew("claude_nb_http_requests_total", route="/v1/models/{model_id}", method="GET", status="200") == 1
    assert grew("claude_nb_http_requests_total", route="/v1/{unknown}", method="GET", status="404") == 1
    assert not any("no-such-thing" in str(k) for k in after)
    assert grew("claude_nb_http_request_duration_seconds_count", route=CHAT, method="POST") == 3
    ttft = [k for k in after if k[0] == "claude_nb_time_to_first_token_seconds_count"
            and dict(k[1])["route"] == CHAT]
    assert sum(after[k] for k in ttft) == 1            # only the streamed request has a first token
    models = {dict(k[1])["model"] for k in after if k[0] == "claude_nb_runs_total"}
    assert len(models) == 1
    model = models.pop()
    assert grew("claude_nb_runs_total", model=model, source="openai", status="succeeded") == 2
    assert grew("claude_nb_runs_total", model=model, source="api", status="succeeded") == 1
    assert grew("claude_nb_tokens_total", model=model, type="output") == 3 * 12
    assert grew("claude_nb_cost_usd_total", model=model) > 0
    # Jupyter's own families are still served on the same path
    assert any(k[0].startswith("python_gc_") or k[0].startswith("http_request_duration") for k in after)


async def test_gauges_follow_a_running_request(jp_fetch, claude_app, sdk_base, token, cli_env, upstream):
    upstream.push(Reply.text("slow", hang=1.5))
    oai = openai.AsyncOpenAI(base_url=sdk_base + "v1", api_key=token, max_retries=0)
    request = asyncio.ensure_future(oai.chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": "x"}]))
    bridge = claude_app.bridge
    for _ in range(400):          # wait for the state, not for a time
        if bridge.live and upstream.message_requests:
            break
        await asyncio.sleep(0.025)
    during = await scrape(jp_fetch)
    assert value(during, "claude_nb_active_requests") == 1
    assert value(during, "claude_nb_cli_processes", state="live") == 1
    await request
    after = await scrape(jp_fetch)
    assert value(after, "claude_nb_active_requests") == 0
    assert value(after, "claude_nb_cli_processes", state="live") == 0


async def test_metrics_need_the_token(jp_fetch, jp_serverapp, claude_app, cli_env):
    resp = await fetch(jp_fetch, "metrics", headers={"Authorization": "token wrong"})
    assert resp.code in (401, 403) and b"claude_nb_" not in (resp.body or b"")
    # An operator who opened Jupyter's metrics to anonymous scrapes keeps them; ours stay private.
    jp_serverapp.web_app.settings["authenticate_prometheus"] = False
    resp = await fetch(jp_fetch, "metrics", headers={"Authorization": "token wrong"})
    assert resp.code == 200
    assert b"python_gc_" in resp.body and b"claude_nb_" not in resp.body


async def test_quota_route_health_and_gauges(jp_fetch, claude_app, sdk_base, token, subscription_env, upstream):
    resp = await fetch(jp_fetch, "v1", "usage", "quota")
    assert json.loads(resp.body)["status"] == "unknown"

    reset = 1_900_000_000
    upstream.default_headers = {
        "anthropic-ratelimit-unified-status": "allowed_warning",
        "anthropic-ratelimit-unified-reset": str(reset),
        "anthropic-ratelimit-unified-representative-claim": "five_hour",
        "anthropic-ratelimit-unified-5h-utilization": "0.92",
        "anthropic-ratelimit-unified-5h-reset": str(reset),
        "anthropic-ratelimit-unified-5h-surpassed-threshold": "0.9"}
    oai = openai.AsyncOpenAI(base_url=sdk_base + "v1", api_key=token, max_retries=0)
    completion = await oai.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == "You said: hi"     # a warning is not an error

    resp = await fetch(jp_fetch, "v1", "usage", "quota")
    quota = json.loads(resp.body)
    assert quota["status"] == "allowed_warning" and quota["limited_by"] == "five_hour"
    assert quota["windows"]["five_hour"]["utilization"] == 0.92
    assert quota["windows"]["five_hour"]["surpassed_threshold"] == 0.9
    health = json.loads((await fetch(jp_fetch, "health")).body)
    assert health["quota"]["status"] == "allowed_warning" and health["quota"]["limited_by"] == "five_hour"
    samples = await scrape(jp_fetch)
    assert value(samples, "claude_nb_plan_quota_status", window="five_hour") == 1
    assert value(samples, "claude_nb_plan_quota_utilization", window="five_hour") == 0.92

    resp = await fetch(jp_fetch, "v1", "usage", "quota", headers={"Authorization": "token wrong"})
    assert resp.code == 401


async def test_batch_items_by_state(jp_fetch, claude_app, sdk_base, token, cli_env, upstream):
    claude_app.bridge.max_concurrency = 1        # one item runs, the rest wait
    upstream.push(Reply.text("slow", hang=1.0))
    ant = anthropic.AsyncAnthropic(base_url=sdk_base, api_key=token, max_retries=0)
    batch = await ant.messages.batches.create(requests=[
        {"custom_id": f"row-{i}", "params": {"model": "sonnet", "max_tokens": 20,
                                             "messages": [{"role": "user", "content": f"q{i}"}]}}
        for i in range(3)])
    for _ in range(400):          # wait for the state, not for a time
        if claude_app.bridge.live:
            break
        await asyncio.sleep(0.025)
    during = await scrape(jp_fetch)
    in_flight = {state: value(during, "claude_nb_batch_items", state=state)
                 for state in ("pending", "running", "succeeded")}
    assert in_flight["running"] >= 1 and sum(in_flight.values()) == 3
    for _ in range(2400):
        if (await ant.messages.batches.retrieve(batch.id)).processing_status == "ended":
            break
        await asyncio.sleep(0.05)
    after = await scrape(jp_fetch)
    # an ended batch leaves the gauge; its runs stay counted, by source
    assert not any(k[0] == "claude_nb_batch_items" and v for k, v in after.items())
    assert sum(v for k, v in after.items() if k[0] == "claude_nb_runs_total"
               and dict(k[1])["source"] == "batch") == 3
