"""Batch throughput: a 100-row batch of short answers through the batch runner, the real CLI and
the loopback fake upstream, against

- the CPU-bound ideal: cores / the CPU a cold `claude -p` spends on one such request (what the
  machine could do if every request started its own CLI and nothing else ran), measured in the
  same run, and
- the latency-bound ideal: cap / mean single-request time,
- the same requests fired through the bridge with no runner (what the bridge itself gives).

Also the CPU this process and every CLI process it started spent per request. Prints figures,
asserts nothing.

    .venv/bin/python bench/batch.py [--requests 100] [--cap 4] [--singles 5] [--cold 5]

Target: at least 2x the 1.2-1.3 req/s measured before warm processes were reused (2 cores).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import common
from common import Sandbox, cold_cli_run, cpu_seconds, median

from claude_nb.bridge import ClaudeBridge  # noqa: E402  (common puts the project on sys.path)
from claude_nb.service.batches import BatchRunner  # noqa: E402
from claude_nb.service.store import Store  # noqa: E402


def body(prompt: str) -> dict:
    return {"model": "sonnet", "max_tokens": 50, "messages": [{"role": "user", "content": prompt}]}


async def run(args, sandbox: Sandbox) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="claudenb-bench-", dir=sandbox.dir))
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

        # The same requests fired at once through the bridge's own queue: what the machine
        # gives with no batch bookkeeping at all.
        started = time.perf_counter()
        await asyncio.gather(*(bridge.create(body(f"plain {i}"), background=True)
                               for i in range(args.requests)))
        plain = args.requests / (time.perf_counter() - started)

        runner = BatchRunner(store, bridge)
        await runner.start()
        cpu_before = cpu_seconds(os.getpid())
        started = time.perf_counter()
        batch = await runner.create([(f"r{i}", body(f"batch {i}")) for i in range(args.requests)])
        ended = await runner.wait(batch.id)
        wall = time.perf_counter() - started
        cpu_per_request = (cpu_seconds(os.getpid()) - cpu_before) / args.requests
        await runner.stop()
        pool = bridge.pool_status()
    finally:
        await bridge.close()
        store.close()

    colds = [cold_cli_run(sandbox, f"cold {i}", max_tokens=50)["cpu"] for i in range(args.cold)]
    cold_cpu = median(colds)
    cores = os.cpu_count() or 1
    cpu_ideal = cores / cold_cpu
    latency_ideal = args.cap / mean_single
    actual = args.requests / wall
    print(f"CPU cores                   {cores}")
    print(f"concurrency cap             {args.cap}")
    print(f"single request, mean of {args.singles}   {mean_single:.3f} s "
          f"(min {min(singles):.3f}, max {max(singles):.3f})")
    print(f"batch of {args.requests}              {wall:.2f} s wall, "
          f"{ended.succeeded} succeeded, {ended.errored} errored")
    print(f"batch throughput            {actual:.2f} req/s")
    print(f"CPU per batch request       {cpu_per_request:.3f} CPU-s (this process and every CLI "
          f"process, spares included)")
    print(f"cold claude -p CPU          {cold_cpu:.3f} CPU-s per request (median of {len(colds)})")
    print(f"CPU-bound ideal             {cpu_ideal:.2f} req/s  (cores / cold CPU per request); "
          f"ratio {actual / cpu_ideal:.2f}")
    print(f"latency-bound ideal         {latency_ideal:.2f} req/s  (cap / mean single); "
          f"ratio {actual / latency_ideal:.2f}")
    print(f"same requests, plain gather {plain:.2f} req/s  (no store, no runner); "
          f"ratio {actual / plain:.2f}")
    print(f"against 1.25 req/s before   {actual / 1.25:.2f}x (target >= 2x)")
    print(f"pool counters               {pool}")
    print(f"load average at the end     {common.load_average()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--cap", type=int, default=4)
    parser.add_argument("--singles", type=int, default=5)
    parser.add_argument("--cold", type=int, default=5, help="cold CLI runs for the CPU baseline")
    args = parser.parse_args()
    print(f"batch: {common.machine()}; load average {common.load_average()}")
    with Sandbox() as sandbox:
        sandbox.apply()
        asyncio.run(run(args, sandbox))


if __name__ == "__main__":
    main()
