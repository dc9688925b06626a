"""The warm process pool, against the real CLI and the recording upstream.

What a user relies on: a warm process answers exactly like a cold one (nothing of an earlier
request reaches a later one), a process that died while waiting never fails a request, the
process count stays within the caps, and a chat keeps its process between turns without the
conversation changing.
"""
import asyncio
import os
import signal
import time

import pytest

from tests.support.fake_upstream import Reply
from tests.support.waiting import wait_until


def body(text, **kw):
    return {"model": "sonnet", "max_tokens": 64, "messages": [{"role": "user", "content": text}], **kw}


async def ask(bridge, request, **kw):
    """(answer text, pid of the process that served it)."""
    pids, text = set(), []
    async for event in bridge.stream(request, **kw):
        pids |= {p.pid for p in bridge.live}
        if event["type"] == "content_block_delta" and event["delta"]["type"] == "text_delta":
            text.append(event["delta"]["text"])
    assert len(pids) == 1
    return "".join(text), pids.pop()


@pytest.fixture
def cli_before(cli_env):
    """CLI processes this test process already had (left by other tests): not this test's."""
    return cli_children(cli_env["cli"])


def cli_children(cli_path, before=frozenset()):
    """Pids of this test process's children running the CLI, read from the process table."""
    me, found = os.getpid(), set()
    target = os.path.realpath(cli_path)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().rsplit(b")", 1)[1].split()
            if int(stat[1]) != me or stat[0] in (b"Z", b"X"):
                continue
            if os.path.realpath(f"/proc/{entry}/exe") == target and int(entry) not in before:
                found.add(int(entry))
        except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
            continue
    return found


def pid_running(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (FileNotFoundError, ProcessLookupError):
        return False


def settled(pool):
    """Processes wait and none is starting or being ended."""
    return pool.idle and not (pool.starting or pool.closing)


def idle_pids(bridge):
    return {e.proc.pid for e in bridge.pool.idle}


async def warm(bridge, template=None):
    """Prewarm one spec; the pool starts `pool_prestart` processes of it (within the idle cap)."""
    bridge.pool_prewarm = [template or {"model": "sonnet", "max_tokens": 64}]
    await bridge.start_pool()
    await wait_until(lambda: len(bridge.pool.idle) >= bridge.pool.max_prestart, what="the warm processes")


def die_after_taking_a_turn(proc):
    """The process takes the next user turn on its stdin, then dies before a word."""
    send_user = proc.send_user

    async def send_then_die(content):
        await send_user(content)
        os.kill(proc.pid, signal.SIGKILL)
    proc.send_user = send_then_die


async def chat_second_turn_survives(bridge, upstream, session, between):
    """Turn 1 of a chat, then `between(pid of its process)`, then turn 2: answered whole, by
    another process, with both turns upstream."""
    history = [{"role": "user", "content": "remember 42"}]
    text, pid = await ask(bridge, {"model": "sonnet", "max_tokens": 64, "messages": history},
                          session=session)
    between(pid)
    history += [{"role": "assistant", "content": [{"type": "text", "text": text}]},
                {"role": "user", "content": "what number?"}]
    text, second = await ask(bridge, {"model": "sonnet", "max_tokens": 64, "messages": history},
                             session=session)
    assert text == "You said: what number?" and second != pid
    assert upstream.message_requests[-1].user_texts() == ["remember 42", "what number?"]


def reuses_processes(cli_env):
    """Whether this CLI can go back to an empty conversation (spares.py): then a process that
    answered cleanly serves the next request of its spec; else every request gets its own."""
    from claude_nb.bridge import spares
    from claude_nb.bridge.cli_info import cli_info
    return spares.capabilities(cli_info(cli_env["cli"])).rewind


async def test_warm_process_serves_one_request_and_nothing_leaks(bridge, upstream, cli_env):
    await warm(bridge)
    first_idle = idle_pids(bridge)
    text, pid = await ask(bridge, body("the secret word is PELICAN-7731"))
    assert text == "You said: the secret word is PELICAN-7731"
    assert pid in first_idle and bridge.pool.counts["hits"] == 1

    # The next request: on a CLI that can rewind, the same process, back to an empty
    # conversation; on others, its replacement (the first process was ended, not reused).
    await wait_until(lambda: settled(bridge.pool), what="the replacement")
    second_idle = idle_pids(bridge)
    text, second_pid = await ask(bridge, body("what was the secret word?"))
    assert text == "You said: what was the secret word?"
    assert second_pid in second_idle
    if reuses_processes(cli_env):
        assert second_pid == pid and bridge.pool.counts["reused"] == 1
    else:
        assert second_pid != pid and not pid_running(pid)

    sent = upstream.message_requests[-1]
    assert "PELICAN" not in str(sent.body)
    assert sent.user_texts() == ["what was the secret word?"]
    assert [m["role"] for m in sent.messages] == [m["role"] for m in upstream.message_requests[0].messages]
    assert [m["role"] for m in sent.conversation()] == ["user"]


async def test_warm_process_answers_like_a_cold_one(bridge, upstream):
    system = "Answer in French."
    await warm(bridge, {"model": "sonnet", "max_tokens": 64, "system": system})
    message = await bridge.create(body("bonjour", system=system))
    assert bridge.pool.counts["hits"] == 1
    warm_request = upstream.message_requests[-1].body

    bridge.pool_enabled = False
    await bridge.create(body("bonjour", system=system))
    cold_request = upstream.message_requests[-1].body

    assert message["content"] == [{"type": "text", "text": "You said: bonjour"}]
    for field in ("model", "max_tokens", "thinking", "tools", "system"):
        assert warm_request.get(field) == cold_request.get(field), field


async def test_a_miss_starts_cold_and_warms_that_spec_for_next_time(bridge, upstream, cli_env):
    bridge.pool_max_idle = 1
    await warm(bridge)                                   # warms sonnet/64
    prewarmed = idle_pids(bridge)
    request = body("x", system="You are terse.", max_tokens=300)
    text, pid = await ask(bridge, request)
    assert text == "You said: x"
    if reuses_processes(cli_env):
        # A spare takes any shape (test_spares.py): this one was answered warm, and its
        # process now waits for the next request of the spec.
        assert pid in prewarmed and bridge.pool.counts["spare_hits"] == 1
        await wait_until(lambda: idle_pids(bridge) == {pid}, what="the process to come back")
        _, again = await ask(bridge, body("y", system="You are terse.", max_tokens=300))
        assert again == pid and bridge.pool.counts["reused"] == 1
        assert upstream.message_requests[-1].body["max_tokens"] == 300
        return
    assert pid not in prewarmed and bridge.pool.counts["misses"] == 1

    # With room for one, the spec used last replaces the prewarmed one.
    await wait_until(lambda: bridge.pool.idle and bridge.pool.idle[0].key.spec.max_output_tokens == 300,
                     what="the used spec to be warm")
    assert not any(pid_running(p) for p in prewarmed)
    _, pid = await ask(bridge, body("y", system="You are terse.", max_tokens=300))
    assert bridge.pool.counts["hits"] == 1
    assert upstream.message_requests[-1].body["max_tokens"] == 300


async def test_killed_idle_process_is_replaced_and_the_request_succeeds(bridge, upstream, cli_env):
    bridge.pool_max_idle = 1
    await warm(bridge)
    (victim,) = idle_pids(bridge)
    os.kill(victim, signal.SIGKILL)
    while pid_running(victim):        # blocking on purpose: the event loop has not noticed yet,
        time.sleep(0.001)             # so the pool still lists the process as idle
    assert victim in idle_pids(bridge)
    text, pid = await ask(bridge, body("still there?"))
    assert text == "You said: still there?"
    assert pid != victim

    # A waiting process that dies is noticed and replaced by itself.
    await wait_until(lambda: settled(bridge.pool), what="a replacement")
    second = min(idle_pids(bridge))
    os.kill(second, signal.SIGKILL)
    await wait_until(lambda: idle_pids(bridge) and second not in idle_pids(bridge),
                     what="the dead process to be replaced")
    assert bridge.pool.counts["dead_replaced"] >= 2
    assert all(pid_running(p) for p in idle_pids(bridge))
    text, _ = await ask(bridge, body("and now?"))
    assert text == "You said: and now?"


async def test_process_dying_as_it_is_handed_out_does_not_fail_the_request(bridge, upstream):
    # The race a pre-check cannot close: the process takes the request, then dies before a word.
    bridge.pool_max_idle = 1
    await warm(bridge)
    (entry,) = bridge.pool.idle
    die_after_taking_a_turn(entry.proc)

    text, pid = await ask(bridge, body("are you there?"))
    assert text == "You said: are you there?"
    assert pid != entry.proc.pid and not pid_running(entry.proc.pid)
    assert bridge.pool.counts["dead_replaced"] == 1
    assert upstream.message_requests[-1].user_texts() == ["are you there?"]


async def test_chat_process_dying_as_it_takes_the_next_turn_does_not_fail_it(bridge, upstream):
    await chat_second_turn_survives(
        bridge, upstream, "chat-9", lambda pid: die_after_taking_a_turn(bridge.pool.sessions["chat-9"].proc))


async def test_prewarm_starts_the_prestart_count_and_a_burst_finds_every_process_warm(bridge, upstream):
    bridge.pool_max_idle, bridge.pool_prestart = 5, 3
    await warm(bridge)
    await wait_until(lambda: settled(bridge.pool), what="the fill to end")
    assert len(idle_pids(bridge)) == 3 and len({e.key for e in bridge.pool.idle}) == 1
    answers = await asyncio.gather(*(bridge.create(body(f"q{i}")) for i in range(3)))
    assert [a["content"][0]["text"] for a in answers] == [f"You said: q{i}" for i in range(3)]
    assert bridge.pool.counts["hits"] == 3 and bridge.pool.counts["misses"] == 0


async def test_more_requests_of_a_shape_than_warm_processes_fill_the_cap(bridge, upstream):
    bridge.pool_max_idle = bridge.pool_prestart = 3
    await bridge.create(body("first"))          # cold, and its replacement (and itself, rewound)
    await wait_until(lambda: settled(bridge.pool), what="the replacement")
    warm_now = len(bridge.pool.idle)
    assert warm_now < 3                         # one lone request does not fill the cap
    # One request more than there are warm processes: hits and a miss.
    await asyncio.gather(*(bridge.create(body(f"q{i}")) for i in range(warm_now + 1)))
    assert bridge.pool.counts["misses"] == 2
    await wait_until(lambda: len(bridge.pool.idle) == 3, what="the cap to fill")


async def test_shapes_taking_turns_each_keep_a_warm_process_at_the_defaults(bridge, upstream, cli_env):
    # What SDK apps and notebooks with several models send: four shapes, one after another.
    await warm(bridge)
    await wait_until(lambda: settled(bridge.pool), what="the prewarm to end")
    assert len(bridge.pool.idle) == bridge.pool_prestart == 2     # not the whole idle cap (6)
    shapes = [{"model": "opus", "system": "Answer in one short sentence."},
              {"model": "sonnet", "system": "Réponds en français."},
              {"model": "opus"},
              {"model": "sonnet", "max_tokens": 100}]

    async def one_round(label):
        for i, shape in enumerate(shapes):
            answer = await bridge.create(body(f"{label} {i}", **shape))
            assert answer["content"][0]["text"] == f"You said: {label} {i}"
            await wait_until(lambda: settled(bridge.pool) and not bridge.live, what="the pool to settle")
            assert len(bridge.pool.processes()) <= bridge.pool_max_idle

    await one_round("seen")
    before = dict(bridge.pool.counts)
    await one_round("again")
    await one_round("and again")
    assert bridge.pool.counts["misses"] == before["misses"]       # every one answered warm
    if reuses_processes(cli_env):                                 # by the process that answered it last time
        assert bridge.pool.counts["reused"] - before["reused"] == 2 * len(shapes)
        assert bridge.pool.counts["started"] == before["started"]
    # each upstream request held its own turn, as from a fresh process
    assert [r.user_texts() for r in upstream.message_requests[-8:]] == \
        [[f"{label} {i}"] for label in ("again", "and again") for i in range(4)]


async def test_a_conversation_sent_whole_each_turn_continues_on_the_process_that_answered(
        bridge, upstream, cli_env):
    # What the SDK without threads, LangChain with memory and most scripts send: the whole
    # history every turn, with no session header.
    reuses = reuses_processes(cli_env)
    history = [{"role": "user", "content": "one"}]
    text, first_pid = await ask(bridge, body("", messages=history))
    pids = [first_pid]
    for word in ("two", "three"):
        history += [{"role": "assistant", "content": text}, {"role": "user", "content": word}]
        text, pid = await ask(bridge, body("", messages=history))
        assert text == f"You said: {word}"
        pids.append(pid)
        # upstream received every turn as real turns, as from a process resumed cold
        assert upstream.message_requests[-1].user_texts() == ["one", "two", "three"][:len(pids)]
        assert [m["role"] for m in upstream.message_requests[-1].conversation()] == \
            ["user", "assistant"] * (len(pids) - 1) + ["user"]
    if reuses:       # each turn was one more line on the process that gave the answer before it
        assert bridge.pool.counts["continued"] == 2 and len(set(pids)) == 1
    else:            # 2.1.197 cannot go back to an empty conversation: every turn resumed cold
        assert bridge.pool.counts["continued"] == 0
    # An edited history is not continued; a new conversation gets nothing of the old one.
    edited = history[:1] + [{"role": "assistant", "content": "something else"},
                            {"role": "user", "content": "edited"}]
    before = bridge.pool.counts["continued"]
    assert (await ask(bridge, body("", messages=edited)))[0] == "You said: edited"
    assert bridge.pool.counts["continued"] == before
    await wait_until(lambda: settled(bridge.pool) and not bridge.live, what="the pool to settle")
    text, pid = await ask(bridge, body("a new conversation"))
    assert text == "You said: a new conversation"
    assert upstream.message_requests[-1].conversation() == [
        {"role": "user", "content": upstream.message_requests[-1].conversation()[0]["content"]}]
    assert upstream.message_requests[-1].user_texts() == ["a new conversation"]
    assert bridge.pool.counts["rewind_refused"] == 0    # a continued process is never rewound


async def test_burst_of_requests_stays_within_the_caps(bridge, upstream, cli_env, cli_before):
    bridge.max_concurrency = 3
    bridge.pool_max_idle = 2
    upstream.responder = lambda rec: Reply.text("You said: " + rec.user_texts()[-1], hang=0.3)
    await warm(bridge)
    samples, seen = [], set()

    async def sample():
        while True:
            seen.update(bridge.live)
            samples.append((len(bridge.live), len(bridge.pool.processes()) + len(bridge.pool.starting),
                            len(cli_children(cli_env["cli"], cli_before))))
            await asyncio.sleep(0.02)

    sampler = asyncio.ensure_future(sample())
    try:
        answers = await asyncio.gather(*(bridge.create(body(f"burst {i}")) for i in range(9)))
    finally:
        sampler.cancel()
    assert [a["content"][0]["text"] for a in answers] == [f"You said: burst {i}" for i in range(9)]
    assert seen
    if not reuses_processes(cli_env):
        assert all(p.turns == 1 for p in seen)               # one request per process
    # Whichever process served it, each upstream request held its own turn and nothing else.
    assert sorted(r.user_texts() for r in upstream.message_requests) == sorted(
        [f"burst {i}"] for i in range(9))
    assert max(s[0] for s in samples) == 3                    # the cap was reached...
    assert all(live <= 3 and held <= 2 for live, held, _ in samples)
    assert all(in_table <= 3 + 2 for *_, in_table in samples)  # ...and never passed
    assert bridge.pool.counts["hits"] >= 1


async def test_pool_off_starts_a_cold_process_per_request(bridge, upstream, cli_env, cli_before):
    await warm(bridge)
    prewarmed = idle_pids(bridge)
    bridge.pool_enabled = False                                # ends the waiting processes
    await wait_until(lambda: not any(pid_running(p) for p in prewarmed), what="the pool to end")
    text, pid = await ask(bridge, body("cold please"))
    assert text == "You said: cold please"
    assert bridge.pool.closed and pid not in prewarmed
    text, _ = await ask(bridge, body("again", ), session="chat")   # sessions need the pool: ignored
    assert text == "You said: again"
    assert cli_children(cli_env["cli"], cli_before) == set()  # nothing left running


async def test_idle_processes_retire_after_the_timeout(bridge, upstream, cli_env, cli_before):
    bridge.pool_idle_timeout = 0.5
    bridge.pool_max_idle = 1
    await warm(bridge)
    (pid,) = idle_pids(bridge)
    await wait_until(lambda: not bridge.pool.idle and not pid_running(pid), what="retirement")
    await asyncio.sleep(1.0)
    assert bridge.pool.counts["retired"] == 1 and bridge.pool.counts["started"] == 1   # not restarted
    assert cli_children(cli_env["cli"], cli_before) == set()


async def test_chat_session_keeps_its_process_and_upstream_gets_every_turn(bridge, upstream):
    history = [{"role": "user", "content": "my name is Ada"}]
    text, first_pid = await ask(bridge, {"model": "sonnet", "max_tokens": 64, "messages": history},
                                session="chat-1")
    assert "chat-1" in bridge.pool.sessions

    history += [{"role": "assistant", "content": text}, {"role": "user", "content": "what is my name?"}]
    text, second_pid = await ask(bridge, {"model": "sonnet", "max_tokens": 64, "messages": history},
                                 session="chat-1")
    assert text == "You said: what is my name?"
    assert second_pid == first_pid and bridge.pool.counts["session_hits"] == 1
    sent = upstream.message_requests[-1]
    assert [m["role"] for m in sent.conversation()] == ["user", "assistant", "user"]
    assert sent.user_texts() == ["my name is Ada", "what is my name?"]
    assert sent.conversation()[1]["content"][0]["text"] == "You said: my name is Ada"

    # An edited history is not what the process holds: a fresh process gets the edited turns.
    edited = [{"role": "user", "content": "my name is Grace"},
              {"role": "assistant", "content": "Hello Grace"},
              {"role": "user", "content": "what is my name?"}]
    text, third_pid = await ask(bridge, {"model": "sonnet", "max_tokens": 64, "messages": edited},
                                session="chat-1")
    assert text == "You said: what is my name?"
    assert third_pid != first_pid and not pid_running(first_pid)
    sent = upstream.message_requests[-1]
    assert sent.user_texts() == ["my name is Grace", "what is my name?"]
    assert "Ada" not in str(sent.body)

    # Reset ends the conversation's process.
    assert bridge.pool.sessions["chat-1"].proc.pid == third_pid
    await bridge.end_session("chat-1")
    assert "chat-1" not in bridge.pool.sessions and not pid_running(third_pid)


async def test_chat_session_survives_its_process_dying(bridge, upstream):
    def kill(pid):
        os.kill(pid, signal.SIGKILL)
        while pid_running(pid):
            time.sleep(0.001)
    await chat_second_turn_survives(bridge, upstream, "chat-2", kill)


async def test_chat_session_is_not_kept_when_the_settings_change(bridge, upstream):
    history = [{"role": "user", "content": "hi"}]
    text, pid = await ask(bridge, {"model": "sonnet", "max_tokens": 64, "messages": history},
                          session="chat-3")
    history += [{"role": "assistant", "content": text}, {"role": "user", "content": "again"}]
    text, second = await ask(bridge, {"model": "sonnet", "max_tokens": 64, "system": "Be brief.",
                                      "messages": history}, session="chat-3")
    assert second != pid and text == "You said: again"
    assert "Be brief." in upstream.message_requests[-1].system_text()


async def test_chat_session_retires_after_the_idle_timeout(bridge, upstream):
    bridge.pool_idle_timeout = 0.5
    _, pid = await ask(bridge, body("hello"), session="chat-4")
    await wait_until(lambda: "chat-4" not in bridge.pool.sessions and not pid_running(pid),
                     what="the session to retire")


async def test_chat_turn_cut_by_a_stop_sequence_does_not_keep_its_process(bridge, upstream):
    # The CLI's history would hold the whole answer, the client only the part before "STOP":
    # continuing that process would send the model text the client never saw.
    upstream.push(Reply.text("first part STOP hidden part"))
    message = await bridge.create({**body("go"), "stop_sequences": ["STOP"]}, session="chat-5")
    assert message["stop_reason"] == "stop_sequence"
    assert "chat-5" not in bridge.pool.sessions
    history = [{"role": "user", "content": "go"}, {"role": "assistant", "content": message["content"]},
               {"role": "user", "content": "and then?"}]
    await bridge.create({"model": "sonnet", "max_tokens": 64, "messages": history}, session="chat-5")
    sent = upstream.message_requests[-1]
    assert "hidden part" not in str(sent.body)
    assert bridge.pool.counts["session_hits"] == 0


def test_one_event_loop_per_call_leaves_nothing_running(cli_env, upstream, cli_before):
    """A synchronous caller may run each request in its own `asyncio.run`: every call is
    answered, each loop's processes end with it, and none is started only to be killed."""
    from claude_nb.bridge import ClaudeBridge
    bridge = ClaudeBridge()

    async def ask(text):
        return (await bridge.create(body(text)))["content"][0]["text"]

    answers = [asyncio.run(ask(f"call {i}")) for i in range(3)]
    assert answers == [f"You said: call {i}" for i in range(3)]
    assert cli_children(cli_env["cli"], cli_before) == set()
    assert bridge.pool.counts["started"] <= 1      # only the first loop looked like it would stay
    asyncio.run(bridge.close())
