"""The notebook toolkit's costs: the same message through both transports, and what streaming
into a cell sends. Real CLI, loopback fake upstream, a real `jupyter server` subprocess with
the extension. Prints figures, asserts nothing.

    /tmp/venv/bin/python bench/toolkit.py [--runs 8]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))      # the repo: claude_nb and tests.support

from claude_nb.kernel.client import Claude  # noqa: E402
from claude_nb.kernel.errors import ClaudeError  # noqa: E402
from claude_nb.kernel.transports import HttpTransport, InProcessTransport  # noqa: E402
from tests.support.fake_upstream import FakeUpstream, Reply  # noqa: E402

CLI = ROOT / "tests" / "cli" / "node_modules" / "@anthropic-ai" / "claude-code-linux-x64" / "claude"


def timed(client: Claude, runs: int) -> tuple[list[float], list[float]]:
    first, whole = [], []
    for i in range(runs):
        start = time.perf_counter()
        with client.stream(f"bench {i}") as stream:
            for n, _ in enumerate(stream):
                if n == 0:
                    first.append(time.perf_counter() - start)
        whole.append(time.perf_counter() - start)
    return first, whole


def start_server(scratch: Path, env: dict) -> tuple[subprocess.Popen, str, str]:
    token = "bench-token"
    runtime = scratch / "runtime"
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", "--port=0",
         f"--IdentityProvider.token={token}", "--ServerApp.jpserver_extensions=server_ext=True",
         f"--ServerApp.root_dir={scratch}"],
        env={**env, "JUPYTER_RUNTIME_DIR": str(runtime), "JUPYTER_DATA_DIR": str(scratch / "data"),
             "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        files = list(runtime.glob("jpserver-*.json")) if runtime.exists() else []
        if files:
            info = json.loads(files[0].read_text())
            return proc, info["url"], token
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the jupyter server did not start")


def stream_display(runs: int) -> None:
    """What %%claude sends while streaming a long answer: display updates and bytes."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output
    shell = InteractiveShell.instance()
    shell.extension_manager.load_extension("claude_nb")
    shell.run_line_magic("config", "ClaudeMagics.display = 'update'")
    text = "word " * 2000           # 10,000 characters, 2,500 upstream deltas
    upstream.push(Reply.text(text, delay_per_chunk=0.0008))
    start = time.perf_counter()
    with capture_output() as cap:
        shell.run_cell_magic("claude", "", "long answer")
    took = time.perf_counter() - start
    sent = sum(len(json.dumps(o.data)) for o in cap.outputs)
    print(f"%%claude, 10,000-char answer over {took:.1f} s: {len(cap.outputs) - 1} display updates "
          f"(throttle 0.1 s), {sent / 1e6:.2f} MB of display data in all "
          f"(each update resends the whole text)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()
    global upstream
    upstream = FakeUpstream()
    scratch = Path(tempfile.mkdtemp(prefix="claudenb-bench-"))
    (scratch / "config").mkdir()
    env = {**os.environ, "ANTHROPIC_BASE_URL": upstream.url, "ANTHROPIC_API_KEY": "bench",
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
           "CLAUDE_CONFIG_DIR": str(scratch / "config"), "CLAUDE_NB_CLI": str(CLI)}
    env.pop("CLAUDE_NB_URL", None)
    os.environ.update(env)
    os.environ["JUPYTER_DATA_DIR"] = str(scratch / "local-data")

    local = InProcessTransport()
    timed(Claude(local), 1)                          # warm the loop thread and the page cache
    first, whole = timed(Claude(local), args.runs)
    print(f"in-process: first text {statistics.median(first) * 1000:.0f} ms, whole answer "
          f"{statistics.median(whole) * 1000:.0f} ms (median of {args.runs})")

    proc, url, token = start_server(scratch, env)
    try:
        http = Claude(HttpTransport(url, token))
        for _ in range(100):
            try:
                timed(http, 1)
                break
            except ClaudeError:
                time.sleep(0.2)
        first, whole = timed(http, args.runs)
        print(f"server (HTTP): first text {statistics.median(first) * 1000:.0f} ms, whole answer "
              f"{statistics.median(whole) * 1000:.0f} ms (median of {args.runs})")
    finally:
        proc.terminate()
        proc.wait(10)
    stream_display(args.runs)
    local.close()
    upstream.close()


if __name__ == "__main__":
    main()
