"""Shared fixtures: the real Claude Code CLI, the recording fake upstream, a Jupyter server
with the extension enabled, and an isolated environment for every test."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.fake_upstream import FakeUpstream

HERE = Path(__file__).resolve().parent

pytest_plugins = ["pytest_jupyter.jupyter_server"]

CLI_DIR = HERE / "cli"
NATIVE_CLI = CLI_DIR / "node_modules" / "@anthropic-ai" / "claude-code-linux-x64" / "claude"
WRAPPER_CLI = CLI_DIR / "node_modules" / ".bin" / "claude"


def _install_cli() -> None:
    npm = shutil.which("npm")
    if not npm:
        pytest.exit("npm is needed to install the Claude Code CLI for the tests", 2)
    subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(CLI_DIR)],
                   check=True, cwd=CLI_DIR)


@pytest.fixture(scope="session")
def claude_cli() -> str:
    """Path of the real CLI: $CLAUDE_NB_TEST_CLI, else tests/cli (installed from npm once)."""
    explicit = os.environ.get("CLAUDE_NB_TEST_CLI")
    if explicit:
        return explicit
    if not NATIVE_CLI.exists() and not WRAPPER_CLI.exists():
        _install_cli()
    return str(NATIVE_CLI if NATIVE_CLI.exists() else WRAPPER_CLI)


@pytest.fixture(scope="session")
def _upstream_server():
    server = FakeUpstream()
    yield server
    server.close()


@pytest.fixture
def upstream(_upstream_server):
    _upstream_server.reset()
    yield _upstream_server
    _upstream_server.reset()


@pytest.fixture
def cli_env(monkeypatch, tmp_path, claude_cli, upstream):
    """Environment in which the real CLI talks only to the fake upstream (API-key mode)."""
    config = tmp_path / "claude-config"
    config.mkdir()
    monkeypatch.setenv("ANTHROPIC_BASE_URL", upstream.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "upstream-test-key")
    monkeypatch.delenv("CLAUDE_CODE_OAUTH_TOKEN", raising=False)
    monkeypatch.setenv("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    monkeypatch.setenv("CLAUDE_NB_CLI", claude_cli)
    monkeypatch.delenv("CLAUDECODE", raising=False)
    return {"config_dir": config, "upstream": upstream, "cli": claude_cli}


@pytest.fixture
def subscription_env(cli_env, monkeypatch):
    """The CLI logged in as a subscription user (OAuth token) against the fake upstream."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-test-subscription")
    return cli_env


@pytest.fixture
def bridge(cli_env, jp_asyncio_loop):
    from claude_nb.bridge import ClaudeBridge
    b = ClaudeBridge()
    yield b
    jp_asyncio_loop.run_until_complete(b.close())     # warm pool processes included


@pytest.fixture(autouse=True)
def _isolated_data_dir(monkeypatch, tmp_path):
    data = tmp_path / "jupyter-data"
    data.mkdir()
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(data))


@pytest.fixture(autouse=True)
def _no_uncaught_server_exceptions(caplog):
    """A handler that raises past our error envelopes is a server bug, whatever the test asserts."""
    yield
    records = caplog.get_records("setup") + caplog.get_records("call") + caplog.records
    uncaught = [r.getMessage()[:300] for r in records if "Uncaught exception" in r.getMessage()]
    assert not uncaught, uncaught


@pytest.fixture(autouse=True)
def _fresh_cli_status():
    """/health caches `claude auth status` for 30 s per CLI path; each test has its own login."""
    from claude_nb.bridge import status
    status._cache.clear()
    yield
    status._cache.clear()


@pytest.fixture
def jp_server_config(jp_server_config):
    """Every Jupyter server in the tests runs with the extension enabled."""
    server = dict(jp_server_config.get("ServerApp", {}))
    server["jpserver_extensions"] = {**server.get("jpserver_extensions", {}), "server_ext": True}
    return {**jp_server_config, "ServerApp": server}


@pytest.fixture
def claude_app(jp_serverapp, jp_asyncio_loop):
    """The extension app, started as `jupyter server` starts it once its loop runs
    (pytest-jupyter initializes extensions but never calls their start hooks)."""
    manager = jp_serverapp.extension_manager
    app = next(iter(manager.extension_apps["server_ext"]))
    jp_asyncio_loop.run_until_complete(manager.start_extension("server_ext"))
    return app


@pytest.fixture
def sdk_base(jp_fetch, claude_app, http_server_port, jp_base_url):
    """Base URL for SDK clients (jp_fetch makes the HTTP server listen)."""
    return f"http://127.0.0.1:{http_server_port[1]}{jp_base_url}"


@pytest.fixture
def token(jp_serverapp):
    return jp_serverapp.identity_provider.token


@pytest.fixture
def served(sdk_base, jp_serverapp, cli_env, monkeypatch):
    """The kernel's default client talks to a Jupyter server running the extension."""
    from claude_nb.kernel.transports import HttpTransport, discover
    transport = HttpTransport(sdk_base, jp_serverapp.identity_provider.token)
    monkeypatch.setattr(discover, "_default_transport", transport)
    return transport


@pytest.fixture
def local(cli_env, monkeypatch):
    """The in-process transport, as a kernel with no Jupyter server gets it."""
    from claude_nb.kernel.transports import InProcessTransport, discover
    monkeypatch.delenv("CLAUDE_NB_URL", raising=False)
    monkeypatch.delenv("JPY_PARENT_PID", raising=False)
    transport = InProcessTransport()
    monkeypatch.setattr(discover, "_default_transport", transport)
    yield transport
    transport.close()
