"""Message threads: conversations the server holds between requests (the API's beta
`message-threads-2026-08-12`).

A `create` request runs like any other, and its conversation (system, tools, every turn and
the answer) is then held under the response's `id`. A `continue` names that id and sends only
the new turn: the thread's system, tools and turns are put back in front of it, and the request
runs exactly as one carrying the whole history would, so upstream receives every turn as a
real turn.

Each thread has a key in the bridge's pool. After a plain answer the pool keeps the CLI process
that gave it (see pool.py, chat sessions), so the next continue is one line on that process's
stdin; without one (evicted for room, retired idle, or after a tool call) the bridge resumes the
conversation from a synthetic transcript, removed after the run. Threads live in memory only,
at most `ttl` seconds after their last use (a timer drops them, and their kept processes, even
when no request comes), `max_threads` at once and `max_bytes` of conversation in all, least
recently used dropped first. A thread that is gone
answers `thread_not_found`, on which the SDK replays the whole conversation under a new
thread, so dropping one is always safe.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import AsyncIterator

from traitlets import Float, Int
from traitlets.config import LoggingConfigurable

from ..bridge.events import MessageAccumulator
from ..protocol.errors import ApiFailure
from ..protocol.models import resolve_model
from ..protocol.threads import (CREATE_ONLY_FIELDS, ThreadParam, check_thread_request,
                                thread_already_continued, thread_continue_in_flight,
                                thread_not_found)
from ..protocol.validation import validate_message_request


def new_message_id() -> str:
    # Minted here rather than taken from upstream: a thread is found by it, so it must be unique.
    return "msg_" + uuid.uuid4().hex[:24]


@dataclass(eq=False)
class HeldThread:
    key: str                   # the pool's session key for the thread's kept process
    create_only: dict          # `system` / `tools`, as the creating request sent them
    messages: list             # every turn so far, the latest answer included
    head: str                  # the one response a continue may name
    message_ids: set = field(default_factory=set)    # every response of the thread
    last_used: float = field(default_factory=time.monotonic)
    continuing: bool = False   # a continue from `head` is running
    size: int = 0              # bytes of `create_only` and `messages` as JSON


@dataclass(eq=False)
class ThreadTurn:
    """One request of a thread: the body that runs (whole history) and where it belongs."""
    key: str
    body: dict
    create_only: dict
    held: HeldThread | None    # None for a `create`


class MessageThreads(LoggingConfigurable):
    """The server's message threads, over one `ClaudeBridge`."""

    ttl = Float(3600.0, config=True,
                help="Seconds a message thread is held after its last use; a continue after that "
                     "answers thread_not_found and the SDK replays the conversation.")
    max_threads = Int(1000, config=True,
                      help="Message threads held at once (in memory); beyond that the least "
                           "recently used one is dropped.")
    max_bytes = Int(256 * 2**20, config=True,
                    help="Bytes of conversation (as JSON) all held threads may take together; "
                         "beyond that the least recently used are dropped. A conversation larger "
                         "than this on its own is answered but not held.")

    def __init__(self, bridge, **kwargs):
        super().__init__(**kwargs)
        self.bridge = bridge
        self._threads: dict[str, HeldThread] = {}          # key -> thread, least recent first
        self._by_message: dict[str, HeldThread] = {}       # response id -> its thread
        self._answering: dict[str, asyncio.Future] = {}    # response id -> settles with its turn
        self._endings: set[asyncio.Task] = set()
        self._bytes = 0                                    # sum of the held threads' sizes
        self._expiry: asyncio.TimerHandle | None = None
        self.counts = {"created": 0, "continued": 0, "dropped": 0}

    # -- requests -------------------------------------------------------------------------
    async def stream(self, body: dict, thread: ThreadParam, *, source: str = "api",
                     request_id: str | None = None) -> AsyncIterator[dict]:
        """The stream events of a threaded request (`body` without its `thread` field). Thread
        errors are raised before the first event, so the client gets them as HTTP errors."""
        turn = await self._begin(body, thread)
        message_id = new_message_id()
        settled = asyncio.get_running_loop().create_future()
        self._answering[message_id] = settled
        answer = MessageAccumulator()
        committed = False
        try:
            async for event in self.bridge.stream(turn.body, source=source, request_id=request_id,
                                                  session=turn.key):
                kind = str(event.get("type", ""))
                if kind == "message_start":
                    event = {**event, "message": {**event["message"], "id": message_id}}
                if not kind.startswith("claude_nb."):
                    answer.add(event)
                yield event
            # Only now, after the bridge has kept (or closed) the process: a continue that
            # comes in the meantime waits for this (see _begin), and then finds it warm.
            committed = self._commit(turn, message_id, answer.message)
        finally:
            if not committed:
                self._release(turn)
            self._answering.pop(message_id, None)
            if not settled.done():
                settled.set_result(committed)

    async def create(self, body: dict, thread: ThreadParam, **kwargs) -> dict:
        """The whole Message of a threaded request."""
        acc = MessageAccumulator()
        final_usage: dict = {}
        async for event in self.stream(body, thread, **kwargs):
            if event.get("type") == "claude_nb.final_usage":
                final_usage = event["usage"]
            elif not str(event.get("type", "")).startswith("claude_nb."):
                acc.add(event)
        if acc.message is None:
            raise ApiFailure("The Claude Code CLI returned no message.")
        if final_usage:
            acc.message["usage"] = final_usage
        return acc.message

    async def end(self, message_id: str) -> None:
        """Drop the thread holding `message_id` and its kept process (a chat was reset)."""
        held = self._by_message.get(message_id)
        if held is None:
            raise thread_not_found(message_id)
        self._drop(held, end_process=False)
        await self.bridge.end_session(held.key)

    def stats(self) -> dict:
        """For /health."""
        self._expire()
        return {"held": len(self._threads),
                "continuing": sum(1 for t in self._threads.values() if t.continuing),
                "bytes": self._bytes, "ttl": self.ttl, "max_threads": self.max_threads,
                "max_bytes": self.max_bytes, **self.counts}

    async def close(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self._threads.clear()
        self._by_message.clear()
        self._bytes = 0
        await asyncio.gather(*list(self._endings), return_exceptions=True)

    # -- the registry ---------------------------------------------------------------------
    async def _begin(self, body: dict, thread: ThreadParam) -> ThreadTurn:
        check_thread_request(body, thread)
        self._expire()
        if thread.type == "create":
            full = validate_message_request(dict(body))
            resolve_model(full["model"])
            return ThreadTurn(key="thread-" + uuid.uuid4().hex, body=full, held=None,
                              create_only={k: body[k] for k in CREATE_ONLY_FIELDS if k in body})
        previous = thread.previous_message_id
        answering = self._answering.get(previous)
        if answering is not None:
            # The client has the whole answer, the server is still ending that turn.
            await asyncio.shield(answering)
        held = self._by_message.get(previous)
        if held is None or held.key not in self._threads:
            raise thread_not_found(previous)
        if held.head != previous:
            raise thread_already_continued(previous, held.head)
        if held.continuing:
            raise thread_continue_in_flight(previous)
        sent = body.get("messages")
        # Checked as sent first, so an error names the client's own message index.
        validate_message_request({**body, **held.create_only} if sent
                                 else {**body, **held.create_only, "messages": held.messages})
        full = validate_message_request({**body, **held.create_only,
                                         "messages": held.messages + list(sent or [])})
        resolve_model(full["model"])
        # Nothing awaited since the checks: no other request got in between.
        held.continuing = True
        self._touch(held)
        return ThreadTurn(key=held.key, body=full, create_only=held.create_only, held=held)

    def _commit(self, turn: ThreadTurn, message_id: str, message: dict | None) -> bool:
        """Hold the conversation with its new answer under `message_id`."""
        if message is None or message.get("stop_reason") is None:
            return False
        messages = turn.body["messages"] + [{"role": "assistant", "content": message["content"]}]
        held = turn.held
        if held is None or held.key not in self._threads:
            # A new thread (or one dropped while it answered: it starts again from here).
            held = HeldThread(key=turn.key, create_only=turn.create_only, messages=messages,
                              head=message_id, size=_json_size(turn.create_only, messages))
            self._bytes += held.size
            self.counts["created"] += 1
        else:
            # Only what this turn added is measured: a long history is not re-encoded per turn.
            added = _json_size(messages[len(held.messages):])
            held.messages, held.head, held.continuing = messages, message_id, False
            held.size += added
            self._bytes += added
            self.counts["continued"] += 1
        held.message_ids.add(message_id)
        self._by_message[message_id] = held
        self._touch(held)
        while len(self._threads) > max(1, self.max_threads) or self._bytes > self.max_bytes:
            oldest = next((t for t in self._threads.values() if not t.continuing), None)
            if oldest is None:
                break
            self._drop(oldest)
        self._schedule_expiry()
        return held.key in self._threads

    def _release(self, turn: ThreadTurn) -> None:
        """A turn that failed (or was cancelled): the thread stays where it was."""
        if turn.held is not None:
            turn.held.continuing = False
        else:
            self._end_process(turn.key)

    def _touch(self, held: HeldThread) -> None:
        held.last_used = time.monotonic()
        self._threads.pop(held.key, None)
        self._threads[held.key] = held

    def _expire(self) -> None:
        now = time.monotonic()
        for held in list(self._threads.values()):
            if not held.continuing and now - held.last_used > self.ttl:
                self._drop(held)

    def _schedule_expiry(self) -> None:
        """One timer, due when the least recently used thread's `ttl` runs out."""
        if self._expiry is not None or not self._threads:
            return
        oldest = next(iter(self._threads.values()))
        delay = max(0.0, oldest.last_used + self.ttl - time.monotonic()) + 0.05
        self._expiry = asyncio.get_running_loop().call_later(delay, self._expiry_due)

    def _expiry_due(self) -> None:
        self._expiry = None
        self._expire()
        self._schedule_expiry()

    def _drop(self, held: HeldThread, end_process: bool = True) -> None:
        if self._threads.pop(held.key, None) is not None:
            self._bytes -= held.size
        for message_id in held.message_ids:
            if self._by_message.get(message_id) is held:
                del self._by_message[message_id]
        self.counts["dropped"] += 1
        if end_process:
            self._end_process(held.key)

    def _end_process(self, key: str) -> None:
        """End a thread's kept process in the background (the pool would retire it anyway)."""
        task = asyncio.ensure_future(self.bridge.end_session(key))
        self._endings.add(task)
        task.add_done_callback(self._endings.discard)


def _json_size(*parts) -> int:
    """UTF-8 bytes of each part as compact JSON (characters would undercount non-ASCII text)."""
    return sum(len(json.dumps(part, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
               for part in parts)
