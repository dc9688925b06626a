"""Which Claude Code CLI is installed: its version, learned once per executable.

The CLI ships several releases a week and its launch details move (what it adds upstream, which
flags exist). The bridge adapts its launch to the version it finds; the supported window is
`OLDEST_SUPPORTED` .. `NEWEST_TESTED` (the versions the test suite runs on). Older versions are
refused with an upgrade hint; newer ones run, with a warning in /health and the log.
"""
from __future__ import annotations

import asyncio
import os
import re
import subprocess
from dataclasses import dataclass

OLDEST_SUPPORTED = (2, 1, 197)
NEWEST_TESTED = (2, 1, 332)

UPGRADE_HINT = ("Upgrade it with `npm install -g @anthropic-ai/claude-code@latest` "
                "(or `claude update`).")

_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def parse_version(text: str) -> tuple[int, int, int] | None:
    match = _VERSION.search(text or "")
    return tuple(int(part) for part in match.groups()) if match else None   # type: ignore[return-value]


def version_text(version: tuple[int, ...] | None) -> str:
    return ".".join(map(str, version)) if version else "unknown"


@dataclass(frozen=True)
class CliInfo:
    path: str
    version: tuple[int, int, int] | None      # None: `--version` printed no version number

    @property
    def version_text(self) -> str:
        return version_text(self.version)

    @property
    def too_old(self) -> bool:
        return self.version is not None and self.version < OLDEST_SUPPORTED

    @property
    def newer_than_tested(self) -> bool:
        return self.version is not None and self.version > NEWEST_TESTED

    def at_least(self, *version: int) -> bool:
        """Whether this CLI is `version` or newer (an unknown version counts as the newest:
        users upgrade daily, and a newer CLI is more likely than an ancient one)."""
        return self.version is None or self.version >= tuple(version)

    def warnings(self) -> list[str]:
        if self.too_old:
            return [f"Claude Code CLI {self.version_text} at {self.path} is older than the oldest "
                    f"supported version {version_text(OLDEST_SUPPORTED)}. " + UPGRADE_HINT]
        if self.newer_than_tested:
            return [f"Claude Code CLI {self.version_text} is newer than the newest version "
                    f"claude-nb was tested with ({version_text(NEWEST_TESTED)}); it is used as "
                    "is. Report anything that misbehaves."]
        if self.version is None:
            return [f"`{self.path} --version` printed no version number; assuming a recent CLI."]
        return []


_cache: dict[tuple, CliInfo] = {}


def cache_key(path: str) -> tuple:
    """What identifies one installed binary: its path, and its mtime and size (an upgrade in place
    is a new binary)."""
    try:
        stat = os.stat(path)
        return (path, stat.st_mtime_ns, stat.st_size)
    except OSError:
        return (path,)


def cached_cli_info(path: str) -> CliInfo | None:
    return _cache.get(cache_key(path))


def cli_info(path: str, timeout: float = 20.0) -> CliInfo:
    """The version of the CLI at `path` (runs `path --version` once per installed binary)."""
    key = cache_key(path)
    info = _cache.get(key)
    if info is None:
        try:
            out = subprocess.run([path, "--version"], capture_output=True, text=True,
                                 timeout=timeout, stdin=subprocess.DEVNULL).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        info = _cache[key] = CliInfo(path, parse_version(out))
    return info


async def cli_info_async(path: str) -> CliInfo:
    """`cli_info` without blocking the event loop on the first call."""
    info = cached_cli_info(path)
    if info is not None:
        return info
    return await asyncio.get_running_loop().run_in_executor(None, cli_info, path)
