"""Nothing lost, nothing passed off as whole: a batch whose upstream drops, refuses and cuts
answers still ends with exactly one result per request, each either the whole answer or an
error; and the OpenAI route never ends a cut stream as if it were complete."""
from __future__ import annotations

import asyncio
import collections
import json
import threading

import anthropic
import pytest

from tests.support.fake_upstream import Reply
from tests.support.reliability import assert_openai_error, body

KINDS = ("ok", "drop-once", "busy-once", "drop-always", "refused")
PER_KIND = 4


@pytest.fixture
def jp_server_config(jp_server_config):
    return {**jp_server_config,
            "BatchRunner": {"retry_base_delay": 0.05, "retry_max_delay": 0.2, "max_retries": 2,
                            "poll_interval": 0.2}}


def whole(prompt: str) -> str:
    return f"You said: {prompt} and then a good deal more, so that a cut shows."


def cli_session(rec) -> str:
    """The CLI process that sent an upstream request (each run has its own session id)."""
    return json.loads(rec.body["metadata"]["user_id"])["session_id"]


def scripted_upstream(upstream):
    """Answers by the kind written in the prompt; counts upstream attempts per prompt, and the
    CLI runs they came from (newer CLIs ask once more themselves after a 400, with fewer betas)."""
    attempts = collections.Counter()
    attempts.runs = collections.defaultdict(set)
    lock = threading.Lock()

    def respond(rec):
        prompt = rec.user_texts()[-1]
        with lock:
            attempts[prompt] += 1
            attempts.runs[prompt].add(cli_session(rec))
            n = attempts[prompt]
        kind = prompt.split(":")[0]
        if kind == "drop-once" and n == 1 or kind == "drop-always":
            return Reply.text(whole(prompt), drop_after_chars=12)
        if kind == "busy-once" and n == 1:
            return Reply.error(529, "overloaded_error", "busy")
        if kind == "refused":
            return Reply.error(400, "invalid_request_error", "refused by the upstream")
        return Reply.text(whole(prompt))

    upstream.responder = respond
    return attempts


async def test_batch_under_faults_loses_nothing_and_passes_off_nothing(claude_app, cli_env, upstream,
                                                                       sdk_base, token):
    attempts = scripted_upstream(upstream)
    client = anthropic.AsyncAnthropic(base_url=sdk_base, api_key=token, max_retries=0)
    requests = [{"custom_id": f"{kind}-{i}",
                 "params": {**body(f"{kind}:{i}"), "max_tokens": 100}}
                for kind in KINDS for i in range(PER_KIND)]
    batch = await client.messages.batches.create(requests=requests)
    for _ in range(1200):
        batch = await client.messages.batches.retrieve(batch.id)
        if batch.processing_status == "ended":
            break
        await asyncio.sleep(0.1)
    assert batch.processing_status == "ended"

    results = [r async for r in await client.messages.batches.results(batch.id)]
    by_id = {r.custom_id: r for r in results}
    assert len(results) == len(requests) and set(by_id) == {r["custom_id"] for r in requests}, \
        "a result was lost or doubled"
    lost = len(requests) - len(by_id)
    for kind in KINDS:
        for i in range(PER_KIND):
            result = by_id[f"{kind}-{i}"].result
            prompt = f"{kind}:{i}"
            if kind in ("ok", "drop-once", "busy-once"):
                assert result.type == "succeeded", (kind, result)
                assert result.message.content[0].text == whole(prompt)     # whole, never the cut
                assert result.message.stop_reason == "end_turn"
            else:
                assert result.type == "errored", (kind, result)
                expected = "api_error" if kind == "drop-always" else "invalid_request_error"
                assert result.error.error.type == expected, result
    counts = batch.request_counts
    assert (counts.succeeded, counts.errored) == (3 * PER_KIND, 2 * PER_KIND)
    assert len(attempts.runs["refused:0"]) == 1           # a 400 is not retried
    # cut answers are retried (max_retries=2: three CLI runs), then errored
    assert len(attempts.runs["drop-always:0"]) == 3
    assert claude_app.bridge.limiter.active == 0
    print(f"\nbatch under faults: {len(requests)} requests, {len(results)} results, {lost} lost, "
          f"{sum(attempts.values())} upstream attempts")


@pytest.mark.parametrize("drop_after", [0, 12])
async def test_openai_route_never_ends_a_cut_stream_as_complete(api, claude_app, cli_env, upstream,
                                                                drop_after):
    answer = "an answer long enough to be cut in the middle of it " * 2
    chat = {"model": "sonnet", "messages": [{"role": "user", "content": "x"}]}
    upstream.push(Reply.text(answer, drop_after_chars=drop_after))
    resp = await api.post("v1/chat/completions", {**chat, "stream": True})
    if resp.status == 200:
        lines = [ln[5:].strip() for ln in resp.body.decode().splitlines() if ln.startswith("data:")]
        assert "[DONE]" not in lines, lines[-3:]
        chunks = [json.loads(ln) for ln in lines]
        finishes = [c["choices"][0].get("finish_reason") for c in chunks if c.get("choices")]
        assert "stop" not in finishes and "length" not in finishes
        assert_openai_error(chunks[-1])
    else:
        assert resp.status >= 500
        assert_openai_error(resp.json())
    upstream.push(Reply.text(answer, drop_after_chars=drop_after))
    resp = await api.post("v1/chat/completions", chat)
    assert resp.status >= 500, resp.body
    assert_openai_error(resp.json())


@pytest.mark.parametrize("status,error_type,expected", [(429, "rate_limit_error", 429),
                                                         (529, "overloaded_error", 503)])
async def test_openai_route_passes_upstream_refusals(api, claude_app, cli_env, upstream, status,
                                                     error_type, expected):
    """OpenAI's clients know 503, not 529: an overloaded upstream is a 503 there."""
    upstream.push(Reply.error(status, error_type, "scripted refusal"))
    resp = await api.post("v1/chat/completions", {"model": "sonnet",
                                                  "messages": [{"role": "user", "content": "x"}]})
    assert resp.status == expected
    assert "scripted refusal" in assert_openai_error(resp.json())["message"]
