"""Memory of the Jupyter server with the extension: idle (pool off, and pool on with its warm
processes) and under load (K concurrent streams), with the cost of one CLI process.

RSS counts every page a process maps, so the ~200 MB CLI binary mapped by each process is
counted once per process; PSS divides shared pages among the processes sharing them, so the PSS
sum is what the group really occupies. Both are shown.

    /tmp/venv/bin/python bench/memory.py [--load 4] [--answer-seconds 6]
"""
from __future__ import annotations

import argparse
import threading
import time

import httpx

import common
from common import Reply, Sandbox, descendants, is_cli, memory_kib, message, stream_request


def snapshot(server, cli: str) -> dict:
    own = memory_kib(server.pid)
    clis = [memory_kib(pid) for pid in descendants(server.pid) if is_cli(pid, cli)]
    others = [memory_kib(pid) for pid in descendants(server.pid) if not is_cli(pid, cli)]
    return {"server": own, "clis": clis, "others": others,
            "total_rss": own[0] + sum(r for r, _ in clis + others),
            "total_pss": own[1] + sum(p for _, p in clis + others)}


def mib(kib: float) -> str:
    return f"{kib / 1024:7.0f} MiB"


def settle(server, cli: str, count: int, timeout: float = 30.0) -> dict:
    """Wait until `count` CLI processes exist and have finished getting ready (memory steady)."""
    deadline = time.monotonic() + timeout
    previous = None
    while time.monotonic() < deadline:
        snap = snapshot(server, cli)
        if len(snap["clis"]) == count and previous is not None \
                and abs(snap["total_pss"] - previous) < 2048:
            return snap
        previous = snap["total_pss"] if len(snap["clis"]) == count else None
        time.sleep(0.5)
    return snapshot(server, cli)


def under_load(sandbox, server, cli: str, k: int, seconds: float) -> dict:
    sandbox.upstream.responder = lambda rec: Reply.text("x" * 400, delay_per_chunk=seconds / 100)
    peak = {"total_rss": 0, "total_pss": 0, "clis": []}
    samples = []
    threads = []

    def one(i):
        with httpx.Client() as client:
            stream_request(client, server, message(f"load {i}"))

    for i in range(k):
        threads.append(threading.Thread(target=one, args=(i,)))
        threads[-1].start()
    while any(t.is_alive() for t in threads):
        snap = snapshot(server, cli)
        samples.append(snap)
        if snap["total_pss"] > peak["total_pss"]:
            peak = snap
        time.sleep(0.2)
    sandbox.upstream.responder = None
    busiest = max(samples, key=lambda s: len(s["clis"]))
    return {"peak": peak, "busiest": busiest}


def describe(name: str, snap: dict) -> None:
    clis = snap["clis"]
    print(f"{name:36} server {mib(snap['server'][0])} RSS {mib(snap['server'][1])} PSS | "
          f"{len(clis)} CLI {mib(sum(r for r, _ in clis))} RSS {mib(sum(p for _, p in clis))} PSS | "
          f"total {mib(snap['total_rss'])} RSS {mib(snap['total_pss'])} PSS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--load", type=int, default=4, help="concurrent streams under load")
    parser.add_argument("--answer-seconds", type=float, default=6.0)
    args = parser.parse_args()
    print(f"memory: {common.machine()}; load = {args.load} streams of {args.answer_seconds:g} s\n")
    with Sandbox() as sandbox:
        cold = sandbox.server(pool_enabled=False)
        time.sleep(2.0)
        cold_idle = settle(cold, sandbox.cli, 0)
        describe("pool off, idle", cold_idle)
        cold_load = under_load(sandbox, cold, sandbox.cli, args.load, args.answer_seconds)
        describe(f"pool off, {args.load} streams (peak)", cold_load["peak"])
        cold.stop()

        warm = sandbox.server()
        warm.wait_pool_idle()
        with httpx.Client() as client:          # one shape in use: its process, rewound, waits too
            stream_request(client, warm, message("warm-up"))
        warm_idle = settle(warm, sandbox.cli, 2)
        describe(f"pool on, idle ({len(warm_idle['clis'])} warm)", warm_idle)
        warm_load = under_load(sandbox, warm, sandbox.cli, args.load, args.answer_seconds)
        describe(f"pool on, {args.load} streams (peak)", warm_load["peak"])
        warm.stop()

    idle_clis = warm_idle["clis"]
    busy = cold_load["peak"]["clis"]          # pool off: every CLI process is answering
    print("\nper CLI process:")
    if idle_clis:
        print(f"  warm, waiting:  {mib(sum(r for r, _ in idle_clis) / len(idle_clis))} RSS  "
              f"{mib(sum(p for _, p in idle_clis) / len(idle_clis))} PSS")
    if busy:
        print(f"  answering ({len(busy)} at once, pool off run): "
              f"{mib(sum(r for r, _ in busy) / len(busy))} RSS  "
              f"{mib(sum(p for _, p in busy) / len(busy))} PSS")
    print(f"  the warm pool costs (idle, pool on - pool off): "
          f"{mib(warm_idle['total_pss'] - cold_idle['total_pss'])} PSS")
    print(f"  CLI processes at the pool-on peak: {len(warm_load['busiest']['clis'])} "
          f"(at most max_concurrency 4 answering + pool_max_idle 6 waiting, 2 of them pre-started)")


if __name__ == "__main__":
    main()
