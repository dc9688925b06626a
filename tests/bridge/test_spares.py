"""Spares and reused processes (claude_nb/bridge/spares.py), against the real CLI and the
recording upstream.

What a user relies on: a request of a shape the server has never seen is answered by a process
that was already running, and what the model receives is exactly what a process launched for
that request would have sent (the whole request body and headers, ids aside); a process that
serves several requests in turn sends each of them as a fresh process would, and bills each
request for itself.
"""
import json
import os
import re
import signal

import pytest

from claude_nb.bridge import spares
from claude_nb.bridge.cli_info import cli_info
from tests.support.fake_upstream import Reply
from tests.support.waiting import wait_until

PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"]}
WEATHER = {"name": "get_weather", "description": "Current weather for a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}

# Shapes no prewarmed process was started for (the pool prewarms sonnet / 64 tokens).
NEW_SHAPES = {
    "haiku, system prompt, max_tokens": {"model": "haiku", "max_tokens": 300,
                                         "system": "Answer in one short sentence."},
    "opus, system blocks, effort": {"model": "opus", "max_tokens": 2000,
                                    "system": [{"type": "text", "text": "You are careful."},
                                               {"type": "text", "text": "Quote numbers exactly."}],
                                    "output_config": {"effort": "low"}},
    "thinking budget": {"model": "claude-sonnet-4-6", "max_tokens": 8000,
                        "thinking": {"type": "enabled", "budget_tokens": 2000}},
    "adaptive thinking, display": {"model": "sonnet", "max_tokens": 4000,
                                   "thinking": {"type": "adaptive", "display": "omitted"}},
    "structured output": {"model": "sonnet", "max_tokens": 500,
                          "output_config": {"format": {"type": "json_schema", "schema": PERSON}}},
    "client tools": {"model": "haiku", "max_tokens": 500, "tools": [WEATHER]},
}

# Per process: the private working directory (named in the CLI's environment note) and ids.
_WORKDIR = re.compile(r"/claudenb-[0-9a-f]{16}")
_PER_PROCESS_HEADERS = {"x-claude-code-session-id", "host", "content-length"}


def comparable(recorded) -> tuple[str, str]:
    """A recorded upstream request as (body, headers) with what differs per process masked."""
    body = json.loads(json.dumps(recorded.body))
    if isinstance(body.get("metadata"), dict) and "user_id" in body["metadata"]:
        body["metadata"]["user_id"] = "<per process>"
    headers = {k: v for k, v in recorded.headers.items() if k.lower() not in _PER_PROCESS_HEADERS}
    return (_WORKDIR.sub("/claudenb-<dir>", json.dumps(body, sort_keys=True, indent=1)),
            json.dumps(headers, sort_keys=True, indent=1))


def request(shape: dict, text: str) -> dict:
    return {**shape, "messages": [{"role": "user", "content": text}]}


def reply_for(rec):
    """Structured-output requests get their tool call; the rest the default echo."""
    tools = [t.get("name") for t in (rec.body or {}).get("tools") or []]
    if "StructuredOutput" in tools:
        return Reply(blocks=[("tool_use", "StructuredOutput", {"name": "Ada", "age": 36})],
                     stop_reason="tool_use")
    texts = rec.user_texts()
    return Reply.text("You said: " + (texts[-1] if texts else ""))


@pytest.fixture
def claimable(cli_env):
    caps = spares.capabilities(cli_info(cli_env["cli"]))
    if not caps.claim:
        pytest.skip("this CLI has no claimable spares (measured: 2.1.197 writes /model turns "
                    "into the conversation when the model changes after start)")
    return caps


async def served_by(bridge, body: dict) -> tuple[dict, int]:
    """(the whole message, pid of the process that answered)."""
    pids, events = set(), []
    async for event in bridge.stream(body):
        pids |= {p.pid for p in bridge.live}
        events.append(event)
    assert len(pids) == 1
    from claude_nb.bridge.events import MessageAccumulator
    acc = MessageAccumulator()
    for event in events:
        if not event["type"].startswith("claude_nb."):
            acc.add(event)
    return acc.message, pids.pop()


async def prewarmed(bridge, count: int = 1, cap: int | None = None) -> set[int]:
    bridge.pool_max_idle = cap or count
    bridge.pool_prewarm = [{"model": "sonnet", "max_tokens": 64}]
    await bridge.start_pool()
    await wait_until(lambda: len(bridge.pool.idle) >= count and not bridge.pool.starting,
                     what="the prewarmed spares")
    return {e.proc.pid for e in bridge.pool.idle}


async def fresh_process_request(bridge, upstream, body: dict):
    """What a process launched for this very request sends upstream (the pool off)."""
    bridge.pool_enabled = False
    await bridge.create(body)
    bridge.pool_enabled = True
    return upstream.message_requests[-1]


@pytest.mark.parametrize("shape", list(NEW_SHAPES), ids=list(NEW_SHAPES))
async def test_a_never_seen_shape_is_answered_by_a_spare_as_a_fresh_process_would(
        bridge, upstream, claimable, shape):
    upstream.responder = reply_for
    waiting = await prewarmed(bridge)
    body = request(NEW_SHAPES[shape], "What is the weather like?")
    message, pid = await served_by(bridge, body)
    assert pid in waiting, "a process started before the request answered it"
    assert bridge.pool.counts["spare_hits"] == 1 and bridge.pool.counts["misses"] == 0
    assert len(upstream.message_requests) == 1           # setting it up cost no upstream call
    warm = upstream.message_requests[-1]

    cold = await fresh_process_request(bridge, upstream, body)
    assert comparable(warm) == comparable(cold)
    if shape == "structured output":
        assert json.loads(message["content"][0]["text"]) == {"name": "Ada", "age": 36}
    else:
        assert message["content"][0]["text"] == "You said: What is the weather like?"


async def test_a_process_serving_requests_in_turn_sends_each_as_a_fresh_process(
        bridge, upstream, claimable):
    shape = NEW_SHAPES["haiku, system prompt, max_tokens"]
    await prewarmed(bridge, cap=2)     # room for the spare's replacement and the used process
    first, pid = await served_by(bridge, request(shape, "the secret word is PELICAN-7731"))
    texts = ["what was the secret word?", "and before that?"]
    reused = []
    for text in texts:
        message, again = await served_by(bridge, request(shape, text))
        assert again == pid and message["content"][0]["text"] == "You said: " + text
        reused.append(upstream.message_requests[-1])
        assert "PELICAN" not in json.dumps(reused[-1].body)
    assert bridge.pool.counts["reused"] == len(texts)
    for text, sent in zip(texts, reused):      # (the pool off now: every process is fresh)
        assert comparable(sent) == comparable(
            await fresh_process_request(bridge, upstream, request(shape, text)))


async def test_a_reused_process_bills_each_request_for_itself(bridge, upstream, claimable):
    records = []
    bridge.run_listeners.append(records.append)
    await prewarmed(bridge, cap=2)
    pids = [(await served_by(bridge, request({"model": "sonnet", "max_tokens": 64}, f"q{i}")))[1]
            for i in range(3)]
    assert len(set(pids)) == 1 and bridge.pool.counts["reused"] == 2
    costs = [r.cost_usd for r in records]
    # The CLI reports its total since start (0.00017, 0.00034, ...); each request is one turn.
    assert len(costs) == 3 and costs[0] > 0
    assert costs == pytest.approx([costs[0]] * 3)
    assert [r.usage["output_tokens"] for r in records] == [records[0].usage["output_tokens"]] * 3


async def test_a_spare_killed_while_waiting_does_not_fail_the_request(bridge, upstream, claimable):
    (pid,) = await prewarmed(bridge)
    os.kill(pid, signal.SIGKILL)
    message, served = await served_by(bridge, request(NEW_SHAPES["client tools"], "still there?"))
    assert served != pid and message["content"][0]["text"] == "You said: still there?"
    assert upstream.message_requests[-1].user_texts() == ["still there?"]


def test_a_spares_environment_leaves_out_exactly_what_depends_on_the_request():
    # Whatever the request, a spare starts with the same environment (the request's part is
    # sent when it is set up): SPEC_ENV_KEYS names every key build_env derives from a spec.
    from claude_nb.bridge.command import LaunchSpec, build_env
    base = {"PATH": "/usr/bin", "HOME": "/home/x"}
    specs = [LaunchSpec(model="sonnet"),
             LaunchSpec(model="haiku", max_output_tokens=7, thinking="enabled", thinking_budget=99,
                        effort="low"),
             LaunchSpec(model="opus", thinking="adaptive", thinking_display="omitted", effort="max")]
    full = [build_env(spec, base) for spec in specs]
    assert len({json.dumps(spares.spare_env(env), sort_keys=True) for env in full}) == 1
    assert any(full[0].get(k) != full[1].get(k) for k in spares.SPEC_ENV_KEYS)


async def test_cli_processes_run_below_the_servers_cpu_priority(bridge, upstream, cli_env):
    own = os.getpriority(os.PRIO_PROCESS, 0)
    (pid,) = await prewarmed(bridge)
    with open(f"/proc/{pid}/stat", "rb") as f:
        nice = int(f.read().rsplit(b")", 1)[1].split()[16])
    assert nice == min(19, own + bridge.cli_niceness) and bridge.cli_niceness > 0
    assert os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(cli_env["cli"])
