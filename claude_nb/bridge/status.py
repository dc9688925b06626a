"""Whether the CLI is there, its version and whether it is logged in — without a request.

`claude auth status` answers from local state in ~0.5 s; the answer is cached briefly so a
monitoring loop polling /health does not start a process every time.
"""
from __future__ import annotations

import asyncio
import json
import time

from .cli_info import NEWEST_TESTED, OLDEST_SUPPORTED, cli_info_async, version_text
from .command import INSTALL_HINT, CliNotFound, build_env, find_cli, LaunchSpec

CACHE_SECONDS = 30.0
_cache: dict = {}


async def _run(argv: list[str], timeout: float = 15.0) -> tuple[int, str]:
    env = build_env(LaunchSpec(model="sonnet"))
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT, env=env)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, "timed out"
    return proc.returncode, out.decode("utf-8", "replace").strip()


async def cli_status(cli_path: str | None, *, fresh: bool = False) -> dict:
    try:
        cli = find_cli(cli_path)
    except CliNotFound as exc:
        return {"found": False, "path": None, "version": None,
                "supported": {"oldest": version_text(OLDEST_SUPPORTED),
                              "newest_tested": version_text(NEWEST_TESTED), "ok": False},
                "warnings": [], "logged_in": False, "auth_method": None, "message": exc.message}
    cached = _cache.get(cli)
    if cached and not fresh and time.monotonic() - cached[0] < CACHE_SECONDS:
        return cached[1]
    info = await cli_info_async(cli)
    _, auth_raw = await _run([cli, "auth", "status"])
    try:
        auth = json.loads(auth_raw)
    except ValueError:
        auth = {}
    found = info.version is not None or bool(auth)
    status = {"found": found, "path": cli,
              "version": info.version_text if info.version else None,
              "supported": {"oldest": version_text(OLDEST_SUPPORTED),
                            "newest_tested": version_text(NEWEST_TESTED),
                            "ok": found and not info.too_old},
              "warnings": info.warnings() if found else [],
              "logged_in": bool(auth.get("loggedIn")), "auth_method": auth.get("authMethod"),
              "message": None}
    if not found:
        status["message"] = f"`{cli} --version` printed no version. " + INSTALL_HINT
    elif info.too_old:
        status["message"] = info.warnings()[0]
    elif not status["logged_in"]:
        status["message"] = "The Claude Code CLI is not logged in: run `claude` in a terminal and log in."
    _cache[cli] = (time.monotonic(), status)
    return status
