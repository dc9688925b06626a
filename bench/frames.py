"""`df.claude.extract` over N rows on the scripted upstream, then the same call again from the
result cache. Prints wall time, requests per second and CPU seconds (this process, and the
server's when --server), and the upstream requests each run made. Asserts nothing.

    .venv/bin/python bench/frames.py [--rows 1000] [--cap 4] [--server]

Without --server the kernel side runs the CLI in-process (a kernel with no Jupyter server);
with it a real `jupyter server` with the extension answers over HTTP, as in JupyterLab.
The target for the cached run: under 1 s for 1,000 rows, zero upstream requests.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from common import Reply, Sandbox  # noqa: E402
from structured_replies import structured_reply  # noqa: E402

SCHEMA = {"product": ["kettle", "lamp", "toaster"], "stars": int, "refund": bool}
PROMPT = "Read the review and fill in the fields.\n\nReview: {review}"


def reviews(rows: int):
    import pandas as pd
    words = ["kettle", "lamp", "toaster"]
    return pd.DataFrame({"review": [f"Review {i}: the {words[i % 3]} is fine, refund {i % 2}"
                                    for i in range(rows)]})


def cpu_seconds(pid: int | None = None) -> float:
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(frame, label: str, upstream, server_pid: int | None) -> None:
    before_requests = len(upstream.message_requests)
    cpu, server_cpu = cpu_seconds(), cpu_seconds(server_pid) if server_pid else 0.0
    started = time.perf_counter()
    out = frame.claude.extract(PROMPT, SCHEMA, model="haiku", max_tokens=100, progress=False)
    wall = time.perf_counter() - started
    cpu = cpu_seconds() - cpu
    sent = len(upstream.message_requests) - before_requests
    extra = f", server CPU {cpu_seconds(server_pid) - server_cpu:.2f} s" if server_pid else ""
    print(f"{label:<22} {wall:8.2f} s wall  {len(frame) / wall:8.1f} rows/s  kernel CPU "
          f"{cpu:.2f} s{extra}  upstream requests {sent}  cached rows {int(out['cached'].sum())}  "
          f"errors {int(out['error'].notna().sum())}")


def main(args) -> None:
    with Sandbox() as sandbox:
        sandbox.upstream.responder = lambda rec: structured_reply(rec) or Reply.text("?")
        sandbox.env["JUPYTER_DATA_DIR"] = os.path.join(sandbox.dir, "data")
        server_pid = None
        if args.server:
            server = sandbox.server(max_concurrency=args.cap)
            sandbox.apply()
            os.environ["CLAUDE_NB_URL"] = server.url
            os.environ["CLAUDE_NB_TOKEN"] = server.token
            server_pid = server.pid
        else:
            sandbox.apply()
            os.environ.pop("CLAUDE_NB_URL", None)
        import claude_nb  # noqa: F401  (registers df.claude)
        from claude_nb import client
        if not args.server:
            from traitlets.config import Config
            config = Config()
            config.ClaudeBridge.max_concurrency = args.cap
            client._default_transport = client.InProcessTransport(config=config)
        frame = reviews(args.rows)
        print(f"{args.rows} rows, cap {args.cap}, {'server' if args.server else 'in-process'}, "
              f"{os.cpu_count()} CPU cores")
        run(frame, "extract (upstream)", sandbox.upstream, server_pid)
        run(frame, "extract (cache)", sandbox.upstream, server_pid)
        if not args.server:
            client.default_transport().close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--cap", type=int, default=4)
    parser.add_argument("--server", action="store_true")
    main(parser.parse_args())
