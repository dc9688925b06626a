"""Fixtures for the reliability suite: the bridge's config for the server under test, the
misbehaving fake CLI, and a process-table check after every test."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.support import proctable
from tests.support.reliability import raw_request

FAKE_CLI = Path(__file__).resolve().parents[1] / "support" / "fake_cli" / "fake_claude.py"


@pytest.fixture
def bridge_config() -> dict:
    """`c.ClaudeBridge` settings for the server under test; parametrize to change them.
    The pool stays off so "processes running" means "processes answering requests"."""
    return {"pool_enabled": False}


@pytest.fixture
def jp_server_config(jp_server_config, bridge_config):
    return {**jp_server_config, "ClaudeBridge": dict(bridge_config)}


@pytest.fixture(autouse=True)
def nothing_left_behind():
    """After every test (its server stopped too): no zombie children, no CLI still running."""
    yield
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        zombies, running = proctable.zombies(), proctable.running_cli()
        if not zombies and not running:
            return
        time.sleep(0.1)
    assert not zombies, f"unreaped children: {zombies}"
    assert not running, f"CLI processes still running after the test: {running}"


@dataclass
class FakeCli:
    path: Path
    pids_file: Path
    grandchildren_file: Path

    def pids(self) -> list[int]:
        return _read_pids(self.pids_file)

    def grandchildren(self) -> list[int]:
        return _read_pids(self.grandchildren_file)


def _read_pids(path: Path) -> list[int]:
    if not path.exists():
        return []
    return [int(x) for x in path.read_text().split()]


@pytest.fixture
def fake_cli(monkeypatch, tmp_path, cli_env):
    """Use the misbehaving CLI: `fake_cli("crash")` makes the server's next runs crash.
    Returns the FakeCli with the pids of every launch."""
    wrapper = tmp_path / "fake-bin" / "claude"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_CLI}" "$@"\n')
    wrapper.chmod(0o755)
    state = FakeCli(wrapper, tmp_path / "fake-pids", tmp_path / "fake-grandchildren")
    monkeypatch.setenv("FAKE_CLAUDE_PIDS", str(state.pids_file))
    monkeypatch.setenv("FAKE_CLAUDE_GRANDCHILDREN", str(state.grandchildren_file))

    def use(mode: str) -> FakeCli:
        monkeypatch.setenv("CLAUDE_NB_CLI", str(wrapper))
        monkeypatch.setenv("FAKE_CLAUDE_MODE", mode)
        return state

    def real() -> None:
        monkeypatch.setenv("CLAUDE_NB_CLI", cli_env["cli"])

    use.real = real
    use.state = state
    return use


class Api:
    """Raw HTTP to the server under test, authenticated with its token unless told otherwise."""

    def __init__(self, port: int, base_path: str, token: str):
        self.port, self.base_path, self.token = port, base_path, token

    def path(self, route: str) -> str:
        return self.base_path.rstrip("/") + "/" + route.lstrip("/")

    async def request(self, method: str, route: str, payload=None, *, raw: bytes | None = None,
                      headers: dict | None = None, auth: bool = True, timeout: float = 120.0):
        data = raw if raw is not None else (b"" if payload is None else json.dumps(payload).encode())
        hdrs = {"Content-Type": "application/json"} if data else {}
        if auth:
            hdrs["x-api-key"] = self.token
        hdrs.update(headers or {})
        return await raw_request(self.port, method, self.path(route), hdrs, data, timeout=timeout)

    async def post(self, route: str, payload=None, **kw):
        return await self.request("POST", route, payload, **kw)

    async def get(self, route: str, **kw):
        return await self.request("GET", route, **kw)


@pytest.fixture
def api(sdk_base, token, http_server_port) -> Api:
    return Api(http_server_port[1], urlparse(sdk_base).path, token)
