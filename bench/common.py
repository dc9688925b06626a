"""What the benchmarks share: the real CLI, the recording fake upstream, a real `jupyter server`
with the extension, an SSE client, the process table, and small statistics.

Nothing here talks to the real Anthropic API: the CLI is pointed at the loopback upstream, with
its config dir in a temporary directory, so the figures measure this machine and this code.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))      # the repo: claude_nb and tests.support

import httpx  # noqa: E402

from tests.support.fake_upstream import FakeUpstream, Reply  # noqa: E402,F401

NATIVE_CLI = ROOT / "tests" / "cli" / "node_modules" / "@anthropic-ai" / "claude-code-linux-x64" / "claude"


def find_cli() -> str:
    for candidate in (os.environ.get("CLAUDE_NB_TEST_CLI"), os.environ.get("CLAUDE_NB_CLI"),
                      str(NATIVE_CLI)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    sys.exit("The Claude Code CLI was not found: run ./scripts/test.sh once (it installs it into "
             "tests/cli), or set CLAUDE_NB_TEST_CLI.")


class Sandbox:
    """A fake upstream and an environment in which the CLI talks only to it."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="claudenb-bench-")
        self.cli = find_cli()
        self.upstream = FakeUpstream()
        config = os.path.join(self.dir, "claude-config")
        os.mkdir(config)
        self.env = {**os.environ,
                    "ANTHROPIC_BASE_URL": self.upstream.url,
                    "ANTHROPIC_API_KEY": "bench-upstream-key",
                    "CLAUDE_CONFIG_DIR": config,
                    "CLAUDE_NB_CLI": self.cli,
                    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
        for key in ("CLAUDE_CODE_OAUTH_TOKEN", "CLAUDECODE", "JUPYTER_TOKEN"):
            self.env.pop(key, None)
        self.servers: list[JupyterServer] = []

    def apply(self) -> None:
        """Use the sandbox environment in this process too (in-process bridge, cold CLI runs)."""
        os.environ.clear()
        os.environ.update(self.env)

    def server(self, *, extensions: tuple[str, ...] = (), **bridge_traits) -> "JupyterServer":
        server = JupyterServer(self, bridge_traits, name=f"server{len(self.servers)}",
                               extensions=extensions)
        self.servers.append(server)
        return server

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        self.upstream.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterServer:
    """`jupyter server` in a subprocess with the extension enabled and ClaudeBridge traits set."""

    def __init__(self, sandbox: Sandbox, bridge_traits: dict, *, name: str,
                 extensions: tuple[str, ...] = ()):
        home = os.path.join(sandbox.dir, name)
        for sub in ("config", "data", "runtime", "root"):
            os.makedirs(os.path.join(home, sub))
        with open(os.path.join(home, "config", "jupyter_server_config.json"), "w") as f:
            enabled = {"server_ext": True, **{name: True for name in extensions}}
            json.dump({"ServerApp": {"jpserver_extensions": enabled},
                       "ClaudeBridge": bridge_traits}, f)
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}/"
        env = {**sandbox.env, "JUPYTER_CONFIG_DIR": os.path.join(home, "config"),
               "JUPYTER_DATA_DIR": os.path.join(home, "data"),
               "JUPYTER_RUNTIME_DIR": os.path.join(home, "runtime"),
               # the project, and bench/ for bench-only extensions (loop_probe)
               "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "bench"),
                                              sandbox.env.get("PYTHONPATH", "")])}
        self.log_path = os.path.join(home, "server.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root",
             f"--port={self.port}", "--ip=127.0.0.1", f"--IdentityProvider.token={self.token}",
             f"--ServerApp.root_dir={os.path.join(home, 'root')}"],
            cwd=str(ROOT), env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.headers = {"x-api-key": self.token, "anthropic-version": "2023-06-01",
                        "content-type": "application/json"}
        self._wait_ready()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                r = httpx.get(self.url + "health", headers=self.headers, timeout=5)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        sys.exit(f"jupyter server did not start; its log:\n{open(self.log_path).read()[-3000:]}")

    def health(self) -> dict:
        return httpx.get(self.url + "health", headers=self.headers, timeout=10).json()

    def wait_pool_idle(self, count: int = 1, timeout: float = 30.0) -> None:
        """Until the warm pool holds `count` idle processes (and they had time to get ready)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pool = self.health().get("pool") or {}
            if not pool.get("enabled", True) or pool.get("idle", 0) >= count:
                return
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)      # jupyter server: clean shutdown
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def message(text: str, *, max_tokens: int = 64, stream: bool = True, **extra) -> dict:
    return {"model": "sonnet", "max_tokens": max_tokens, "stream": stream,
            "messages": [{"role": "user", "content": text}], **extra}


def stream_request(client: httpx.Client, server: JupyterServer, body: dict,
                   headers: dict | None = None) -> dict:
    """One streamed /v1/messages: time to the first text delta, total time, and the text."""
    started_at = time.monotonic()
    started = time.perf_counter()
    first = None
    text = []
    with client.stream("POST", server.url + "v1/messages", headers={**server.headers, **(headers or {})},
                       content=json.dumps(body), timeout=120) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.read()[:500]!r}")
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            if '"text_delta"' in line:
                if first is None:
                    first = time.perf_counter() - started
                text.append(json.loads(line[6:])["delta"]["text"])
            elif '"type": "error"' in line or '"type":"error"' in line:
                raise RuntimeError("stream error: " + line[:500])
    return {"ttft": first, "total": time.perf_counter() - started, "text": "".join(text),
            "started_at": started_at}


def cold_cli_ttft(sandbox: Sandbox, text: str, *, max_tokens: int = 64) -> float:
    """A cold `claude -p` with the bridge's own command line, on the same upstream: spawn to
    first text delta on its stdout. What every request costs without a warm process."""
    from claude_nb.bridge.command import LaunchSpec, build_argv, build_env
    spec = LaunchSpec(model="sonnet", max_output_tokens=max_tokens)
    workdir = tempfile.mkdtemp(prefix="claudenb-cold-", dir=sandbox.dir)
    line = json.dumps({"type": "user", "message": {"role": "user",
                                                   "content": [{"type": "text", "text": text}]}})
    started = time.perf_counter()
    proc = subprocess.Popen(build_argv(sandbox.cli, spec), cwd=workdir, env=build_env(spec, sandbox.env),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        proc.stdin.write(line.encode() + b"\n")
        proc.stdin.flush()
        for raw in proc.stdout:
            if b'"text_delta"' in raw:
                return time.perf_counter() - started
        raise RuntimeError("the cold CLI gave no text")
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


# The server runs its CLI processes at this nice value (c.ClaudeBridge.cli_niceness's default);
# cold baselines run at the same one, so both get the same share of a busy machine.
CLI_NICENESS = 10


def cold_cli_run(sandbox: Sandbox, text: str, spec=None, *, max_tokens: int = 64,
                 niceness: int = CLI_NICENESS) -> dict:
    """A whole cold `claude -p` request with the bridge's own command line: spawn to first text
    delta (`ttft`), to its result line (`total`), and the CPU it used start to exit (`cpu`,
    from the kernel's accounting of the reaped process). `spec`: a LaunchSpec (default: sonnet)."""
    from claude_nb.bridge.command import LaunchSpec, build_argv, build_env
    spec = spec or LaunchSpec(model="sonnet", max_output_tokens=max_tokens)
    workdir = tempfile.mkdtemp(prefix="claudenb-cold-", dir=sandbox.dir)
    line = json.dumps({"type": "user", "message": {"role": "user",
                                                   "content": [{"type": "text", "text": text}]}})
    argv = build_argv(sandbox.cli, spec)
    if niceness > 0:
        argv = ["nice", "-n", str(niceness)] + argv
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=workdir, env=build_env(spec, sandbox.env),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    ttft = total = None
    try:
        proc.stdin.write(line.encode() + b"\n")
        proc.stdin.flush()
        for raw in proc.stdout:
            if ttft is None and b'"text_delta"' in raw:
                ttft = time.perf_counter() - started
            if not raw.startswith(b'{"type":"stream_event"') and _is_result(raw):
                total = time.perf_counter() - started
                break
        proc.stdin.close()           # as the bridge ends a finished run
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    if ttft is None or total is None:
        raise RuntimeError("the cold CLI gave no answer")
    return {"ttft": ttft, "total": total, "cpu": usage.ru_utime + usage.ru_stime}


def _is_result(raw: bytes) -> bool:
    try:
        return json.loads(raw).get("type") == "result"     # its keys come in any order
    except (ValueError, AttributeError):
        return False


# -- the process table ---------------------------------------------------------------------
def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return children


def descendants(pid: int) -> list[int]:
    children, out, todo = _children_map(), [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in KiB. PSS shares pages among the processes mapping them, so
    the CLI binary mapped by every process is not counted once per process."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def cpu_seconds(pid: int) -> float:
    """CPU time of a process, its reaped children (cutime/cstime) and its live descendants."""
    total = 0
    for i, p in enumerate([pid] + descendants(pid)):
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def is_cli(pid: int, cli: str) -> bool:
    try:
        return os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(cli)
    except OSError:
        return False


# -- statistics ----------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds == seconds else "n/a"


def machine() -> str:
    cpus = os.cpu_count()
    try:
        with open("/proc/meminfo") as f:
            total = int(f.readline().split()[1]) // 1024
    except OSError:
        total = 0
    return f"{cpus} CPUs, {total} MiB RAM, Python {sys.version.split()[0]}"
