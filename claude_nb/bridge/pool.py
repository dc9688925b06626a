"""Warm `claude` processes, so a request answers in tens of milliseconds instead of ~0.5 s.

A cold CLI spends ~0.5 s of CPU and ~290 MiB getting ready before its first token; a process
started ahead and waiting on its stdin answers in ~40 ms. The pool keeps such processes for the
launch specs used recently (a `LaunchSpec` is everything fixed when a process starts).

The rules:
- A pooled process serves ONE request and is then closed, so nothing of a request can reach the
  next one. Taking a process starts its replacement in the background; a miss is answered by a
  cold start and marks its spec as wanted, so the next request with that spec finds one warm.
- At most `ClaudeBridge.pool_max_idle` processes wait (idle, starting, kept for a chat, or being
  retired). Room under that cap is filled with the spec wanted last, so a burst of requests
  like the last one finds up to `pool_max_idle` warm processes, not one. Running ones are
  capped by the bridge's limiter, so the total never exceeds `max_concurrency + pool_max_idle`.
  When room is needed, the spec used least recently goes; when a wanted spec finds the room
  held by chats' kept processes, the oldest chat's process goes (the chat resumes cold).
- Waiting processes retire after `pool_idle_timeout`; one that died (or was killed from
  outside) is noticed, dropped and replaced, and is never handed to a request.
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
from .command import LaunchSpec, find_cli
from .events import MessageAccumulator
from .plan import RunPlan, plan_request
from .process import CliProcess

# Placeholder turn used only to turn a prewarm template into a LaunchSpec; never sent.
_TEMPLATE_MESSAGES = [{"role": "user", "content": "."}]
# Answer blocks after which the CLI's own history equals what the client saw.
_PLAIN_BLOCKS = {"text", "thinking", "redacted_thinking"}


@dataclass(frozen=True)
class PoolKey:
    """What makes two processes interchangeable: launch spec, executable, allowed tools."""
    spec: LaunchSpec
    cli: str
    allow_tools: str


@dataclass(eq=False)
class Waiting:
    """A started process waiting for a request (or, with `history`, for a chat's next turn)."""
    proc: CliProcess
    key: PoolKey
    since: float
    history: list | None = None
    session: str | None = None
    watcher: asyncio.Task | None = None


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
    """One request of a chat session. It sees the events the client got, so the pool can tell
    afterwards what the CLI's history holds and whether the next request continues it."""

    def __init__(self, session: str, plan: RunPlan, epoch: int):
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
                       "retired": 0, "started": 0}
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
    def idle_timeout(self) -> float:
        return max(0.05, float(self.bridge.pool_idle_timeout))

    def key_for(self, spec: LaunchSpec) -> PoolKey | None:
        try:
            cli = find_cli(self.bridge.cli_path)
        except AnthropicError:
            return None      # the cold path reports where it looked
        return PoolKey(dataclasses.replace(spec, resume=None), cli, self.bridge.allowed_tools)

    # -- what the bridge calls -------------------------------------------------------------
    async def prewarm(self, specs: list[LaunchSpec]) -> None:
        """Mark `specs` as wanted and start a process for each (within the idle cap)."""
        self._bind_loop()
        self._filling = True
        for spec in specs:
            key = self.key_for(spec)
            if key is not None:
                self._want(key)

    def chat_turn(self, session: str, plan: RunPlan) -> ChatTurn:
        return ChatTurn(session, plan, self._epochs.get(session, 0))

    async def open(self, plan: RunPlan, turn: ChatTurn | None = None) -> CliProcess | None:
        """A process with the request's user turn already on its stdin: the chat's kept one, or
        a warm one. None: the caller starts a cold process (a miss, or history to resume)."""
        self._bind_loop()
        if self._closed:
            return None
        if turn is not None:
            proc = await self._continue_session(turn, plan)
            if proc is not None:
                return proc
        if plan.prior_turns:
            return None        # earlier turns go in through `--resume`, fixed at start
        key = self.key_for(plan.spec)
        if key is None:
            return None
        wanted_before = key in self._demand
        if self._loop_settled:
            self._want(key)    # the replacement for what this request takes
        self._loop_settled = True
        for _ in range(2):     # a dead one is dropped, then one more try on a fresh process
            entry = self._take_idle(key)
            if entry is None:
                break
            if await self._send(entry.proc, plan.user_content):
                self.counts["hits"] += 1
                return entry.proc
            self.counts["dead_replaced"] += 1
            self.log.info("claude_nb pool: pid %s was gone when taken (%s); using a fresh one",
                          entry.proc.pid, entry.proc.diagnostics() or "no output")
            await self._discard(entry.proc)
            self._want(key)    # its own replacement (the retry may take the one started above)
        self.counts["misses"] += 1
        if wanted_before and self._loop_settled:
            self._filling = True     # more requests of a known shape than warm processes
            self._kick_refill()
        return None

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
                "closing": len(self.closing), "max_idle": self.max_idle,
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

    def _take_idle(self, key: PoolKey) -> Waiting | None:
        # The oldest first: it has had the longest to get ready.
        for entry in sorted((e for e in self.idle if e.key == key), key=lambda e: e.since):
            self.idle.remove(entry)
            if entry.watcher is not None:
                entry.watcher.cancel()
            return entry
        return None

    def _least_recent_idle(self, than: PoolKey | None = None) -> Waiting | None:
        """The idle process whose spec was wanted least recently (and before `than`'s)."""
        limit = self._demand.get(than, float("inf")) if than is not None else float("inf")
        candidates = [e for e in self.idle if e.key != than
                      and self._demand.get(e.key, 0.0) < limit]
        return min(candidates, key=lambda e: (self._demand.get(e.key, 0.0), e.since), default=None)

    def _oldest_session(self) -> Waiting | None:
        return min(self.sessions.values(), key=lambda e: e.since, default=None)

    def _want(self, key: PoolKey) -> None:
        self._demand.pop(key, None)
        self._demand[key] = time.monotonic()
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
        # Room left under the cap: fill it with the spec wanted last, so a burst of requests
        # like the last one finds as many warm processes as the cap allows. Only once demand
        # has outrun supply (or at prewarm): a script's lone calls keep one process.
        while self._filling and not self._closed and self._occupied() < self.max_idle:
            key = self._latest_demand()
            if key is None or not await self._spawn(key):
                return       # a process that cannot start now is not retried in a tight loop

    def _latest_demand(self) -> PoolKey | None:
        """The spec wanted most recently, if that was within the idle timeout."""
        if not self._demand:
            return None
        key, used = next(reversed(self._demand.items()))
        return key if time.monotonic() - used <= self.idle_timeout else None

    async def _spawn(self, key: PoolKey) -> bool:
        """Start one warm process for `key`; False when it could not be started."""
        proc = CliProcess(key.spec, cli_path=key.cli, allow_tools=key.allow_tools)
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
