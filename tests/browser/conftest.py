"""One Jupyter server and one Chromium for the browser tests of a module.

The server is a real `jupyter lab` process (JupyterLab 4 and Notebook 7 both served by it) with
the extension, talking to the recording fake upstream through the real Claude Code CLI. The
browser is Debian's Chromium driven by Playwright (Playwright's own browser download is not
reachable from our machines). `scripts/test.sh` installs Chromium; without it these tests skip.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.browser.jupyter_page import NotebookPage
from tests.browser.upstream_script import responder

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_path() -> str | None:
    """$CLAUDE_NB_CHROMIUM, else Debian's /usr/bin/chromium, else one on PATH."""
    for candidate in (os.environ.get("CLAUDE_NB_CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterServer:
    """`jupyter lab` in its own process group, isolated config/data/runtime dirs."""

    def __init__(self, workdir: Path, env: dict):
        self.root = workdir / "notebooks"
        shutil.copytree(ROOT / "notebooks", self.root)
        config = workdir / "config"
        (config / "labconfig").mkdir(parents=True)
        # The extension on, as its installed config turns it on (explicit: tests must not
        # depend on how the package was installed).
        (config / "jupyter_server_config.json").write_text(json.dumps(
            {"ServerApp": {"jpserver_extensions": {"server_ext": True}}}))
        # No news toast over the page (it asks a question and covers cells).
        (config / "labconfig" / "page_config.json").write_text(json.dumps(
            {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
        self.port = _free_port()
        self.token = "browser-test-token"
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = ARTIFACTS / "jupyter-server.log"
        ARTIFACTS.mkdir(exist_ok=True)
        self.env = {**env,
                    "JUPYTER_CONFIG_DIR": str(config),
                    "JUPYTER_DATA_DIR": str(workdir / "data"),
                    "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
                    "IPYTHONDIR": str(workdir / "ipython"),
                    "JUPYTER_PLATFORM_DIRS": "1"}
        self.env.pop("CLAUDE_NB_URL", None)
        self.env.pop("CLAUDE_NB_TOKEN", None)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
             f"--port={self.port}", f"--IdentityProvider.token={self.token}",
             f"--ServerApp.root_dir={self.root}", "--ServerApp.port_retries=0",
             "--LabApp.news_url=None", "--allow-root"],
            cwd=self.root, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited ({self.proc.returncode}); see {self.log_path}")
            try:
                self.api("GET", "api/status")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.3)
        raise RuntimeError(f"jupyter lab did not answer in {timeout} s; see {self.log_path}")

    def api(self, method: str, path: str, body=None):
        request = urllib.request.Request(
            self.url + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def text(self, path: str) -> str:
        request = urllib.request.Request(self.url + path,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read().decode()

    def shut_down_kernels(self) -> None:
        """Between tests: every kernel a page started ends, so they don't compete for CPU."""
        for session in self.api("GET", "api/sessions"):
            self.api("DELETE", f"api/sessions/{session['id']}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)        # a clean stop: kernels, CLI pool, store
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


# pytest-jupyter's autouse loop fixtures would pick up (and close) the loop Playwright's sync
# API runs in this thread. These tests start no in-process server, so they get their own.
@pytest.fixture
def jp_asyncio_loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def jp_server_cleanup():
    yield


@pytest.fixture(scope="module")
def chromium_executable() -> str:
    path = chromium_path()
    if path is None:
        pytest.skip("browser tests need Chromium: /usr/bin/chromium is missing and could not be "
                    "installed (scripts/test.sh installs it with apt-get as root; or set "
                    "CLAUDE_NB_CHROMIUM to a Chromium executable)")
    return path


@pytest.fixture(scope="module")
def jupyter(chromium_executable, claude_cli, _upstream_server, tmp_path_factory):
    """The module's Jupyter server: the extension, the real CLI, the recording upstream."""
    workdir = tmp_path_factory.mktemp("jupyter")
    cli_config = workdir / "claude-config"
    cli_config.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("CLAUDE_CODE_OAUTH_TOKEN", "CLAUDECODE")}
    env.update({"ANTHROPIC_BASE_URL": _upstream_server.url,
                "ANTHROPIC_API_KEY": "upstream-test-key",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "CLAUDE_CONFIG_DIR": str(cli_config),
                "CLAUDE_NB_CLI": claude_cli,
                "PYTHONPATH": str(ROOT)})
    server = JupyterServer(workdir, env)
    yield server
    server.close()
    ours = _our_errors(server.log_path.read_text(errors="replace"))
    assert not ours, f"the Jupyter server logged errors of claude-nb (see {server.log_path}):\n" \
        + "\n\n".join(ours)


def _our_errors(log: str) -> list[str]:
    """Unhandled request errors, and tracebacks through claude-nb's code. (Jupyter's own
    websocket noise when a page closes under a busy kernel is not ours.)"""
    blocks = re.split(r"\n(?=\S)", log)
    return [b[:2000] for b in blocks
            if "Uncaught exception" in b
            or ("Traceback" in b and re.search(r"claude_nb[/.]|server_ext[/.]", b))]


@pytest.fixture(scope="module")
def browser(chromium_executable):
    from playwright.sync_api import sync_playwright
    playwright = sync_playwright().start()
    chromium = playwright.chromium.launch(executable_path=chromium_executable, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()
    playwright.stop()


@pytest.fixture
def upstream_for_browser(_upstream_server):
    """The recording upstream, answering the notebooks' prompts (see upstream_script.py)."""
    _upstream_server.reset()
    _upstream_server.responder = responder
    yield _upstream_server
    _upstream_server.reset()


@pytest.fixture
def scratch_notebook(jupyter):
    """`scratch_notebook("name.ipynb", [cell sources])` writes a notebook the server can open."""
    import nbformat

    def make(name: str, sources: list[str]) -> str:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                     "language": "python"}
        nbformat.write(nb, jupyter.root / name)
        return name
    return make


@pytest.fixture
def open_notebook(jupyter, browser, upstream_for_browser, request):
    """`open_notebook("quickstart.ipynb", ui="lab" | "notebook")` -> a NotebookPage. Pages
    close and kernels end after the test; a failing test leaves a screenshot (path printed)."""
    contexts = []

    def open_(path: str, ui: str = "lab") -> NotebookPage:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=jupyter.url[:-1])
        contexts.append(context)
        page = NotebookPage(context.new_page(), jupyter.url, jupyter.token, ui)
        request.node.browser_pages = getattr(request.node, "browser_pages", []) + [page]
        page.open(path)
        return page

    yield open_
    jupyter.shut_down_kernels()          # first: the pages see their kernels go
    for context in contexts:
        context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed browser test saves what each of its pages showed; the report names the files."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    saved = []
    for number, page in enumerate(getattr(item, "browser_pages", [])):
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{item.name}-{number}.png".replace("/", "_")
        try:
            # a NotebookPage, or a bare Playwright page (test_docs_page.py)
            getattr(page, "page", page).screenshot(path=str(path), full_page=True)
            saved.append(str(path))
        except Exception as exc:       # a crashed page: say so, keep the real failure
            saved.append(f"{path} (not saved: {exc})")
    if saved:
        report.sections.append(("browser screenshots", "\n".join(saved)))
        print("\nbrowser screenshots: " + ", ".join(saved), file=sys.stderr)
