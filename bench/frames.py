"""`df.claude.extract` over N rows on the scripted upstream, then the same call again from the
result cache. Prints wall time, requests per second and CPU seconds (this process, and the
server's when --server), and the upstream requests each run made. Asserts nothing.

    .venv/bin/python bench/frames.py [--rows 1000] [--cap 4] [--server] [--prefill]

Without --server the kernel side runs the CLI in-process (a kernel with no Jupyter server);
with it a real `jupyter server` with the extension answers over HTTP, as in JupyterLab.
--prefill skips the upstream run: the cache (in the store the answering side uses: this
process's, or the server's) is filled directly with the answers the scripted upstream gives, so
the cached run can be measured at 1,000 rows without 1,000 CLI runs first.
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
sys.path.insert(0, str(ROOT))      # the repo: claude_nb and tests.support

from common import Reply, Sandbox  # noqa: E402
from tests.support.structured_replies import structured_reply  # noqa: E402

SCHEMA = {"product": ["kettle", "lamp", "toaster"], "stars": int, "refund": bool}
PROMPT = "Read the review and fill in the fields.\n\nReview: {review}"


def reviews(rows: int):
    import pandas as pd
    words = ["kettle", "lamp", "toaster"]
    return pd.DataFrame({"review": [f"Review {i}: the {words[i % 3]} is fine, refund {i % 2}"
                                    for i in range(rows)]})


def cpu_seconds(pid: int | None = None, children: bool = False) -> float:
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(frame, label: str, upstream, server_pid: int | None) -> None:
    before_requests = len(upstream.message_requests)
    cpu, server_cpu = cpu_seconds(), cpu_seconds(server_pid) if server_pid else 0.0
    cli_cpu = cpu_seconds(children=True)
    started = time.perf_counter()
    out = frame.claude.extract(PROMPT, SCHEMA, model="haiku", max_tokens=100, progress=False)
    wall = time.perf_counter() - started
    cpu = cpu_seconds() - cpu
    sent = len(upstream.message_requests) - before_requests
    extra = (f", server CPU {cpu_seconds(server_pid) - server_cpu:.2f} s" if server_pid else
             f", CLI processes CPU {cpu_seconds(children=True) - cli_cpu:.2f} s")
    print(f"{label:<22} {wall:8.2f} s wall  {len(frame) / wall:8.1f} rows/s  kernel CPU "
          f"{cpu:.2f} s{extra}  upstream requests {sent}  cached rows {int(out['cached'].sum())}  "
          f"errors {int(out['error'].notna().sum())}")


def prefill(frame, store_path: str | None) -> None:
    """Store, for each row's request, the answer the scripted upstream would give (as the
    bridge stores it: structured output turned into one JSON text block)."""
    import json
    from claude_nb.kernel.accessor import ClaudeAccessor
    from claude_nb.kernel.schema import output_schema
    from claude_nb.kernel.transports import default_transport
    from claude_nb.service.cache import ResultCache
    from claude_nb.service.store import Store
    from tests.support.structured_replies import value_for
    call = ClaudeAccessor(frame)._build("extract", PROMPT, {"model": "haiku", "max_tokens": 100},
                                        spec=output_schema(SCHEMA))
    if store_path is None:
        cache = default_transport().service.result_cache     # the in-process Service's
    else:                 # the server's store: SQLite in WAL mode takes a second process
        cache = ResultCache(Store(store_path))
    started = time.perf_counter()
    for request in call.requests:
        params = request["params"]
        text = params["messages"][0]["content"].split("\n\n")[-1]
        value = value_for(params["output_config"]["format"]["schema"], text)
        cache.save(params, {"id": "msg_prefill", "type": "message", "role": "assistant",
                            "model": "claude-haiku-4-5-20251001", "stop_reason": "end_turn",
                            "stop_sequence": None,
                            "content": [{"type": "text", "text": json.dumps(value)}],
                            "usage": {"input_tokens": 40, "output_tokens": 15}})
    print(f"{'prefill (no upstream)':<22} {time.perf_counter() - started:8.2f} s wall  "
          f"{len(call.requests)} answers stored")


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
        from claude_nb.kernel.transports import InProcessTransport, default_transport, discover
        if not args.server:
            from traitlets.config import Config
            config = Config()
            config.ClaudeBridge.max_concurrency = args.cap
            discover._default_transport = InProcessTransport(config=config)
        frame = reviews(args.rows)
        print(f"{args.rows} rows, cap {args.cap}, {'server' if args.server else 'in-process'}, "
              f"{os.cpu_count()} CPU cores")
        if args.prefill:
            prefill(frame, os.path.join(sandbox.dir, "server0", "data", "claude_nb",
                                        "claude_nb.sqlite3") if args.server else None)
        else:
            run(frame, "extract (upstream)", sandbox.upstream, server_pid)
        run(frame, "extract (cache)", sandbox.upstream, server_pid)
        if not args.server:
            default_transport().close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--cap", type=int, default=4)
    parser.add_argument("--server", action="store_true")
    parser.add_argument("--prefill", action="store_true")
    main(parser.parse_args())
