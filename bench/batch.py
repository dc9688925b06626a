"""Batch throughput against the ideal: a 100-request batch through the real CLI and the loopback
fake upstream, compared with `cap / mean single-request time` (the best a cap of N concurrent
CLI processes could do if every request took as long as one alone), and with the same requests
fired through the bridge with no runner (what the machine itself allows). Prints figures,
asserts nothing.

    /tmp/venv/bin/python bench/batch.py [--requests 100] [--cap 4] [--singles 5]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))      # the repo: claude_nb and tests.support

from claude_nb.service.batches import BatchRunner  # noqa: E402
from claude_nb.bridge import ClaudeBridge  # noqa: E402
from claude_nb.service.store import Store  # noqa: E402
from tests.support.fake_upstream import FakeUpstream  # noqa: E402

CLI = ROOT / "tests" / "cli" / "node_modules" / "@anthropic-ai" / "claude-code-linux-x64" / "claude"


def body(prompt: str) -> dict:
    return {"model": "sonnet", "max_tokens": 50, "messages": [{"role": "user", "content": prompt}]}


async def main(args) -> None:
    upstream = FakeUpstream()
    scratch = Path(tempfile.mkdtemp(prefix="claudenb-bench-"))
    (scratch / "config").mkdir()
    os.environ.update({"ANTHROPIC_BASE_URL": upstream.url, "ANTHROPIC_API_KEY": "bench",
                       "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                       "CLAUDE_CONFIG_DIR": str(scratch / "config"),
                       "CLAUDE_NB_CLI": os.environ.get("CLAUDE_NB_CLI", str(CLI))})
    os.environ.pop("CLAUDE_CODE_OAUTH_TOKEN", None)
    os.environ.pop("CLAUDECODE", None)
    bridge = ClaudeBridge(max_concurrency=args.cap)
    store = Store(scratch / "bench.sqlite3")
    store.attach(bridge)
    try:
        await bridge.create(body("warm-up"))          # first run pays disk cache misses
        singles = []
        for i in range(args.singles):
            started = time.perf_counter()
            await bridge.create(body(f"single {i}"))
            singles.append(time.perf_counter() - started)
        mean_single = sum(singles) / len(singles)
        ideal = args.cap / mean_single

        # The same requests fired at once through the bridge's own queue: what the machine
        # gives with no batch bookkeeping at all.
        started = time.perf_counter()
        await asyncio.gather(*(bridge.create(body(f"plain {i}"), background=True)
                               for i in range(args.requests)))
        plain = args.requests / (time.perf_counter() - started)

        runner = BatchRunner(store, bridge)
        await runner.start()
        started = time.perf_counter()
        batch = await runner.create([(f"r{i}", body(f"batch {i}")) for i in range(args.requests)])
        ended = await runner.wait(batch.id)
        wall = time.perf_counter() - started
        await runner.stop()
        actual = args.requests / wall
        print(f"CPU cores                  {os.cpu_count()}")
        print(f"concurrency cap            {args.cap}")
        print(f"single request, mean of {args.singles}  {mean_single:.3f} s "
              f"(min {min(singles):.3f}, max {max(singles):.3f})")
        print(f"ideal throughput           {ideal:.2f} req/s  (cap / mean single)")
        print(f"batch of {args.requests}             {wall:.2f} s wall, "
              f"{ended.succeeded} succeeded, {ended.errored} errored")
        print(f"batch throughput           {actual:.2f} req/s")
        print(f"same requests, plain gather {plain:.2f} req/s  (no store, no runner)")
        print(f"ratio to ideal             {actual / ideal:.2f}")
        print(f"ratio to plain gather      {actual / plain:.2f}  (the runner's own overhead)")
    finally:
        await bridge.close()
        store.close()
        upstream.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--cap", type=int, default=4)
    parser.add_argument("--singles", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
