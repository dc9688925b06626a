"""Message threads (beta `message-threads-2026-08-12`) through the official SDK, the real CLI
and the recording upstream.

What a user relies on: `client.beta.messages.thread(...)` and the SDK's `tool_runner` work as
against the API; a continue answers with the whole conversation as context (upstream receives
every turn and the thread's system prompt), on the CLI process the thread kept when it has
one; a thread the server no longer holds costs nothing but a replay, which the SDK does by
itself; and each thread error has the shape the SDK recovers from.
"""
import asyncio
import json

import anthropic
import pytest
from anthropic import beta_tool

from tests.support.fake_upstream import Reply
from tests.support.http import post
from tests.support.waiting import wait_until

SYSTEM = "You are a terse assistant for thread tests."


def sdk(sdk_base, token, **kw):
    return anthropic.AsyncAnthropic(base_url=sdk_base, api_key=token, max_retries=0, **kw)


def pool_of(claude_app):
    return claude_app.bridge.pool


# -- through the SDK ------------------------------------------------------------------------
async def test_thread_send_twice_continues_on_the_kept_process(cli_env, upstream, sdk_base, token,
                                                               claude_app):
    client = sdk(sdk_base, token)
    thread = client.beta.messages.thread(model="sonnet", max_tokens=64, system=SYSTEM)
    first = await thread.send({"role": "user", "content": "remember the number 42"})
    assert first.content[0].text == "You said: remember the number 42"
    assert thread.previous_message_id == first.id
    second = await thread.send({"role": "user", "content": "which number?"})
    assert second.content[0].text == "You said: which number?"
    assert second.id != first.id and thread.previous_message_id == second.id

    # The continue carried only the new turn; upstream still got every turn and the system.
    last = upstream.message_requests[-1]
    assert last.user_texts() == ["remember the number 42", "which number?"]
    assistant = [m for m in last.messages if m["role"] == "assistant"]
    assert [b["text"] for m in assistant for b in m["content"] if b.get("type") == "text"] == \
        ["You said: remember the number 42"]
    assert SYSTEM in last.system_text()
    # ... answered by the process the first turn left: one line on its stdin.
    assert pool_of(claude_app).counts["session_hits"] == 1
    assert claude_app.threads.counts == {"created": 1, "continued": 1, "dropped": 0}


async def test_thread_stream_twice(cli_env, upstream, sdk_base, token, claude_app):
    client = sdk(sdk_base, token)
    thread = client.beta.messages.thread(model="sonnet", max_tokens=64, system=SYSTEM)
    texts = []
    for prompt in ("first streamed turn", "second streamed turn"):
        async with thread.stream({"role": "user", "content": prompt}) as stream:
            pieces = [piece async for piece in stream.text_stream]
            message = await stream.get_final_message()
        texts.append("".join(pieces))
        assert message.content[0].text == texts[-1]
        assert thread.previous_message_id == message.id
    assert texts == ["You said: first streamed turn", "You said: second streamed turn"]
    last = upstream.message_requests[-1]
    assert last.user_texts() == ["first streamed turn", "second streamed turn"]
    assert SYSTEM in last.system_text()
    assert pool_of(claude_app).counts["session_hits"] == 1


async def test_tool_runner_threads_by_default(cli_env, upstream, sdk_base, token, claude_app):
    calls = []

    @beta_tool
    def get_weather(city: str) -> str:
        """The weather in a city.

        Args:
            city: the city's name
        """
        calls.append(city)
        return f"sunny in {city}"

    upstream.push(Reply.tool_use("mcp__client__get_weather", {"city": "Paris"}),
                  Reply.text("It is sunny in Paris."))
    sent = []

    def run():
        client = anthropic.Anthropic(base_url=sdk_base, api_key=token, max_retries=0)
        client._client.event_hooks["request"].append(
            lambda request: sent.append(json.loads(request.content)))
        runner = client.beta.messages.tool_runner(
            model="sonnet", max_tokens=256, system=SYSTEM, tools=[get_weather],
            messages=[{"role": "user", "content": "What is the weather in Paris?"}])
        return list(runner)
    messages = await asyncio.to_thread(run)     # the sync SDK, off the server's loop

    assert calls == ["Paris"]
    assert messages[0].stop_reason == "tool_use" and messages[-1].content[0].text == "It is sunny in Paris."
    # Threaded: a create with the whole conversation, then a continue with the tool result only.
    assert [s["thread"]["type"] for s in sent] == ["create", "continue"]
    assert sent[1]["thread"]["previous_message_id"] == messages[0].id
    assert "system" not in sent[1] and "tools" not in sent[1]
    assert [m["content"][0]["type"] for m in sent[1]["messages"]] == ["tool_result"]
    # Upstream got the question, the call and its result, with the thread's tools and system.
    last = upstream.message_requests[-1]
    kinds = [b.get("type") for m in last.messages if isinstance(m["content"], list)
             for b in m["content"]]
    assert "tool_use" in kinds and "tool_result" in kinds
    assert "What is the weather in Paris?" in last.user_texts()
    assert any(t.get("name") == "mcp__client__get_weather" for t in last.body.get("tools", []))
    assert SYSTEM in last.system_text()


def recording(client):
    """Every request the SDK client sends: (thread field, response status), in order."""
    sent = []

    async def on_response(response):
        body = json.loads(response.request.content or b"{}")
        sent.append(((body.get("thread") or {}).get("type"), response.status_code))
    client._client.event_hooks["response"].append(on_response)
    return sent


def key_of(claude_app, thread):
    return claude_app.threads._by_message[thread.previous_message_id].key


async def test_evicted_thread_is_replayed_by_the_sdk(cli_env, upstream, sdk_base, token, claude_app):
    claude_app.threads.max_threads = 1
    client = sdk(sdk_base, token)
    sent = recording(client)
    first = client.beta.messages.thread(model="sonnet", max_tokens=64, system=SYSTEM)
    await first.send({"role": "user", "content": "alpha one"})
    first_key = key_of(claude_app, first)
    await wait_until(lambda: first_key in pool_of(claude_app).sessions, what="the kept process")
    other = client.beta.messages.thread(model="sonnet", max_tokens=64)
    await other.send({"role": "user", "content": "another conversation"})
    # Over the cap: the least recently used thread is dropped, its kept process ended too.
    await wait_until(lambda: first_key not in pool_of(claude_app).sessions,
                     what="the dropped thread's process to end")
    assert claude_app.threads.stats()["held"] == 1

    reply = await first.send({"role": "user", "content": "alpha two"})
    assert reply.content[0].text == "You said: alpha two"
    # The continue was refused as thread_not_found; the SDK replayed everything under a new one.
    assert sent[-2:] == [("continue", 404), ("create", 200)]
    last = upstream.message_requests[-1]
    assert last.user_texts() == ["alpha one", "alpha two"]
    assert SYSTEM in last.system_text()
    assert first.previous_message_id == reply.id
    assert claude_app.threads.stats()["held"] == 1          # the replay is the one held now


async def test_expired_thread_is_not_found_and_replayed(cli_env, upstream, sdk_base, token,
                                                        claude_app):
    client = sdk(sdk_base, token)
    sent = recording(client)
    thread = client.beta.messages.thread(model="sonnet", max_tokens=64)
    await thread.send({"role": "user", "content": "before the pause"})
    claude_app.threads.ttl = 0.05
    await asyncio.sleep(0.2)
    reply = await thread.send({"role": "user", "content": "after the pause"})
    assert reply.content[0].text == "You said: after the pause"
    assert sent[-2:] == [("continue", 404), ("create", 200)]
    assert upstream.message_requests[-1].user_texts() == ["before the pause", "after the pause"]


async def test_threads_over_the_byte_cap_go_least_recent_first(cli_env, upstream, sdk_base, token,
                                                                claude_app):
    claude_app.threads.max_bytes = 4000          # room for one of these conversations, not two
    client = sdk(sdk_base, token)
    sent = recording(client)
    first = client.beta.messages.thread(model="sonnet", max_tokens=64)
    await first.send({"role": "user", "content": "alpha " * 200})
    first_key = key_of(claude_app, first)
    held = claude_app.threads.stats()
    assert held["held"] == 1 and 2400 < held["bytes"] <= 4000
    other = client.beta.messages.thread(model="sonnet", max_tokens=64)
    await other.send({"role": "user", "content": "omega " * 200})
    stats = claude_app.threads.stats()
    assert stats["held"] == 1 and stats["bytes"] <= 4000
    await wait_until(lambda: first_key not in pool_of(claude_app).sessions,
                     what="the dropped thread's process to end")
    reply = await first.send({"role": "user", "content": "alpha again"})
    assert reply.content[0].text == "You said: alpha again"
    assert sent[-2:] == [("continue", 404), ("create", 200)]      # replayed by the SDK
    assert upstream.message_requests[-1].user_texts() == ["alpha " * 200, "alpha again"]


async def test_an_expired_thread_lets_its_process_go_without_another_request(
        cli_env, upstream, sdk_base, token, claude_app):
    claude_app.threads.ttl = 0.5
    thread = sdk(sdk_base, token).beta.messages.thread(model="sonnet", max_tokens=64)
    await thread.send({"role": "user", "content": "then silence"})
    key = key_of(claude_app, thread)
    assert key in pool_of(claude_app).sessions
    # nothing is sent (and /health not read): the thread's own timer drops it and its process
    await wait_until(lambda: key not in pool_of(claude_app).sessions, what="the expired thread's process")
    assert not claude_app.threads._threads


# -- on the wire ----------------------------------------------------------------------------
def request(text="hello", **kw):
    return {"model": "sonnet", "max_tokens": 64, "messages": [{"role": "user", "content": text}], **kw}


async def threaded(jp_fetch, body, thread):
    resp = await post(jp_fetch, "v1/messages", {**body, "thread": thread})
    return resp.code, json.loads(resp.body)


def continue_from(message_id):
    return {"type": "continue", "previous_message_id": message_id}


async def test_thread_errors_have_the_shape_the_sdk_reads(jp_fetch, cli_env, upstream, claude_app):
    code, unknown = await threaded(jp_fetch, request(), continue_from("msg_nobody_made_this"))
    assert code == 404 and unknown["type"] == "error"
    assert unknown["error"]["type"] == "not_found_error"
    assert unknown["error"]["details"] == {"error_code": "thread_not_found"}
    assert "msg_nobody_made_this" in unknown["error"]["message"]

    code, created = await threaded(jp_fetch, request("one"), {"type": "create"})
    assert code == 200 and created["content"][0]["text"] == "You said: one"
    code, continued = await threaded(jp_fetch, request("two"), continue_from(created["id"]))
    assert code == 200 and continued["content"][0]["text"] == "You said: two"
    asked = len(upstream.message_requests)
    code, again = await threaded(jp_fetch, request("two again"), continue_from(created["id"]))
    assert code == 400 and again["error"]["type"] == "invalid_request_error"
    assert again["error"]["details"] == {"error_code": "thread_already_continued"}
    assert continued["id"] in again["error"]["message"]       # where to continue from instead

    code, unsupported = await threaded(
        jp_fetch, request(context_management={"edits": [{"type": "clear_tool_uses_20250919"}]}),
        {"type": "create"})
    assert code == 400
    assert unsupported["error"]["details"] == {"error_code": "thread_unsupported_request",
                                               "unsupported": ["context_management"]}
    assert len(upstream.message_requests) == asked           # none of these ran


@pytest.mark.parametrize("field, value", [
    ("system", "another system prompt"),
    ("tools", [{"name": "lookup", "input_schema": {"type": "object"}}]),
])
async def test_continue_repeating_a_create_only_field_is_400_naming_it(
        jp_fetch, cli_env, upstream, claude_app, field, value):
    code, created = await threaded(jp_fetch, request("one", **{field: value}), {"type": "create"})
    assert code == 200
    asked = len(upstream.message_requests)
    code, refused = await threaded(jp_fetch, request("two", **{field: value}),
                                   continue_from(created["id"]))
    assert code == 400 and refused["error"]["type"] == "invalid_request_error"
    assert refused["error"]["message"].startswith(f"{field}:")
    assert len(upstream.message_requests) == asked
    # The refusal did not use the thread up: the same response can still be continued.
    code, continued = await threaded(jp_fetch, request("two"), continue_from(created["id"]))
    assert code == 200 and continued["content"][0]["text"] == "You said: two"


async def test_second_continue_while_one_runs_is_in_flight(jp_fetch, cli_env, upstream, claude_app):
    code, created = await threaded(jp_fetch, request("one"), {"type": "create"})
    assert code == 200
    upstream.push(Reply.text("a slow answer", delay_per_chunk=0.3))
    slow = asyncio.ensure_future(threaded(jp_fetch, request("two"), continue_from(created["id"])))
    await wait_until(lambda: claude_app.threads.stats()["continuing"] == 1, what="the continue")
    code, busy = await threaded(jp_fetch, request("two, impatiently"), continue_from(created["id"]))
    assert code == 400 and busy["error"]["details"] == {"error_code": "thread_continue_in_flight"}
    code, answered = await slow
    assert code == 200 and answered["content"][0]["text"] == "a slow answer"
    assert not any("impatiently" in t for r in upstream.message_requests for t in r.user_texts())


async def test_streamed_continue_errors_are_http_errors_not_events(jp_fetch, cli_env, upstream,
                                                                  claude_app):
    resp = await post(jp_fetch, "v1/messages", {**request(stream=True),
                                                "thread": continue_from("msg_gone")})
    assert resp.code == 404 and resp.headers["Content-Type"].startswith("application/json")
    assert json.loads(resp.body)["error"]["details"]["error_code"] == "thread_not_found"


@pytest.mark.parametrize("thread, message", [
    ({"type": "fork"}, "thread.type"),
    ({"type": "continue"}, "thread.previous_message_id"),
    ({"type": "create", "previous_message_id": "msg_x"}, "thread.previous_message_id"),
    ("create", "thread"),
])
async def test_malformed_thread_is_400_naming_the_field(jp_fetch, cli_env, upstream, claude_app,
                                                        thread, message):
    code, body = await threaded(jp_fetch, request(), thread)
    assert code == 400 and body["error"]["message"].startswith(message)
    assert not upstream.message_requests


async def test_sdk_raises_the_typed_thread_errors(cli_env, upstream, sdk_base, token, claude_app):
    client = sdk(sdk_base, token)
    with pytest.raises(anthropic.NotFoundError) as caught:
        await client.beta.messages.create(**request(), thread=continue_from("msg_unknown_here"))
    assert caught.value.error_code == "thread_not_found"
    assert type(caught.value).__name__ == "ThreadNotFoundError"
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.beta.messages.create(**request(), thread={"type": "create"},
                                          context_management={"edits": []})
    assert type(caught.value).__name__ == "ThreadUnsupportedRequestError"
    assert caught.value.details.unsupported == ["context_management"]


# -- the pool -------------------------------------------------------------------------------
async def test_kept_thread_processes_give_way_before_other_requests_are_starved(
        cli_env, upstream, sdk_base, token, claude_app):
    claude_app.bridge.pool_max_idle = 2
    pool = pool_of(claude_app)
    client = sdk(sdk_base, token)
    first = client.beta.messages.thread(model="sonnet", max_tokens=64)
    await first.send({"role": "user", "content": "first chat"})
    second = client.beta.messages.thread(model="sonnet", max_tokens=64)
    await second.send({"role": "user", "content": "second chat"})
    keys = [key_of(claude_app, first), key_of(claude_app, second)]
    await wait_until(lambda: set(keys) <= set(pool.sessions), what="both threads' processes")
    assert len(pool.idle) == 0        # the kept processes fill the room

    # Requests of another shape: the first starts cold; room for their warm process is made
    # by ending the oldest thread's kept process, so the next one answers warm.
    plain = dict(model="haiku", max_tokens=32)
    await client.messages.create(**plain, messages=[{"role": "user", "content": "plain 1"}])
    await wait_until(lambda: keys[0] not in pool.sessions and pool.idle, what="room for haiku")
    assert keys[1] in pool.sessions
    hits = pool.counts["hits"]
    await client.messages.create(**plain, messages=[{"role": "user", "content": "plain 2"}])
    assert pool.counts["hits"] == hits + 1

    # The thread whose process went is still held: its continue resumes the conversation.
    reply = await first.send({"role": "user", "content": "first chat, again"})
    assert reply.content[0].text == "You said: first chat, again"
    assert upstream.message_requests[-1].user_texts() == ["first chat", "first chat, again"]


# -- the kernel's client: %%claude chat memory and claude_nb.chat() -------------------------
@pytest.fixture
def kernel_client(jp_fetch, claude_app, http_server_port, jp_base_url, cli_env):
    """The kernel side's HTTP transport, recording what it POSTs to /v1/messages."""
    from claude_nb.kernel.client import Claude
    from claude_nb.kernel.transports import HttpTransport
    transport = HttpTransport(f"http://127.0.0.1:{http_server_port[1]}{jp_base_url}",
                              claude_app.serverapp.identity_provider.token)
    posted = []
    open_ = transport.open

    def recording_open(method, path, **kw):
        if path == "v1/messages":
            posted.append(kw["body"])
        return open_(method, path, **kw)
    transport.open = recording_open
    return Claude(transport), transport, posted


async def test_kernel_chat_is_a_thread_continued_with_the_new_turn_only(kernel_client, upstream,
                                                                        claude_app):
    client, transport, posted = kernel_client

    def chat():
        history = [{"role": "user", "content": "remember 42"}]
        first = client.answer(messages=history, system=SYSTEM, session="magic-t")
        history += [{"role": "assistant", "content": first.text},
                    {"role": "user", "content": "what number?"}]
        second = client.answer(messages=history, system=SYSTEM, session="magic-t")
        # Another system prompt for one cell (%%claude --format code): a new thread, whole history.
        history += [{"role": "assistant", "content": second.text},
                    {"role": "user", "content": "as code"}]
        third = client.answer(messages=history, system=SYSTEM + " Code only.", session="magic-t")
        return first, second, third
    first, second, third = await asyncio.to_thread(chat)

    assert [p["thread"] for p in posted] == [
        {"type": "create"}, {"type": "continue", "previous_message_id": first.message["id"]},
        {"type": "create"}]
    assert posted[1]["messages"] == [{"role": "user", "content": "what number?"}]
    assert "system" not in posted[1] and len(posted[2]["messages"]) == 5
    assert second.text == "You said: what number?" and third.text == "You said: as code"
    assert upstream.message_requests[1].user_texts() == ["remember 42", "what number?"]
    assert SYSTEM in upstream.message_requests[1].system_text()
    assert pool_of(claude_app).counts["session_hits"] == 1
    assert transport.chats["magic-t"].previous_message_id == third.message["id"]


async def test_kernel_chat_replays_when_the_server_dropped_its_thread(kernel_client, upstream,
                                                                     claude_app):
    client, transport, posted = kernel_client

    def turn(history):
        return client.answer(messages=history, session="chat-t")
    history = [{"role": "user", "content": "alpha"}]
    first = await asyncio.to_thread(turn, history)
    await claude_app.threads.end(first.message["id"])      # as after a server-side drop
    history += [{"role": "assistant", "content": first.text}, {"role": "user", "content": "beta"}]
    second = await asyncio.to_thread(turn, history)
    assert second.text == "You said: beta"
    assert [p["thread"]["type"] for p in posted] == ["create", "continue", "create"]
    assert upstream.message_requests[-1].user_texts() == ["alpha", "beta"]


async def test_kernel_chat_reset_ends_the_thread_and_its_process(kernel_client, upstream, claude_app):
    client, transport, posted = kernel_client
    pool = pool_of(claude_app)
    answer = await asyncio.to_thread(client.answer, messages=[{"role": "user", "content": "hi"}],
                                     session="chat-r")
    await wait_until(lambda: len(pool.sessions) == 1, what="the kept process")
    await asyncio.to_thread(client.end_session, "chat-r")
    assert not pool.sessions and claude_app.threads.stats()["held"] == 0
    assert "chat-r" not in transport.chats
    from claude_nb.protocol.threads import ThreadError, ThreadParam
    with pytest.raises(ThreadError) as gone:
        await claude_app.threads.create(request("again"), ThreadParam("continue", answer.message["id"]))
    assert gone.value.error_code == "thread_not_found"
