"""CPU per request: the Jupyter server with every process it starts (warm spares, reused and
retired ones included) against a cold `claude -p` per request, in the same run.

The server side is counted from the kernel's accounting: the server process, its reaped
children (cutime/cstime: every CLI process that ended) and its live descendants (the waiting
spares, whose start-up counts too). Sequential requests, so nothing else runs in between.

    .venv/bin/python bench/cost.py [--requests 20] [--shapes 1|5] [--cold 10]

--shapes 5 rotates the five request shapes of bench/mixed.py instead of repeating the default
one. Target: server CPU per request <= 0.35 x a cold CLI's.
"""
from __future__ import annotations

import argparse
import time

import httpx

import common
from common import Sandbox, cold_cli_run, cpu_seconds, median, stream_request
from mixed import ROTATING, SHAPES, cold_spec, shaped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--shapes", type=int, default=1, choices=(1, 5))
    parser.add_argument("--cold", type=int, default=10, help="cold CLI runs for the baseline")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds to let refills finish before and after the measured run")
    parser.add_argument("--max-idle", type=int, default=None,
                        help="c.ClaudeBridge.pool_max_idle (default: the server's default)")
    args = parser.parse_args()
    shapes = [SHAPES[0]] if args.shapes == 1 else ROTATING
    print(f"cost: {common.machine()}; {args.requests} sequential requests over {len(shapes)} "
          f"shape(s); pool_max_idle {args.max_idle or 'default'}; load average {common.load_average()}")
    with Sandbox() as sandbox:
        server = sandbox.server(**({} if args.max_idle is None else {"pool_max_idle": args.max_idle}))
        server.wait_pool_idle()
        with httpx.Client() as client:
            for i, shape in enumerate(shapes):          # the server has seen every shape once
                stream_request(client, server, shaped(shape, f"warm-up {i}"))
            time.sleep(args.settle)
            before = cpu_seconds(server.pid)
            started = time.perf_counter()
            for i in range(args.requests):
                stream_request(client, server, shaped(shapes[i % len(shapes)], f"request {i}"))
            wall = time.perf_counter() - started
            time.sleep(args.settle)                     # replacements started by the run finish
            server_cpu = cpu_seconds(server.pid) - before
            pool = server.health().get("pool")
        colds = [cold_cli_run(sandbox, f"cold {i}", cold_spec(shapes[i % len(shapes)]))["cpu"]
                 for i in range(args.cold)]
        load = common.load_average()
    per_request = server_cpu / args.requests
    cold = median(colds)
    print(f"\nserver + its processes: {server_cpu:.2f} CPU-s for {args.requests} requests "
          f"= {per_request:.3f} CPU-s per request ({wall / args.requests:.2f} s wall each)")
    print(f"cold claude -p:          {cold:.3f} CPU-s per request (median of {len(colds)}; "
          f"min {min(colds):.3f}, max {max(colds):.3f})")
    print(f"ratio:                   {per_request / cold:.2f} (target <= 0.35)")
    print(f"pool counters: {pool}")
    print(f"load average at the end: {load}")


if __name__ == "__main__":
    main()
