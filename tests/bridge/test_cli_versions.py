"""The supported CLI window: the bridge learns the installed version, refuses one older than
supported with the upgrade command, runs a newer one with a warning, and says which in /health
and `%claude status`."""
from __future__ import annotations

import asyncio
import json

import pytest

from claude_nb.bridge import cli_info
from claude_nb.bridge.cli_info import NEWEST_TESTED, OLDEST_SUPPORTED, CliInfo, parse_version, version_text
from claude_nb.protocol.errors import AnthropicError


def lying_cli(tmp_path, real_cli: str, version: str):
    """The real CLI behind a wrapper that reports another version (how an older or a newer
    release looks to the bridge, without installing one)."""
    path = tmp_path / "claude-as-other-version"
    path.write_text("#!/bin/sh\n"
                    f'if [ "$1" = "--version" ]; then echo "{version} (Claude Code)"; exit 0; fi\n'
                    f'exec "{real_cli}" "$@"\n')
    path.chmod(0o755)
    return str(path)


def test_versions_are_read_from_what_the_cli_prints():
    assert parse_version("2.1.332 (Claude Code)") == (2, 1, 332)
    assert parse_version("claude 3.0.1-beta") == (3, 0, 1)
    assert parse_version("garbage") is None
    assert version_text((2, 1, 197)) == "2.1.197"


def test_the_window_decides_what_is_said():
    assert CliInfo("c", OLDEST_SUPPORTED).warnings() == []
    assert CliInfo("c", NEWEST_TESTED).warnings() == []
    old = CliInfo("c", (2, 0, 5))
    assert old.too_old and "npm install -g @anthropic-ai/claude-code@latest" in old.warnings()[0]
    new = CliInfo("c", (NEWEST_TESTED[0], NEWEST_TESTED[1], NEWEST_TESTED[2] + 1))
    assert not new.too_old and new.newer_than_tested and "newer" in new.warnings()[0]
    assert CliInfo("c", None).at_least(9, 9, 9)   # an unreadable version counts as recent


def test_the_installed_cli_is_inside_the_window(claude_cli):
    info = cli_info.cli_info(claude_cli)
    assert info.version is not None
    assert OLDEST_SUPPORTED <= info.version, info.version_text


async def test_an_older_cli_is_refused_with_the_upgrade_command(bridge, upstream, cli_env, tmp_path,
                                                               monkeypatch):
    monkeypatch.setenv("CLAUDE_NB_CLI", lying_cli(tmp_path, cli_env["cli"], "2.0.1"))
    with pytest.raises(AnthropicError) as info:
        await bridge.create({"model": "sonnet", "max_tokens": 20,
                             "messages": [{"role": "user", "content": "hi"}]})
    message = info.value.message
    assert "2.0.1" in message and version_text(OLDEST_SUPPORTED) in message
    assert "npm install -g @anthropic-ai/claude-code@latest" in message
    assert upstream.message_requests == []          # nothing was run


async def test_a_newer_cli_runs_and_health_warns(jp_fetch, cli_env, upstream, tmp_path, monkeypatch):
    newer = version_text((NEWEST_TESTED[0], NEWEST_TESTED[1], NEWEST_TESTED[2] + 50))
    monkeypatch.setenv("CLAUDE_NB_CLI", lying_cli(tmp_path, cli_env["cli"], newer))
    resp = await jp_fetch("v1", "messages", method="POST", body=json.dumps(
        {"model": "sonnet", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}))
    assert json.loads(resp.body)["content"][0]["text"] == "You said: hi"
    health = json.loads((await jp_fetch("health", params={"fresh": "1"})).body)
    assert health["cli"]["version"] == newer
    assert health["cli"]["supported"] == {"oldest": version_text(OLDEST_SUPPORTED),
                                          "newest_tested": version_text(NEWEST_TESTED), "ok": True}
    assert any("newer than the newest version" in w for w in health["cli"]["warnings"])
    assert health["status"] == "ok"


async def test_health_is_degraded_for_an_older_cli(jp_fetch, cli_env, tmp_path, monkeypatch):
    monkeypatch.setenv("CLAUDE_NB_CLI", lying_cli(tmp_path, cli_env["cli"], "2.0.1"))
    health = json.loads((await jp_fetch("health", params={"fresh": "1"})).body)
    assert health["status"] == "degraded" and health["cli"]["supported"]["ok"] is False
    assert "npm install -g @anthropic-ai/claude-code@latest" in health["cli"]["message"]


def test_claude_status_shows_the_version_and_window(local, claude_cli, capsys):
    from IPython.core.interactiveshell import InteractiveShell
    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance()
    try:
        shell.extension_manager.load_extension("claude_nb")
        shell.run_line_magic("claude", "status")
    finally:
        shell.extension_manager.unload_extension("claude_nb")
        shell.clear_instance()
    out = capsys.readouterr().out
    installed = cli_info.cli_info(claude_cli).version_text
    assert f"version {installed}" in out
    assert f"supported {version_text(OLDEST_SUPPORTED)} to {version_text(NEWEST_TESTED)}" in out
    assert "logged in" in out


async def test_a_cli_that_cannot_start_leaves_the_pool_idle(cli_env, tmp_path, monkeypatch):
    # The pool fills its spare room after prewarm; a CLI it cannot start (here: too old) must
    # end that, not retry in a tight loop that starves the server.
    from claude_nb.bridge import ClaudeBridge
    monkeypatch.setenv("CLAUDE_NB_CLI", lying_cli(tmp_path, cli_env["cli"], "2.0.1"))
    bridge = ClaudeBridge(pool_max_idle=2)
    try:
        await bridge.start_pool()
        if bridge.pool._refill_task is not None:
            await asyncio.wait_for(bridge.pool._refill_task, 30)
        assert bridge.pool.counts["started"] == 0 and not bridge.pool.idle
    finally:
        await bridge.close()


async def test_a_relative_cli_path_still_runs(bridge, upstream, cli_env, monkeypatch):
    # Each CLI process runs in its own private directory, so the path must not depend on the
    # server's working directory.
    import os
    cli = cli_env["cli"]
    monkeypatch.chdir(os.path.dirname(os.path.dirname(cli)))
    monkeypatch.setenv("CLAUDE_NB_CLI", os.path.relpath(cli))
    message = await bridge.create({"model": "sonnet", "max_tokens": 20,
                                   "messages": [{"role": "user", "content": "hi"}]})
    assert message["content"][0]["text"] == "You said: hi"
