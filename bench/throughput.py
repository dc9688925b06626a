"""Throughput through the Jupyter server: N streamed requests from K concurrent clients, against
the ideal min(K, cap) / (mean time of a single request), both measured in the same run.

The fake upstream streams each answer over --answer-seconds (a short real answer: ~100 tokens
at ~50 tokens/s), so the figure shows what the bridge's queue and process handling cost, not
how fast a loopback server can say one word.

    /tmp/venv/bin/python bench/throughput.py [--concurrency 1,2,4,8] [--answer-seconds 2] [--cold]

Target: achieved / ideal >= 0.9 at K = 4. Two figures: the whole burst from idle (its first
wave meets only `pool_max_idle` warm processes; the rest start cold) and the sustained rate
after that first wave. Each request also costs one CLI start (~0.5 s of CPU,
whether it happens ahead in the pool or not): the CPU columns show when the machine, not the
bridge, is the limit ("load" is the 1-minute load average, other work on the machine included).
"""
from __future__ import annotations

import argparse
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

import common
from claude_nb.protocol.models import DEFAULT_MAX_TOKENS
from common import Reply, Sandbox, cpu_seconds, load_average, message, stream_request

CAP = 4         # ClaudeBridge.max_concurrency, the default


def request(text: str) -> dict:
    # The shape claude.message() and %%claude send by default, which the pool prewarms.
    return message(text, max_tokens=DEFAULT_MAX_TOKENS)


def answer_reply(seconds: float):
    chunks = 50                       # fake_upstream streams text 4 characters per chunk
    text = "lorem ipsum dolor sit amet " * 8
    text = text[:chunks * 4]

    def respond(rec):
        return Reply.text(text, delay_per_chunk=seconds / chunks)
    return respond


def single_times(server, count: int, pause: float) -> list[float]:
    times = []
    with httpx.Client() as client:
        for i in range(count):
            time.sleep(pause)
            times.append(stream_request(client, server, request(f"single {i}"))["total"])
    return times


def burst(server, k: int, n: int) -> tuple[float, float | None]:
    """n requests from k closed-loop clients, from idle: (wall time, sustained req/s).

    Sustained: requests completed after the first k (the first wave, which meets at most
    pool_max_idle warm processes) over the time from the k-th completion to the last."""
    counter = iter(range(n))
    lock = threading.Lock()
    ends: list[float] = []

    def worker():
        with httpx.Client() as client:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                result = stream_request(client, server, request(f"req {i}"))
                if not result["text"]:
                    raise RuntimeError(f"request {i} got no text")
                with lock:
                    ends.append(time.perf_counter())

    started = time.perf_counter()
    with ThreadPoolExecutor(k) as pool:
        for future in [pool.submit(worker) for _ in range(k)]:
            future.result()
    wall = time.perf_counter() - started
    ends.sort()
    window = ends[-1] - ends[k - 1] if n > k else 0.0
    return wall, ((n - k) / window if window > 0 else None)


def measure(sandbox: Sandbox, label: str, ks: list[int], per_client: int, pause: float, **traits):
    server = sandbox.server(max_concurrency=CAP, **traits)
    server.wait_pool_idle()
    with httpx.Client() as client:
        stream_request(client, server, request("warm-up"))          # the spec the bench uses
    singles = single_times(server, 6, pause)
    mean_single = sum(singles) / len(singles)
    print(f"\n{label}: mean single request {mean_single * 1000:.0f} ms "
          f"(min {min(singles) * 1000:.0f}, max {max(singles) * 1000:.0f})")
    print(f"{'K':>3} {'N':>4} {'wall':>8} {'req/s':>7} {'ideal':>7} {'ratio':>6} "
          f"{'sustained':>9} {'ratio':>6}  {'CPU/req':>8} {'CPU ceiling':>11} {'load':>5}")
    rows = []
    for k in ks:
        n = max(8, per_client * k)
        time.sleep(pause * 2)
        cpu_before = cpu_seconds(server.pid)
        wall, sustained = burst(server, k, n)
        cpu = (cpu_seconds(server.pid) - cpu_before) / n
        achieved = n / wall
        ideal = min(k, CAP) / mean_single
        rows.append((k, (achieved / ideal, sustained / ideal if sustained else None)))
        steady = (f"{sustained:>9.2f} {sustained / ideal:>6.3f}" if sustained else f"{'-':>9} {'-':>6}")
        # CPU ceiling: requests/s if this server had every core to itself.
        print(f"{k:>3} {n:>4} {wall:>7.2f}s {achieved:>7.2f} {ideal:>7.2f} {achieved / ideal:>6.3f} "
              f"{steady}  {cpu:>7.2f}s {(os.cpu_count() or 1) / cpu:>10.2f}/s {load_average():>5}")
    print(f"pool: {server.health().get('pool')}")
    server.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--answer-seconds", type=float, default=2.0)
    parser.add_argument("--per-client", type=int, default=4, help="requests per client")
    parser.add_argument("--pause", type=float, default=1.0)
    parser.add_argument("--cold", action="store_true", help="also measure with the pool off")
    parser.add_argument("--max-idle", type=int, default=None,
                        help="c.ClaudeBridge.pool_max_idle for the pool-on server (default: its default, 6)")
    args = parser.parse_args()
    ks = [int(k) for k in args.concurrency.split(",")]
    print(f"throughput: {common.machine()}; cap {CAP}; answers streamed over {args.answer_seconds:g} s")
    with Sandbox() as sandbox:
        sandbox.upstream.responder = answer_reply(args.answer_seconds)
        extra = {} if args.max_idle is None else {"pool_max_idle": args.max_idle}
        label = "server, pool on" + (f" (pool_max_idle {args.max_idle})" if extra else "")
        rows = measure(sandbox, label, ks, args.per_client, args.pause, **extra)
        if args.cold:
            measure(sandbox, "server, pool off", ks, args.per_client, args.pause, pool_enabled=False)
    at4 = dict(rows).get(4)
    if at4 is not None:
        burst_ratio, sustained_ratio = at4
        print("\nK=4, pool on, achieved / ideal (target >= 0.9): sustained "
              + (f"{sustained_ratio:.3f}" if sustained_ratio else "-")
              + f"; whole burst from idle {burst_ratio:.3f} (its first wave meets pool_max_idle "
              "warm processes)")


if __name__ == "__main__":
    main()
