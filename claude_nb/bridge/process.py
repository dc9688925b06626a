"""One `claude` child process speaking stream-json: start, send a user turn, read lines, end.

Each process runs in its own empty private directory so the model never sees the user's files.
"""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import tempfile
import time
from collections import deque

from ..protocol.errors import ApiFailure
from .cli_info import UPGRADE_HINT, cli_info_async, version_text, OLDEST_SUPPORTED
from .command import INSTALL_HINT, LaunchSpec, build_argv, build_env, find_cli
from .spares import new_turn_id, spare_env

# One stdout line can carry a whole message with images: allow large lines.
LINE_LIMIT = 256 * 1024 * 1024
KILL_GRACE = 2.0


def private_workdir() -> str:
    # Only [a-z0-9-] so the CLI's project-folder name for it is predictable (see transcript.py).
    path = os.path.join(tempfile.gettempdir(), "claudenb-" + secrets.token_hex(8))
    os.mkdir(path, 0o700)
    return path


class CliProcess:
    """A started CLI process; `lines()` yields its stdout as parsed JSON objects."""

    def __init__(self, spec: LaunchSpec, *, cli_path: str | None = None, env: dict | None = None,
                 workdir: str | None = None, allow_tools: str = "", niceness: int = 0,
                 spare: bool = False, claimable: bool = False):
        """spare: started to be set up per request (spares.py), without the request-dependent
        environment; claimable: as a parked spare (`--await-claim`). niceness: the CPU
        priority it runs at, below the Jupyter server's."""
        self.spec = spec
        self.niceness = niceness
        self.spare = spare
        self.claimable = claimable
        self.conversation_start: str | None = None   # id of the first user turn since (re)start
        self.cost_seen = 0.0      # total_cost_usd the CLI reported so far (it is cumulative)
        self.info = None          # the CLI's version, learned at start
        self.cli_path = cli_path
        self.base_env = env
        self.allow_tools = allow_tools
        self.workdir = workdir
        self.proc: asyncio.subprocess.Process | None = None
        self.started_at = 0.0
        self.stderr_tail: deque[str] = deque(maxlen=40)
        self.garbage: deque[str] = deque(maxlen=20)
        self._stderr_task: asyncio.Task | None = None
        self.turns = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> "CliProcess":
        cli = find_cli(self.cli_path)
        info = await cli_info_async(cli)
        if info.too_old:
            raise ApiFailure(f"The Claude Code CLI at {cli} is version {info.version_text}; claude-nb "
                             f"needs {version_text(OLDEST_SUPPORTED)} or newer. " + UPGRADE_HINT,
                             should_retry=False)
        if self.workdir is None:
            self.workdir = private_workdir()
        argv = build_argv(cli, self.spec, allow_tools=self.allow_tools)
        self.info = info
        env = build_env(self.spec, self.base_env, info)
        if self.spare:
            env = spare_env(env)
            if self.claimable:
                argv.append("--await-claim")
        if self.niceness > 0:
            nice = shutil.which("nice")
            if nice:       # the CLI below the server: the notebook stays responsive under load
                argv = [nice, "-n", str(self.niceness)] + argv
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *argv, cwd=self.workdir, env=env,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, limit=LINE_LIMIT, start_new_session=True)
        except OSError as exc:       # not a program (a broken install), no permission, no memory
            raise ApiFailure(f"The Claude Code CLI at {cli} could not be started: "
                             f"{exc.strerror or exc}. {INSTALL_HINT}", should_retry=False) from None
        self.started_at = time.monotonic()
        self._stderr_task = asyncio.ensure_future(self._drain_stderr())
        return self

    async def _drain_stderr(self):
        assert self.proc and self.proc.stderr
        while True:
            line = await self.proc.stderr.readline()
            if not line:
                return
            self.stderr_tail.append(line.decode("utf-8", "replace").rstrip())

    def request_env(self, spec: LaunchSpec) -> dict[str, str]:
        """The launch environment a process started for `spec` would get (a spare takes its
        request-dependent part when it is set up)."""
        return build_env(spec, self.base_env, self.info)

    def cost_of_turn(self, result: dict) -> dict:
        """The result line with total_cost_usd for this turn only: a reused process reports
        the total since it started."""
        total = result.get("total_cost_usd")
        if isinstance(total, (int, float)) and not isinstance(total, bool):
            result = {**result, "total_cost_usd": max(0.0, total - self.cost_seen)}
            self.cost_seen = total
        return result

    async def send_user(self, content) -> None:
        """Write one user turn; stdin stays open until the result line arrives. The turn
        carries an id, so the conversation can be rewound to before it."""
        assert self.proc and self.proc.stdin
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        turn_id = new_turn_id()
        line = json.dumps({"type": "user", "uuid": turn_id,
                           "message": {"role": "user", "content": content}}, ensure_ascii=False)
        try:
            self.proc.stdin.write(line.encode("utf-8") + b"\n")
            await self.proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            # It exited before reading the request (a crash at start-up, a wrong binary).
            await self._settle_exit()
            raise ApiFailure("The Claude Code CLI exited before it read the request"
                             + (f" ({self.diagnostics()})" if self.diagnostics() else "") + ".") from None
        self.turns += 1
        if self.conversation_start is None:
            self.conversation_start = turn_id

    async def _settle_exit(self, wait: float = 2.0) -> None:
        """Let a dying process finish so its exit code and last stderr lines can be reported."""
        try:
            await asyncio.wait_for(self.proc.wait(), wait)
            if self._stderr_task is not None:
                await asyncio.wait_for(asyncio.shield(self._stderr_task), wait)
        except Exception:       # a timeout or a closed pipe: report what is known
            pass

    async def lines(self):
        """Parsed JSON objects from stdout until EOF. Non-JSON lines are kept as `garbage`."""
        assert self.proc and self.proc.stdout
        while True:
            try:
                raw = await self.proc.stdout.readline()
            except (ValueError, asyncio.LimitOverrunError):
                self.garbage.append("<a stdout line longer than the line limit>")
                continue
            if not raw:
                return
            text = raw.decode("utf-8", "replace").strip()
            if not text:
                continue
            try:
                obj = json.loads(text)
            except ValueError:
                self.garbage.append(text[:500])
                continue
            if isinstance(obj, dict):
                yield obj
            else:
                self.garbage.append(text[:500])

    async def wait_exited(self, timeout: float = 1.0) -> None:
        """Give a process whose output has ended a moment to exit and finish its stderr, so
        its exit code and last words can be reported."""
        if self.proc is None:
            return
        waits = [self.proc.wait()]
        if self._stderr_task is not None:
            waits.append(asyncio.shield(self._stderr_task))
        try:
            await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), timeout)
        except asyncio.TimeoutError:
            pass

    def diagnostics(self) -> str:
        parts = []
        if self.proc is not None and self.proc.returncode is not None:
            parts.append(f"exit code {self.proc.returncode}")
        if self.stderr_tail:
            parts.append("stderr: " + " | ".join(list(self.stderr_tail)[-5:]))
        if self.garbage:
            parts.append("unparsable output: " + " | ".join(list(self.garbage)[-3:]))
        return "; ".join(parts)

    async def close(self, *, graceful: bool = False) -> None:
        """End the process (stdin EOF, then SIGTERM, then SIGKILL) and remove its directory.

        graceful: the run finished; give the CLI a moment to exit by itself after stdin EOF.
        """
        proc = self.proc
        if proc is not None:
            try:       # also after the CLI exited by itself: the pipe is ours to close
                if proc.stdin and not proc.stdin.is_closing():
                    proc.stdin.close()
            except Exception:
                pass
        if proc is not None and proc.returncode is None:
            if graceful:
                try:
                    await asyncio.wait_for(proc.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
            for sig, wait in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, 5.0)):
                if proc.returncode is not None:
                    break
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                except PermissionError:
                    proc.send_signal(sig)
                try:
                    await asyncio.wait_for(proc.wait(), wait)
                except asyncio.TimeoutError:
                    continue
        if proc is not None and proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except asyncio.TimeoutError:
                pass
        if self._stderr_task is not None:
            self._stderr_task.cancel()
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def kill_now(self) -> None:
        """Synchronous last resort (interpreter shutdown): SIGKILL the process group."""
        if self.proc is not None and self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
