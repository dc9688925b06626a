"""The process table as /proc shows it: which CLI processes the test process has, which of its
children are zombies, and whether anything a CLI started is still around."""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    state: str          # R, S, D, Z, T ...
    session: int
    cmdline: tuple[str, ...]

    @property
    def is_cli(self) -> bool:
        # every CLI launch (real or fake) reads and writes stream-json
        return "--output-format" in self.cmdline and "stream-json" in self.cmdline


def read(pid: int) -> Proc | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("utf-8", "replace")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = tuple(a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # the command name is in parentheses and may hold spaces: split after the last ')'
    fields = stat[stat.rindex(")") + 2:].split()
    return Proc(pid=pid, ppid=int(fields[1]), state=fields[0], session=int(fields[3]),
                cmdline=cmdline)


def table() -> list[Proc]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            proc = read(int(name))
            if proc is not None:
                out.append(proc)
    return out


def descendants(root: int | None = None) -> list[Proc]:
    root = os.getpid() if root is None else root
    procs = table()
    children: dict[int, list[Proc]] = {}
    for p in procs:
        children.setdefault(p.ppid, []).append(p)
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child.pid)
    return out


def running_cli(*, top_level: bool = False) -> list[Proc]:
    """CLI processes below the test process that have not exited. top_level: only those the
    server started itself (a CLI briefly forks copies of itself before it execs a helper)."""
    me = os.getpid()
    return [p for p in descendants() if p.is_cli and p.state != "Z"
            and (not top_level or p.ppid == me)]


def zombies() -> list[Proc]:
    """Children of the test process that exited and were never reaped."""
    return [p for p in descendants() if p.state == "Z"]


def left_behind(pids) -> list[Proc]:
    """Processes still running from these CLI runs: the pids themselves or anything in their
    sessions (each CLI starts its own session, so its children keep its pid as session id)."""
    pids = set(pids)
    return [p for p in table() if (p.pid in pids or p.session in pids) and p.state != "Z"]


async def settle(check, timeout: float = 5.0, step: float = 0.05):
    """Poll `check()` until it returns something falsy or `timeout` passes; return the last
    value (so `assert not await settle(...)` shows what was left)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    value = check()
    while value and loop.time() < end:
        await asyncio.sleep(step)
        value = check()
    return value
