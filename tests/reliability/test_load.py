"""A burst of concurrent requests through the real CLI: each client gets its own answer, and
the number of CLI processes never goes above the configured cap (bridge.live and /proc)."""
from __future__ import annotations

import asyncio
import uuid

import anthropic
import pytest

from tests.support import proctable
from tests.support.reliability import body, sse_events

CAP = 3
BURST = 24


@pytest.mark.parametrize("bridge_config", [{"max_concurrency": CAP, "pool_enabled": False}])
async def test_burst_of_24_each_answered_under_the_cap(api, claude_app, cli_env, upstream,
                                                       sdk_base, token, bridge_config):
    bridge = claude_app.bridge
    assert bridge.limiter.capacity == CAP
    client = anthropic.AsyncAnthropic(base_url=sdk_base, api_key=token, max_retries=0, timeout=300)
    prompts = [f"request {i} {uuid.uuid4().hex[:8]}" for i in range(BURST)]

    async def sdk_create(prompt):
        message = await client.messages.create(**body(prompt))
        return message.content[0].text

    async def sdk_stream(prompt):
        async with client.messages.stream(**body(prompt)) as stream:
            parts = [text async for text in stream.text_stream]
            final = await stream.get_final_message()
        assert "".join(parts) == final.content[0].text
        return final.content[0].text

    async def raw_stream(prompt):
        resp = await api.post("v1/messages", body(prompt, stream=True), timeout=300)
        assert resp.status == 200, resp.body
        events = sse_events(resp.body)
        assert events[-1][0] == "message_stop", events[-3:]
        return "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")

    samples = {"live": 0, "procs": 0, "active": 0, "queued": 0, "n": 0}
    done = asyncio.Event()

    async def sample():
        while not done.is_set():
            samples["live"] = max(samples["live"], len(bridge.live))
            procs = proctable.running_cli(top_level=True)
            samples["procs"] = max(samples["procs"], len(procs))
            samples["active"] = max(samples["active"], bridge.limiter.active)
            samples["queued"] = max(samples["queued"], bridge.limiter.queued)
            samples["n"] += 1
            await asyncio.sleep(0.02)

    sampler = asyncio.ensure_future(sample())
    kinds = [sdk_create, sdk_stream, raw_stream]
    try:
        answers = await asyncio.gather(*(kinds[i % 3](p) for i, p in enumerate(prompts)))
    finally:
        done.set()
        await sampler
    print(f"\nburst of {BURST} with cap {CAP}: peak bridge.live={samples['live']}, "
          f"peak CLI processes in /proc={samples['procs']}, peak queued={samples['queued']}, "
          f"{samples['n']} samples")

    assert answers == ["You said: " + p for p in prompts]      # each got its own, none lost
    assert samples["live"] <= CAP and samples["active"] <= CAP
    assert samples["procs"] <= CAP
    assert samples["live"] >= 2 and samples["queued"] >= 1      # the burst did run concurrently
    assert len(upstream.message_requests) == BURST
    assert bridge.limiter.active == 0 and not bridge.live
    assert not await proctable.settle(proctable.running_cli)
    assert not await proctable.settle(proctable.zombies)
