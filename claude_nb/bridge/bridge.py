"""The one bridge to the Claude Code CLI, shared by the server, the batch runner and the kernel.

`ClaudeBridge.stream(request)` runs one Messages request through a CLI process and yields the
Anthropic stream events a client receives; `create(request)` returns the whole Message. Every
failure is an `AnthropicError`: before the first event the caller answers an HTTP error, after
it an `event: error`.
"""
from __future__ import annotations

import asyncio
import os
import signal
import time
import weakref
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable

from traitlets import Bool, Dict, Float, Int, List, Unicode
from traitlets.config import LoggingConfigurable

from ..protocol.errors import (AnthropicError, ApiFailure, AuthenticationFailed, GatewayTimeout,
                               error_for_status, new_request_id)
from ..protocol.models import DEFAULT_MAX_TOKENS, DEFAULT_MODEL
from .cli_output import checked_event, clean_result
from .cli_info import CliInfo, cli_info_async
from .cli_models import cli_models_async
from .command import CliNotFound, LaunchSpec, find_cli
from .events import EventTranslator, MessageAccumulator, normalize_usage
from .limiter import BACKGROUND, LIVE, Limiter
from .plan import FileResolver, RunPlan, plan_request
from .pool import ChatTurn, ProcessPool, spec_for_template
from ..protocol.pricing import estimate_cost
from .process import CliProcess, private_workdir
from .transcript import remove_transcript, write_transcript

def find_cli_or_none(configured: str | None) -> str | None:
    try:
        return find_cli(configured)
    except CliNotFound:
        return None


LOGIN_HINT = ("The Claude Code CLI is not logged in. Open a terminal, run `claude` and log in "
              "(or run `claude setup-token`), then retry.")


@dataclass
class RunRecord:
    """What one CLI run cost, from its own `result` line: the usage ledger's unit."""
    request_id: str
    source: str
    model: str
    started_at: float
    duration_ms: int
    usage: dict
    cost_usd: float
    status: str = "succeeded"            # succeeded | errored | canceled
    error_type: str | None = None
    cost_estimated: bool = False
    extra: dict = field(default_factory=dict)


class ClaudeBridge(LoggingConfigurable):
    """Runs Messages requests through `claude` processes."""

    cli_path = Unicode(None, allow_none=True, config=True,
                       help="Path to the `claude` executable (else $CLAUDE_NB_CLI, else PATH).")
    max_concurrency = Int(4, config=True,
                          help="CLI processes running requests at once; more requests wait in a FIFO queue.")
    request_timeout = Float(600.0, config=True,
                            help="Seconds a request may take before its process is ended and a "
                                 "timeout error is answered.")
    allowed_tools = Unicode("", config=True,
                            help="Built-in Claude Code tools the model may use, comma separated "
                                 "(e.g. 'Read,Grep'). Empty: none, the model can't touch files.")
    pool_enabled = Bool(True, config=True,
                        help="Keep pre-started CLI processes warm (first token in tens of ms instead "
                             "of ~0.5 s). Off: every request starts its own process.")
    pool_max_idle = Int(6, config=True,
                        help="Processes kept waiting at most, chat sessions included; on top of "
                             "max_concurrency running ones. Beyond the pre-started ones (see "
                             "pool_prestart) only processes that already answered wait here, "
                             "each for the next request of its shape (each ~150-220 MiB RSS, "
                             "~85 MiB of it its own), until pool_idle_timeout.")
    pool_prestart = Int(2, config=True,
                        help="Processes started before a request asks for them (at server start, "
                             "and to fill up after a burst) at most, counted among those waiting "
                             "that have not answered yet.")
    pool_idle_timeout = Float(600.0, config=True,
                              help="Seconds a waiting process (or a chat session's) is kept unused "
                                   "before it is ended.")
    cli_niceness = Int(10, config=True,
                       help="CPU priority (nice value, 0-19) the CLI processes run at: below the "
                            "Jupyter server's, so the notebook stays responsive while answers "
                            "stream. 0 keeps the server's own priority.")
    pool_prewarm = List(Dict(), default_value=[{"model": DEFAULT_MODEL, "max_tokens": DEFAULT_MAX_TOKENS}],
                        config=True,
                        help="Request shapes (Messages API fields except `messages`: model, "
                             "max_tokens, system, thinking, ...) to start warm processes for when "
                             "the pool starts. The default is what %%claude cells and "
                             "claude.message() send by default. Later the pool keeps warm what "
                             "was used recently.")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.limiter = Limiter(self.max_concurrency)
        self.file_resolver: FileResolver | None = None
        # The result cache (claude_nb.service.cache.ResultCache attaches itself): answers
        # requests that opt in with `cache=True` from stored answers, and stores new ones.
        self.result_cache = None
        self.run_listeners: list[Callable[[RunRecord], None]] = []
        self.rate_limit_listeners: list[Callable[[dict], None]] = []
        self.live: set[CliProcess] = set()
        # Every process this bridge or its pool started, so none outlives close() whatever
        # path it was on (handed out, rewinding, being claimed, starting as a spare).
        self.started: "weakref.WeakSet[CliProcess]" = weakref.WeakSet()
        self.pool: ProcessPool | None = None     # created on first use or by start_pool()
        self._closed = False
        self._cli_checked: str | None = None
        self.observe(lambda change: self.limiter.resize(change["new"]), "max_concurrency")
        self.observe(self._pool_toggled, "pool_enabled")

    # -- public API -----------------------------------------------------------------------
    def stream(self, body: dict, *, source: str = "api", request_id: str | None = None,
               background: bool = False, session: str | None = None,
               cache: bool = False) -> AsyncIterator[dict]:
        """The client's stream events for a validated request body (an async generator).

        session: a chat conversation's key. Its process is kept between turns and gets the next
        user turn directly when the next request continues exactly this one (see pool.py).
        cache: answer from the result cache when it holds this exact request (no CLI runs; a
        `claude_nb.cache` event says whether it did), and store the answer otherwise.
        """
        request_id = request_id or new_request_id()
        if cache and self.result_cache is not None:
            return self._through_cache(body, source, request_id, background, session)
        return self._stream(body, source, request_id, background, session)

    async def _through_cache(self, body: dict, source: str, request_id: str, background: bool,
                             session: str | None) -> AsyncIterator[dict]:
        # first: the CLI's own alias table decides which model a request's key names
        await self._check_cli_once()
        results = self.result_cache
        # SQLite with fsync'd writes (the hit's ledger entry): off the event loop
        replay = await asyncio.to_thread(results.answer, body, request_id=request_id, source=source)
        yield {"type": "claude_nb.cache", "hit": replay is not None}
        if replay is not None:
            for event in replay:
                yield event
            return
        answer = MessageAccumulator()
        # aclosing: a client that leaves ends the CLI process now, not at garbage collection
        async with aclosing(self._stream(body, source, request_id, background, session)) as run:
            async for event in run:
                if event.get("type") == "claude_nb.final_usage":
                    if answer.message is not None:
                        answer.message["usage"] = event["usage"]
                else:
                    answer.add(event)
                yield event
        if answer.message is not None:
            await asyncio.to_thread(results.save, body, answer.message)

    async def _stream(self, body: dict, source: str, request_id: str, background: bool,
                      session: str | None) -> AsyncIterator[dict]:
        await self._check_cli_once()
        plan = plan_request(body, resolve_file=self.file_resolver)
        # Every request's answer is followed (a chat's, and any other's: a later request may
        # continue its conversation on the process that gave it).
        pool = self._active_pool()
        turn = pool.chat_turn(session, plan) if pool is not None else None
        deadline = time.monotonic() + self.request_timeout
        async with self.limiter.slot(BACKGROUND if background else LIVE):
            if self._closed:
                raise ApiFailure("The server is shutting down.", should_retry=True)
            async for event in self._run(plan, source, request_id, deadline, turn):
                if turn is not None:
                    turn.observe(event)
                yield event

    async def create(self, body: dict, *, info: dict | None = None, **kwargs) -> dict:
        """The whole Message. info: a dict that gets `cached: True` for a result cache hit."""
        acc = MessageAccumulator()
        final_usage: dict = {}
        async for event in self.stream(body, **kwargs):
            if event.get("type") == "claude_nb.final_usage":
                final_usage = event["usage"]
                continue
            if event.get("type") == "claude_nb.cache":
                if info is not None:
                    info["cached"] = bool(event.get("hit"))
                continue
            acc.add(event)
        message = acc.message
        if message is None:
            raise ApiFailure("The Claude Code CLI returned no message.")
        if final_usage:
            message["usage"] = final_usage
        return message

    async def _check_cli_once(self) -> None:
        if self._cli_checked is None or self._cli_checked != find_cli_or_none(self.cli_path):
            await self.check_cli()       # hosts that never call it at start (the kernel), a new CLI

    def cli_executable(self) -> str:
        return find_cli(self.cli_path)

    async def check_cli(self) -> CliInfo | None:
        """Learn the installed CLI's version and log what matters about it (the server calls
        this at startup): not found, older than supported, newer than tested."""
        try:
            path = self.cli_executable()
        except CliNotFound as exc:
            self.log.warning("claude_nb: %s", exc.message)
            return None
        info = await cli_info_async(path)
        self.log.info("claude_nb: Claude Code CLI %s at %s", info.version_text, path)
        for warning in info.warnings():
            self.log.warning("claude_nb: %s", warning)
        if not info.too_old:
            await cli_models_async(path)      # the aliases as this CLI resolves them
        self._cli_checked = path
        return info

    async def start_pool(self) -> None:
        """Start the warm pool with the `pool_prewarm` processes (the server calls this at
        startup; without it the pool starts empty on the first request)."""
        pool = self._active_pool()
        if pool is None:
            return
        specs = []
        for template in self.pool_prewarm:
            try:
                specs.append(spec_for_template(template))
            except Exception as exc:
                self.log.warning("c.ClaudeBridge.pool_prewarm entry %r skipped: %s", template, exc)
        await pool.prewarm(specs)

    def pool_status(self) -> dict:
        """The warm pool's counters, for /health."""
        if not self.pool_enabled:
            return {"enabled": False}
        return {"enabled": True, **(self.pool.stats() if self.pool is not None else {})}

    async def end_session(self, session: str) -> None:
        """Forget a chat session's kept process (its conversation was reset)."""
        if self.pool is not None:
            await self.pool.end_session(session)

    async def close(self) -> None:
        """End every process this bridge started (server shutdown)."""
        self._closed = True
        if self.pool is not None:
            await self.pool.close()
        await asyncio.gather(*(p.close() for p in list(self.live)), return_exceptions=True)
        await asyncio.gather(*(p.close() for p in list(self.started) if p.alive),
                             return_exceptions=True)

    # -- the warm pool --------------------------------------------------------------------
    def _active_pool(self) -> ProcessPool | None:
        if not self.pool_enabled or self._closed:
            return None
        if self.pool is None or self.pool.closed:
            self.pool = ProcessPool(self)
        return self.pool

    def _pool_toggled(self, change) -> None:
        if not change["new"] and self.pool is not None:
            self.pool.close_soon()        # close() awaits it

    # -- one run --------------------------------------------------------------------------
    async def _open_warm(self, plan: RunPlan, turn: ChatTurn | None = None) -> CliProcess | None:
        """A chat's kept process or a warm one from the pool, with the request's last user turn
        on its stdin; None when the request needs a cold start."""
        pool = self._active_pool()
        return None if pool is None else await pool.open(plan, turn)

    async def _open_cold(self, plan: RunPlan) -> tuple[CliProcess, str | None]:
        """A new process with the request on its stdin, and the transcript file to remove
        afterwards (when earlier turns go in through `--resume`)."""
        proc, path = await self._start_cold(plan)
        if plan.user_content is None:
            return proc, path           # the CLI answers the transcript's last turn by itself
        try:
            await proc.send_user(plan.user_content)
        except (OSError, RuntimeError) as exc:
            await proc.close()
            if path:
                remove_transcript(path)
            raise ApiFailure(f"The Claude Code CLI did not take the request ({exc}"
                             + (f"; {proc.diagnostics()}" if proc.diagnostics() else "") + ").")
        return proc, path

    async def _replace_dead(self, dead: CliProcess, plan: RunPlan) -> tuple[CliProcess, str | None]:
        await dead.wait_exited()
        self.log.info("claude_nb: warm pid %s ended before answering (%s); starting a new one",
                      dead.pid, dead.diagnostics() or "no output")
        self.live.discard(dead)
        await dead.close()
        if self.pool is not None:
            self.pool.counts["dead_replaced"] += 1
        proc, path = await self._open_cold(plan)
        self.live.add(proc)
        return proc, path

    async def _start_cold(self, plan: RunPlan) -> tuple[CliProcess, str | None]:
        if plan.prior_turns:
            workdir = private_workdir()
            session_id, path = write_transcript(plan.prior_turns, workdir)
            spec = LaunchSpec(**{**plan.spec.__dict__, "resume": session_id})
            proc = CliProcess(spec, cli_path=self.cli_path, workdir=workdir,
                              allow_tools=self.allowed_tools, niceness=self.cli_niceness)
            self.started.add(proc)
            try:
                await proc.start()
            except BaseException:
                remove_transcript(path)
                await proc.close()
                raise
            return proc, path
        proc = CliProcess(plan.spec, cli_path=self.cli_path, allow_tools=self.allowed_tools,
                          niceness=self.cli_niceness)
        self.started.add(proc)
        try:
            await proc.start()
        except BaseException:
            await proc.close()
            raise
        return proc, None

    async def _run(self, plan: RunPlan, source: str, request_id: str, deadline: float,
                   turn: ChatTurn | None = None):
        started = time.time()
        transcript = None
        proc = await self._open_warm(plan, turn)
        warm = proc is not None
        if proc is None:
            proc, transcript = await self._open_cold(plan)
        self.live.add(proc)
        translator = EventTranslator(client_tools=plan.client_tools,
                                     stop_sequences=plan.stop_sequences, structured=plan.structured,
                                     max_tool_calls=plan.max_tool_calls)
        result: dict | None = None
        model = plan.model
        stream_usage: dict = {}
        error: AnthropicError | None = None
        answered = False     # a stream event or result came: the request reached upstream
        # One timer for the whole request (not a timeout per stdout line: that is a task and a
        # timer per streamed event): at the deadline the process is killed, its output ends.
        running = [proc]
        expired = []

        def expire():
            expired.append(True)
            _kill_group(running[0])

        watchdog = asyncio.get_running_loop().call_at(deadline, expire)   # loop time: monotonic
        try:
            lines = proc.lines().__aiter__()
            while True:
                try:
                    line = await lines.__anext__()
                except StopAsyncIteration:
                    if expired or time.monotonic() >= deadline:
                        raise GatewayTimeout(f"The request took longer than {self.request_timeout:g} "
                                             "seconds and was stopped (c.ClaudeBridge.request_timeout).")
                    if warm and not answered:
                        # A waiting process that died as it was handed out (killed a moment
                        # before, not yet reaped): it never answered, so a cold start does.
                        warm = False
                        proc, transcript = await self._replace_dead(proc, plan)
                        running[0] = proc
                        lines = proc.lines().__aiter__()
                        continue
                    break
                kind = line.get("type")
                answered = answered or kind in ("stream_event", "result")
                if kind == "stream_event":
                    event = checked_event(line.get("event"))
                    if event is None:
                        proc.garbage.append("a malformed stream event: " + str(line)[:300])
                        continue
                    if event.get("type") == "message_start":
                        stream_usage = dict(event["message"].get("usage") or {})
                        if isinstance(event["message"].get("model"), str):
                            model = event["message"]["model"] or model
                    elif event.get("type") == "message_delta":
                        stream_usage.update({k: v for k, v in (event.get("usage") or {}).items()
                                             if v is not None})
                    for out in translator.feed(event):
                        yield out
                    if translator.cut:
                        break     # a stop sequence ended the message: stop the CLI generating
                elif kind == "user":
                    translator.observe_cli_user(line)
                elif kind == "result":
                    result = clean_result(proc.cost_of_turn(line))
                    break
                elif kind == "rate_limit_event":
                    info = line.get("rate_limit_info")
                    if isinstance(info, dict):
                        for listener in self.rate_limit_listeners:
                            listener(info)
                elif kind == "system" and line.get("subtype") == "init":
                    if isinstance(line.get("model"), str):
                        model = line["model"] or model
            if result is not None:
                error = self._result_error(result, translator)
                if error is None and translator.awaiting_verdict and plan.structured:
                    error = self._structured_error(result, translator)
                if error is None and translator.awaiting_verdict and not translator.ended_without_reason:
                    for out in translator.release():
                        yield out
                usage = normalize_usage(result.get("usage"))
                if error is None and not translator.finished:
                    error = ApiFailure("The answer was cut off: the upstream stream ended before the "
                                       "message was complete, so it is not returned as whole.")
            elif translator.finished:
                # Ended by a stop sequence: the CLI was stopped before its result line, so the
                # output count is the translator's estimate.
                stream_usage["output_tokens"] = translator.output_tokens
                usage = normalize_usage(stream_usage)
            else:
                await proc.wait_exited()
                error = ApiFailure("The Claude Code CLI ended without an answer"
                                   + (f" ({proc.diagnostics()})" if proc.diagnostics() else "") + ".")
                usage = normalize_usage(stream_usage)
            if error is not None:
                raise error
            yield {"type": "claude_nb.final_usage", "usage": usage}
        except AnthropicError as exc:
            error = exc
            raise
        except (asyncio.CancelledError, GeneratorExit):
            error = AnthropicError("The client went away.", status=499, type="canceled")
            raise
        finally:
            watchdog.cancel()
            self.live.discard(proc)
            chat = turn is not None and turn.session is not None
            kept = (not expired and chat and error is None and result is not None
                    and self.pool is not None and await self.pool.keep(turn, proc))
            if (not kept and not expired and not chat and error is None and result is not None
                    and self.pool is not None and not self.pool.closed
                    and result.get("subtype") == "success" and translator.finished
                    and not translator.cut and not translator.saw_client_tool):
                # Answered cleanly: where the CLI can, it waits holding the conversation (the
                # next request may continue it), or back at an empty one for a new request.
                # Only a one-exchange conversation rewinds to empty: after a continued turn
                # 2.1.332 answers the rewind to the first turn with "stale target" (measured).
                history = turn.history_after() if turn is not None else None
                rewindable = not transcript and not plan.prior_turns
                kept = await self.pool.recycle(proc, plan.spec, history, rewindable=rewindable)
            if not kept:
                await proc.close(graceful=result is not None)
            if transcript:
                remove_transcript(transcript)
            self._record(request_id, source, model, started, result, stream_usage, error)

    def _structured_error(self, result: dict, translator: EventTranslator) -> AnthropicError | None:
        """Structured output: the JSON is returned only once the CLI has checked it."""
        if (result.get("structured_output") is not None or translator.saw_client_tool
                or translator.upstream_stop_reason in ("max_tokens", "refusal")):
            return None      # accepted; or the answer is a tool call, cut, or refused as at the API
        reason = translator.structured_error or "the model answered without calling the output tool"
        return ApiFailure("The model's answer did not match output_config.format's JSON schema "
                          f"({reason}). Retrying may succeed.", should_retry=True)

    def _result_error(self, result: dict, translator: EventTranslator) -> AnthropicError | None:
        subtype = result.get("subtype")
        if not result.get("is_error"):
            return None
        if subtype == "error_max_turns" and translator.upstream_done:
            return None      # a client tool call ended the turn: the message is complete
        text = str(result.get("result") or result.get("errors") or subtype or "unknown error")
        status = result.get("api_error_status")
        if not status:
            lowered = text.lower()
            if "not logged in" in lowered or "/login" in lowered or "oauth" in lowered:
                return AuthenticationFailed(LOGIN_HINT + f" (CLI said: {text})", should_retry=False)
            if "credit balance" in lowered:
                return AnthropicError(text, status=402, type="billing_error", should_retry=False)
            return ApiFailure(f"The Claude Code CLI failed: {text}")
        if status in (401, 403) and "api key" not in text.lower():
            return error_for_status(status, LOGIN_HINT + f" (upstream said: {text})", should_retry=False)
        return error_for_status(status, text)

    def _record(self, request_id, source, model, started, result, stream_usage, error) -> None:
        if result is not None:
            usage = normalize_usage(result.get("usage"))
            cost = result.get("total_cost_usd")
            model = next(iter(result.get("modelUsage") or {}), model)
            estimated = cost is None
            if estimated:
                cost = estimate_cost(model, usage)
        else:
            usage = normalize_usage(stream_usage)
            cost = estimate_cost(model, usage)
            estimated = True
        if result is None and not stream_usage:
            return    # nothing reached upstream: nothing to bill
        status = "succeeded" if error is None else ("canceled" if error.status == 499 else "errored")
        record = RunRecord(request_id=request_id, source=source, model=model, started_at=started,
                           duration_ms=int((time.time() - started) * 1000), usage=usage,
                           cost_usd=cost, status=status,
                           error_type=None if error is None else error.type,
                           cost_estimated=estimated)
        for listener in self.run_listeners:
            try:
                listener(record)
            except Exception:   # a broken ledger must not fail the user's request
                self.log.exception("usage listener failed")


def _kill_group(proc: CliProcess) -> None:
    """SIGKILL a running CLI and what it started (its directory stays for close())."""
    if proc.proc is not None and proc.proc.returncode is None:
        try:
            os.killpg(proc.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            try:
                proc.proc.kill()
            except ProcessLookupError:
                pass
