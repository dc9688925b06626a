"""Warm `claude` processes, so a request answers in tens of milliseconds instead of ~0.5 s.

A cold CLI spends ~0.5 s of CPU and ~290 MiB getting ready before its first token; a process
started ahead and waiting on its stdin answers in ~40 ms. The pool keeps such processes ready.

What waits (spares.py has what each CLI version allows, as measured):
- Spares: started before the request they will serve is known and set up for it when it
  comes. On CLIs with claimable spares (2.1.332) a spare takes any single-turn request (model,
  system prompt, max_tokens, thinking, effort, output schema, client tools); on older ones a
  spare serves its own model and takes the rest.
- Shaped processes: started for, or already serving, one exact `LaunchSpec` (everything fixed
  when a process starts). They answer with no setup.

The rules:
- Nothing of a request reaches the next one. Where the CLI can go back to an empty
  conversation (`rewind_conversation`, 2.1.332), a process that answered cleanly waits, shaped,
  holding the conversation it answered: a request whose history is exactly that conversation
  plus one new user turn continues it (one line on its stdin, with no session header: what the
  SDK without threads and LangChain send), and a request of a new conversation rewinds it first
  (the recording upstream shows that request is what a fresh process sends). A process resumed
  from a transcript only continues. Everything else serves ONE request and is closed.
- A request takes a shaped process of its spec, else a spare it fits, else starts cold. What it
  takes is replaced in the background (by a spare where spares fit every shape); a miss marks
  its kind as wanted, so the next such request finds one warm.
- At most `ClaudeBridge.pool_max_idle` processes wait (idle, starting, kept for a chat, being
  rewound or retired). Of those, at most `pool_prestart` are started ahead of a request that
  asks for them: at prewarm, and after a burst, room is filled with the kind wanted last until
  that many wait unused, so a burst of requests like the last one finds several warm
  processes, not one. The rest of the room holds processes that answered and wait for their
  shape again, so several shapes taking turns are each answered by a process of their own, with
  memory spent only on shapes in use. Running ones are capped by the bridge's limiter, so the
  total never exceeds `max_concurrency + pool_max_idle`. When room is needed, the kind used
  least recently goes; when a wanted kind finds the room held by chats' kept processes, the
  oldest chat's process goes (the chat resumes cold).
- Waiting processes retire after `pool_idle_timeout`; one that died (or was killed from
  outside) is noticed, dropped and replaced, and is never handed to a request. One whose setup
  or rewind is refused is closed and the request starts cold.
- A chat session (`bridge.stream(..., session=key)`) keeps its process between turns: the CLI
  holds the conversation itself, so the next turn is one line on its stdin. That happens only
  when the new request's history is exactly the previous request's history plus the answer it
  got plus one new user turn; anything else falls back to the normal path.
"""
from __future__ import annotations

import asyncio
import atexit
import dataclasses
import time
import weakref
from collections import deque
from dataclasses import dataclass

from ..protocol.errors import AnthropicError
from . import spares
from .cli_info import cli_info_async
from .command import LaunchSpec, find_cli
from .events import MessageAccumulator
from .plan import RunPlan, plan_request
from .process import CliProcess

# The model a spare starts with (a claimed spare switches it when the request asks for another).
SPARE_MODEL = "sonnet"

# Placeholder turn used only to turn a prewarm template into a LaunchSpec; never sent.
_TEMPLATE_MESSAGES = [{"role": "user", "content": "."}]
# Answer blocks after which the CLI's own history equals what the client saw.
_PLAIN_BLOCKS = {"text", "thinking", "redacted_thinking"}


@dataclass(frozen=True)
class PoolKey:
    """What makes two processes interchangeable: launch spec, executable, allowed tools; for a
    spare (set up per request) the spec is what it started with."""
    spec: LaunchSpec
    cli: str
    allow_tools: str
    spare: bool = False


@dataclass(eq=False)
class Waiting:
    """A started process waiting for a request (or, with `history`, for the next turn of the
    conversation it holds: a chat's, or, without `session`, whichever request continues it)."""
    proc: CliProcess
    key: PoolKey
    since: float
    history: list | None = None
    session: str | None = None
    watcher: asyncio.Task | None = None
    rewindable: bool = True      # with `history`: can go back to an empty conversation


def spec_for_template(template: dict) -> LaunchSpec:
    """The LaunchSpec a request shaped like `template` (Messages fields but `messages`) gets."""
    return plan_request({**template, "messages": _TEMPLATE_MESSAGES}).spec


def conversation(plan: RunPlan) -> list[dict]:
    """Every turn of the request, whether it goes in through a transcript or on stdin."""
    last = [] if plan.user_content is None else [{"role": "user", "content": plan.user_content}]
    return plan.prior_turns + last


def normal_turns(turns: list[dict]) -> list[dict]:
    """Turns in one comparable form: string content as a text block, no nulls or cache hints."""
    out = []
    for turn in turns:
        content = turn["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        out.append({"role": turn["role"], "content": [_normal_block(b) for b in blocks]})
    return out


def _normal_block(block):
    if not isinstance(block, dict):
        return block
    if block.get("type") == "text":
        return {"type": "text", "text": block.get("text", "")}
    return {k: v for k, v in block.items() if v is not None and k != "cache_control"}


def _exited(proc: CliProcess) -> bool:
    """Gone, even if the event loop has not reaped it yet (killed a moment ago: a zombie)."""
    if proc.proc is None or proc.proc.returncode is not None:
        return True
    try:
        with open(f"/proc/{proc.pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state in (b"Z", b"X")
    except (FileNotFoundError, ProcessLookupError):     # gone between open and read
        return True
    except (OSError, IndexError):
        return False       # no /proc here: trust returncode


class ChatTurn:
    """One request, of a chat session (`session`) or not (None). It sees the events the client
    got, so the pool can tell afterwards what the CLI's history holds and whether the next
    request continues it."""

    def __init__(self, session: str | None, plan: RunPlan, epoch: int):
        self.session = session
        self.plan = plan
        self.epoch = epoch
        self._answer = MessageAccumulator()

    def observe(self, event: dict) -> None:
        if not str(event.get("type", "")).startswith("claude_nb."):
            self._answer.add(event)

    def history_after(self) -> list | None:
        """The conversation the process now holds, or None when it differs from the client's
        view (structured output, tool calls, a cut answer) and must not be continued."""
        message = self._answer.message
        if message is None or message.get("stop_reason") != "end_turn" or self.plan.structured:
            return None
        if any(not isinstance(b, dict) or b.get("type") not in _PLAIN_BLOCKS
               for b in message.get("content") or []):
            return None
        return normal_turns(conversation(self.plan)
                            + [{"role": "assistant", "content": message["content"]}])


class ProcessPool:
    """Pre-started CLI processes for one `ClaudeBridge` (which holds the settings)."""

    def __init__(self, bridge):
        self.bridge = bridge
        self.log = bridge.log
        self.idle: list[Waiting] = []
        self.sessions: dict[str, Waiting] = {}
        self.starting: set[CliProcess] = set()
        self.closing: dict[CliProcess, asyncio.Task] = {}     # being ended, each by its own task
        self.counts = {"hits": 0, "misses": 0, "session_hits": 0, "dead_replaced": 0,
                       "retired": 0, "started": 0, "spare_hits": 0, "reused": 0, "continued": 0,
                       "setup_refused": 0, "rewind_refused": 0}
        self._caps: dict[str, spares.Capabilities] = {}       # per CLI executable
        self._demand: dict[PoolKey, float] = {}      # key -> when a request last wanted it
        self._refill_queue: deque[PoolKey] = deque()
        self._refill_task: asyncio.Task | None = None
        self._reaper_task: asyncio.Task | None = None
        self._epochs: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._spawn_error_logged = False
        self._close_task: asyncio.Task | None = None
        self._loop_settled = True     # False on a new loop until a second request shows it stays
        self._filling = False         # fill spare room (see _refill): after prewarm or a burst
        self._ended_with_loop = False # closed because its loop ended: usable on the next one
        _POOLS.add(self)

    # -- settings (live from the bridge's traits) ------------------------------------------
    @property
    def max_idle(self) -> int:
        return max(0, int(self.bridge.pool_max_idle))

    @property
    def max_prestart(self) -> int:
        return max(0, min(self.max_idle, int(self.bridge.pool_prestart)))

    @property
    def idle_timeout(self) -> float:
        return max(0.05, float(self.bridge.pool_idle_timeout))

    def key_for(self, spec: LaunchSpec) -> PoolKey | None:
        try:
            cli = find_cli(self.bridge.cli_path)
        except AnthropicError:
            return None      # the cold path reports where it looked
        return PoolKey(dataclasses.replace(spec, resume=None), cli, self.bridge.allowed_tools)

    async def _caps_for(self, cli: str) -> spares.Capabilities:
        caps = self._caps.get(cli)
        if caps is None:
            caps = self._caps[cli] = spares.capabilities(await cli_info_async(cli))
        return caps

    def _supply(self, key: PoolKey) -> PoolKey:
        """What to start so that a request of `key` finds a process warm: a spare where spares
        take any shape, else a process shaped for it."""
        caps = self._caps.get(key.cli)
        if key.spare or caps is None or not caps.claim:
            return key
        return PoolKey(spares.spare_spec(SPARE_MODEL), key.cli, key.allow_tools, spare=True)

    def _reuses(self, key: PoolKey) -> bool:
        caps = self._caps.get(key.cli)
        return caps is not None and caps.rewind and not key.allow_tools

    # -- what the bridge calls -------------------------------------------------------------
    async def prewarm(self, specs: list[LaunchSpec]) -> None:
        """Mark `specs` as wanted and start a process for each (within the idle cap)."""
        self._bind_loop()
        self._filling = True
        for spec in specs:
            key = self.key_for(spec)
            if key is not None:
                await self._caps_for(key.cli)
                self._want(self._supply(key))

    def chat_turn(self, session: str | None, plan: RunPlan) -> ChatTurn:
        return ChatTurn(session, plan, self._epochs.get(session, 0) if session else 0)

    async def open(self, plan: RunPlan, turn: ChatTurn | None = None) -> CliProcess | None:
        """A process with the request's user turn already on its stdin: the chat's kept one, or
        a warm one. None: the caller starts a cold process (a miss, or history to resume)."""
        self._bind_loop()
        if self._closed:
            return None
        if turn is not None and turn.session is not None:
            proc = await self._continue_session(turn, plan)
            if proc is not None:
                return proc
        key = self.key_for(plan.spec)
        if key is None:
            return None
        if plan.prior_turns:
            # The process that gave the answer before this turn, if it still holds exactly
            # this conversation; else earlier turns go in through `--resume`, fixed at start.
            return await self._continue_conversation(key, plan)
        caps = await self._caps_for(key.cli)
        supply = self._supply(key)
        settled = self._loop_settled
        self._loop_settled = True
        wanted_before = supply in self._demand
        self._touch(key)
        # A process shaped for this very spec (waiting, or being rewound after its last answer).
        for _ in range(2):     # a dead one is dropped, then one more try on a fresh process
            entry = self._take_idle(key)
            if entry is None:
                break
            if entry.history is not None and not await self._rewind(entry):
                continue
            if await self._send(entry.proc, plan.user_content):
                self.counts["hits"] += 1
                if entry.proc.turns > 1:
                    self.counts["reused"] += 1
                if settled and not self._reuses(key):
                    self._want(supply)     # its replacement: this one is used up
                return entry.proc
            await self._dead_on_taking(entry)
        if settled:
            self._want(supply)     # the replacement for what this request takes, or a miss
        # A spare, set up for this request.
        if supply.spare:
            for _ in range(2):
                entry = self._take_idle(supply)
                if entry is None:
                    break
                proc = await self._set_up(entry, plan, caps)
                if proc is not None:
                    self.counts["hits"] += 1
                    self.counts["spare_hits"] += 1
                    return proc
        self.counts["misses"] += 1
        if wanted_before and settled:
            self._filling = True     # more requests of a known kind than warm processes
            self._kick_refill()
        return None

    async def _dead_on_taking(self, entry: Waiting) -> None:
        self.counts["dead_replaced"] += 1
        self.log.info("claude_nb pool: pid %s was gone when taken (%s); using a fresh one",
                      entry.proc.pid, entry.proc.diagnostics() or "no output")
        await self._discard(entry.proc)
        self._want(self._supply(entry.key))    # its own replacement

    async def _set_up(self, entry: Waiting, plan: RunPlan, caps: spares.Capabilities) -> CliProcess | None:
        """The spare set up as a process launched for the request, with its user turn sent;
        None when it refused (it is closed: nothing half set up answers a request)."""
        proc = entry.proc
        if _exited(proc):
            await self._dead_on_taking(entry)
            return None
        try:
            await spares.set_up(proc, plan.spec, proc.request_env(plan.spec), caps=caps,
                                spare_model=entry.key.spec.model)
        except (spares.SetupRefused, asyncio.TimeoutError, OSError, ValueError) as exc:
            self.counts["setup_refused"] += 1
            self.log.warning("claude_nb pool: a spare (pid %s) could not be set up for a request "
                             "(%s); starting a process for it", proc.pid, exc or "timed out")
            await self._discard(proc)
            return None
        proc.spec = plan.spec          # from now on it is shaped: it may be reused for this spec
        if await self._send(proc, plan.user_content):
            return proc
        await self._dead_on_taking(entry)
        return None

    async def recycle(self, proc: CliProcess, spec: LaunchSpec, history: list | None = None, *,
                      rewindable: bool = True) -> bool:
        """After a request answered cleanly, where the CLI can go back to an empty
        conversation: keep the process for the next request of `spec` (it waits like any
        other, within the idle cap). With `history` (the conversation it now holds, as the
        client saw it) it waits as it is: a request continuing that conversation is one more
        line on its stdin, and a new conversation rewinds it first (`rewindable`: False for a
        process resumed from a transcript, which only continues). Without, it is rewound now.
        False: the caller closes it."""
        try:
            return await self._recycle(proc, spec, history, rewindable)
        except BaseException:
            if not any(e.proc is proc for e in self.idle):
                proc.kill_now()       # cancelled half way: the process must not linger
            raise

    async def _recycle(self, proc: CliProcess, spec: LaunchSpec, history: list | None,
                       rewindable: bool) -> bool:
        key = self.key_for(spec)
        if (key is None or self._closed or self.max_idle == 0 or not self._reuses(key)
                or proc.conversation_start is None or _exited(proc)
                or proc.turns >= spares.MAX_REQUESTS_PER_PROCESS
                or (history is None and not rewindable)):
            return False
        if history is None and not await self._rewind_to_empty(proc):
            return False
        while self._occupied() >= self.max_idle:
            victim = self._victim_for(key)
            if victim is None:
                return False
            await self._discard(victim.proc, victim)
        if self._closed:
            return False
        entry = Waiting(proc, key, time.monotonic(), history=history, rewindable=rewindable)
        self.idle.append(entry)
        self._watch(entry)
        return True

    async def _rewind_to_empty(self, proc: CliProcess) -> bool:
        """Back to an empty conversation; False (counted, logged) when the CLI refuses."""
        try:
            await spares.rewind(proc, proc.conversation_start)
        except (spares.SetupRefused, asyncio.TimeoutError, OSError) as exc:
            self.counts["rewind_refused"] += 1
            self.log.info("claude_nb pool: pid %s could not be rewound (%s); closing it",
                          proc.pid, exc or "timed out")
            return False
        proc.conversation_start = None
        return True

    async def _rewind(self, entry: Waiting) -> bool:
        """A waiting process that holds a conversation, back to an empty one for a new request;
        False (and it is closed) when it cannot."""
        if not _exited(entry.proc) and await self._rewind_to_empty(entry.proc):
            entry.history = None
            return True
        await self._discard(entry.proc)
        return False

    async def _continue_conversation(self, key: PoolKey, plan: RunPlan) -> CliProcess | None:
        """The waiting process that holds this request's conversation up to its last turn."""
        turns = conversation(plan)
        if len(turns) < 2 or turns[-1]["role"] != "user":
            return None
        history = normal_turns(turns[:-1])
        entry = max((e for e in self.idle if e.key == key and e.history == history),
                    key=lambda e: e.since, default=None)
        if entry is None:
            return None
        self._detach(entry)
        self._touch(key)
        if await self._send(entry.proc, turns[-1]["content"]):
            self.counts["hits"] += 1
            self.counts["continued"] += 1
            return entry.proc
        await self._discard(entry.proc)
        return None

    def _victim_for(self, key: PoolKey) -> Waiting | None:
        """Which idle process goes to make room for a returning one of `key`: a second spare
        first, then the shaped process used least recently, then the last spare."""
        spares_idle = sorted((e for e in self.idle if e.key.spare), key=lambda e: e.since)
        if len(spares_idle) > 1:
            return spares_idle[0]
        shaped = [e for e in self.idle if not e.key.spare and e.key != key]
        if shaped:
            return min(shaped, key=lambda e: (self._demand.get(e.key, 0.0), e.since))
        return spares_idle[0] if spares_idle else None

    async def keep(self, turn: ChatTurn, proc: CliProcess) -> bool:
        """After a chat turn that ended well: keep its process for the next turn. False: the
        caller closes it."""
        try:
            return await self._keep(turn, proc)
        except BaseException:
            entry = self.sessions.get(turn.session)
            if entry is None or entry.proc is not proc:
                proc.kill_now()       # cancelled while making room: the process must not linger
            raise

    async def _keep(self, turn: ChatTurn, proc: CliProcess) -> bool:
        if (self._closed or self.max_idle == 0 or _exited(proc)
                or turn.epoch != self._epochs.get(turn.session, 0)
                or self.bridge.allowed_tools):     # built-in tool turns would hide in its history
            return False
        history = turn.history_after()
        key = self.key_for(turn.plan.spec)
        if history is None or key is None:
            return False
        previous = self.sessions.pop(turn.session, None)
        if previous is not None:          # a concurrent turn of the same chat: the newest wins
            await self._discard(previous.proc, previous)
        while self._occupied() >= self.max_idle:
            victim = self._least_recent_idle() or self._oldest_session()
            if victim is None:
                return False
            await self._discard(victim.proc, victim)
        if self._closed or turn.epoch != self._epochs.get(turn.session, 0):
            return False
        entry = Waiting(proc, key, time.monotonic(), history=history, session=turn.session)
        self.sessions[turn.session] = entry
        self._watch(entry)
        return True

    async def end_session(self, session: str) -> None:
        """Forget a chat (reset): its process is closed, a turn in flight is not kept."""
        self._epochs[session] = self._epochs.get(session, 0) + 1
        entry = self.sessions.pop(session, None)
        if entry is not None:
            await self._discard(entry.proc, entry)

    def processes(self) -> list[CliProcess]:
        """Every process the pool holds (waiting, kept for a chat, or being retired)."""
        return ([e.proc for e in self.idle] + [e.proc for e in self.sessions.values()]
                + [p for p in self.starting if p.proc is not None] + list(self.closing))

    def stats(self) -> dict:
        return {"idle": len(self.idle), "sessions": len(self.sessions), "starting": len(self.starting),
                "closing": len(self.closing),
                "spares": sum(1 for e in self.idle if e.key.spare), "max_idle": self.max_idle,
                "prestart": self.max_prestart,
                "wanted": len(self._demand), **self.counts}

    @property
    def closed(self) -> bool:
        """Closed for good (close() was called); not when only its event loop ended."""
        return self._closed and not self._ended_with_loop

    async def close(self) -> None:
        """End every process the pool holds; every caller waits for the same ending."""
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            self.kill_now()      # its processes belong to a loop that is gone
            self._ended_with_loop = False
            _POOLS.discard(self)
            return
        if self._close_task is None:
            self._closed = True
            if self._reaper_task is not None and self._reaper_task is not asyncio.current_task():
                self._reaper_task.cancel()
            self._close_task = asyncio.ensure_future(self._close())
        await asyncio.shield(self._close_task)

    async def _close(self) -> None:
        if self._refill_task is not None:
            # Let a spawn under way finish: it sees _closed and ends its process itself.
            await asyncio.gather(self._refill_task, return_exceptions=True)
        entries = self.idle + list(self.sessions.values())
        self.idle, self.sessions = [], {}
        await asyncio.gather(*(self._discard(e.proc, e) for e in entries), return_exceptions=True)
        # Retirements under way (the reaper's, a watcher's) end too before the pool is closed.
        await asyncio.gather(*list(self.closing.values()), return_exceptions=True)
        _POOLS.discard(self)

    def close_soon(self) -> None:
        """close() from synchronous code (a trait change): on the pool's loop if it runs."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None and loop is self._loop:
            loop.create_task(self.close())
        else:
            self.kill_now()

    def kill_now(self) -> None:
        """Synchronous last resort (interpreter exit, a dead event loop)."""
        self._closed = True
        for proc in self.processes():
            proc.kill_now()
        self.idle, self.sessions = [], {}
        self.closing.clear()

    # -- the idle set ----------------------------------------------------------------------
    def _occupied(self) -> int:
        return len(self.idle) + len(self.sessions) + len(self.starting) + len(self.closing)

    def _unused(self) -> int:
        """Processes started ahead that have not answered a request yet (starting or waiting)."""
        return len(self.starting) + sum(1 for e in self.idle if e.proc.turns == 0)

    def _take_idle(self, key: PoolKey) -> Waiting | None:
        """For a new conversation: an empty process first (the oldest: it has had the longest
        to get ready), then the one holding the conversation used least recently (rewound by
        the caller); never one that cannot be rewound."""
        candidates = (e for e in self.idle if e.key == key and (e.history is None or e.rewindable))
        entry = min(candidates, key=lambda e: (e.history is not None, e.since), default=None)
        if entry is not None:
            self._detach(entry)
        return entry

    def _detach(self, entry: Waiting) -> None:
        """Take a waiting process out of the idle set (it stops being watched there)."""
        self.idle.remove(entry)
        if entry.watcher is not None:
            entry.watcher.cancel()

    def _least_recent_idle(self, than: PoolKey | None = None) -> Waiting | None:
        """The idle process whose spec was wanted least recently (and before `than`'s)."""
        limit = self._demand.get(than, float("inf")) if than is not None else float("inf")
        candidates = [e for e in self.idle if e.key != than
                      and self._demand.get(e.key, 0.0) < limit]
        return min(candidates, key=lambda e: (self._demand.get(e.key, 0.0), e.since), default=None)

    def _oldest_session(self) -> Waiting | None:
        return min(self.sessions.values(), key=lambda e: e.since, default=None)

    def _touch(self, key: PoolKey) -> None:
        """`key` was asked for now (what room is made by, and a spare's fill follows)."""
        self._demand.pop(key, None)
        self._demand[key] = time.monotonic()

    def _want(self, key: PoolKey) -> None:
        self._touch(key)
        self._refill_queue.append(key)
        self._kick_refill()

    def _kick_refill(self) -> None:
        if self._refill_task is None or self._refill_task.done():
            self._refill_task = asyncio.ensure_future(self._refill())

    async def _refill(self) -> None:
        """Start the wanted processes one at a time, making room by retiring the least
        recently wanted spec's idle process; never past the idle cap."""
        while self._refill_queue and not self._closed:
            key = self._refill_queue.popleft()
            if time.monotonic() - self._demand.get(key, float("-inf")) > self.idle_timeout:
                continue
            key = self._supply(key)
            if self._occupied() >= self.max_idle:
                victim = self._least_recent_idle(than=key)
                if victim is None and not any(e.key == key for e in self.idle):
                    # Kept chat/thread processes fill the room and none of this shape waits: the
                    # oldest chat's goes rather than starve these requests (it resumes, slower).
                    victim = self._oldest_session()
                if victim is None:
                    continue   # full of processes as wanted as this one
                await self._discard(victim.proc, victim)
                if self._occupied() >= self.max_idle:
                    continue
            await self._spawn(key)
        # Room left under the caps: fill it with the spec wanted last, so a burst of requests
        # like the last one finds up to `pool_prestart` warm processes. Only once demand has
        # outrun supply (or at prewarm): a script's lone calls keep one process.
        while (self._filling and not self._closed and self._occupied() < self.max_idle
               and self._unused() < self.max_prestart):
            key = self._latest_demand()
            if key is None or not await self._spawn(key):
                return       # a process that cannot start now is not retried in a tight loop

    def _latest_demand(self) -> PoolKey | None:
        """What to start for the spec wanted most recently, if within the idle timeout."""
        if not self._demand:
            return None
        key, used = next(reversed(self._demand.items()))
        return self._supply(key) if time.monotonic() - used <= self.idle_timeout else None

    async def _spawn(self, key: PoolKey) -> bool:
        """Start one warm process for `key`; False when it could not be started."""
        caps = self._caps.get(key.cli)
        proc = CliProcess(key.spec, cli_path=key.cli, allow_tools=key.allow_tools,
                          niceness=self.bridge.cli_niceness,
                          spare=key.spare, claimable=key.spare and caps is not None and caps.claim)
        self.bridge.started.add(proc)
        self.starting.add(proc)
        try:
            await proc.start()
        except Exception as exc:
            self.starting.discard(proc)
            await proc.close()
            if not self._spawn_error_logged:
                self._spawn_error_logged = True
                self.log.warning("claude_nb pool: could not start a warm CLI process: %s", exc)
            return False
        self.starting.discard(proc)
        self.counts["started"] += 1
        if self._closed:
            await self._discard(proc)
            return True
        entry = Waiting(proc, key, time.monotonic())
        self.idle.append(entry)
        self._watch(entry)
        return True

    async def _send(self, proc: CliProcess, content) -> bool:
        if _exited(proc):
            return False
        try:
            await proc.send_user(content)
        except (OSError, RuntimeError, AssertionError):
            return False       # stdin gone: it died while waiting
        return True

    async def _discard(self, proc: CliProcess, entry: Waiting | None = None) -> None:
        if entry is not None:
            if entry in self.idle:
                self.idle.remove(entry)
            if entry.session is not None and self.sessions.get(entry.session) is entry:
                del self.sessions[entry.session]
            if entry.watcher is not None and entry.watcher is not asyncio.current_task():
                entry.watcher.cancel()
        task = self.closing.get(proc)
        if task is None:
            task = self.closing[proc] = asyncio.ensure_future(self._end(proc))
        # Shielded: whoever asked may be cancelled (the reaper at close()), the ending is not.
        await asyncio.shield(task)

    async def _end(self, proc: CliProcess) -> None:
        try:
            await proc.close()
        finally:
            self.closing.pop(proc, None)
            # A process that exited by itself still has its stdin pipe open: close it here, or
            # the transport is closed at garbage collection, maybe after its loop.
            if proc.proc is not None and proc.proc.stdin is not None:
                proc.proc.stdin.close()

    # -- chat sessions ---------------------------------------------------------------------
    async def _continue_session(self, turn: ChatTurn, plan: RunPlan) -> CliProcess | None:
        entry = self.sessions.get(turn.session)
        if entry is None:
            return None
        del self.sessions[turn.session]
        if entry.watcher is not None:
            entry.watcher.cancel()
        turns = conversation(plan)
        if (entry.key != self.key_for(plan.spec) or len(turns) < 2 or turns[-1]["role"] != "user"
                or entry.history != normal_turns(turns[:-1])):
            # The conversation changed (edited, or other settings): its process is stale.
            await self._discard(entry.proc)
            return None
        if await self._send(entry.proc, turns[-1]["content"]):
            self.counts["session_hits"] += 1
            return entry.proc
        await self._discard(entry.proc)
        return None

    # -- watching and retiring -------------------------------------------------------------
    def _watch(self, entry: Waiting) -> None:
        entry.watcher = asyncio.ensure_future(self._watch_exit(entry))

    async def _watch_exit(self, entry: Waiting) -> None:
        await entry.proc.proc.wait()
        waiting = entry in self.idle or self.sessions.get(entry.session) is entry
        if not waiting or self._closed:
            return
        self.log.info("claude_nb pool: waiting pid %s exited (%s); replacing it", entry.proc.pid,
                      entry.proc.diagnostics() or "no output")
        await self._discard(entry.proc, entry)
        if entry.session is None:
            self.counts["dead_replaced"] += 1
            self._refill_queue.append(entry.key)
            self._kick_refill()

    async def _reap(self) -> None:
        try:
            while not self._closed:
                timeout = self.idle_timeout
                await asyncio.sleep(min(max(timeout / 4, 0.05), 30.0))
                now = time.monotonic()
                expired = [e for e in self.idle + list(self.sessions.values())
                           if now - e.since > timeout]
                for entry in expired:
                    self.counts["retired"] += 1
                    await self._discard(entry.proc, entry)
                for key, used in list(self._demand.items()):
                    if now - used > timeout:
                        del self._demand[key]
        except asyncio.CancelledError:
            if not self._closed:
                # Cancelled without close(): the loop is ending (asyncio.run cancels what is
                # left, then waits for it). End the processes while the loop still runs.
                self._ended_with_loop = True
                await self.close()
            raise

    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self._loop is not None:
            if self._closed and not self._ended_with_loop:
                return           # closed for good: open() answers None
            # Used from a new event loop (e.g. one `asyncio.run` per call): the old loop's
            # pipes are unusable, so its processes go and the pool starts over, starting no
            # replacement until a second request shows this loop stays (no process per call
            # started only to be killed at the next call).
            self.kill_now()
            self._loop_settled = False
            self._ended_with_loop = False
            self._closed = False
            self._close_task = None
            self._demand.clear()
            self._refill_queue.clear()
            self._filling = False
            self.starting = set()
            _POOLS.add(self)
        self._loop = loop
        self._refill_task = None
        self._reaper_task = loop.create_task(self._reap())


_POOLS: "weakref.WeakSet[ProcessPool]" = weakref.WeakSet()


@atexit.register
def _kill_pools_at_exit() -> None:
    for pool in list(_POOLS):
        pool.kill_now()
