"""Is the Jupyter server still responsive while long answers stream? The server's Tornado loop
lag (measured inside the server by bench/loop_probe.py) and two HTTP probes from a client
(GET /api, and GET /api/status as the notebook UI polls it), idle and while 8 long streams run,
in the same run.

Each stream is an answer of --chunks text deltas, one every --chunk-ms (default 1000 deltas at
10 ms: ten seconds at 100 events/s per stream, 800 events/s through the server). Phases:
"starting" runs from the requests to the last stream's first token (8 CLI processes getting
ready: CPU work outside the loop), "streaming" from then until the first stream ends.

    /tmp/venv/bin/python bench/loop.py [--streams 8] [--chunks 1000] [--chunk-ms 10]

Target: GET /api/status p95 < 50 ms from a client while the 8 streams run (and loop lag p95).
"""
from __future__ import annotations

import argparse
import threading
import time

import httpx

import common
from common import Reply, Sandbox, message, ms, percentile, stream_request


class HttpProbe(threading.Thread):
    """GET `path` every `every` seconds, recording (time, round trip)."""

    def __init__(self, server, every: float = 0.05, path: str = "api", headers: dict | None = None):
        super().__init__(daemon=True)
        self.server, self.every, self.path, self.headers = server, every, path, headers or {}
        self.samples: list[tuple[float, float]] = []
        self.stop_event = threading.Event()

    def run(self):
        with httpx.Client() as client:
            while not self.stop_event.is_set():
                started = time.monotonic()
                client.get(self.server.url + self.path, headers=self.headers,
                           timeout=30).raise_for_status()
                self.samples.append((started, time.monotonic() - started))
                self.stop_event.wait(self.every)


def between(samples, start: float, end: float) -> list[float]:
    return [value for t, value in samples if start <= t < end]


def row(name: str, values: list[float]) -> str:
    return (f"{name:28} {len(values):>5} {ms(percentile(values, 0.5)):>8} {ms(percentile(values, 0.95)):>8} "
            f"{ms(percentile(values, 0.99)):>8} {ms(max(values) if values else float('nan')):>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--chunks", type=int, default=1000)
    parser.add_argument("--chunk-ms", type=float, default=10.0)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--cli-niceness", type=int, default=None,
                        help="c.ClaudeBridge.cli_niceness (default: the server's default, 10; "
                             "0 runs the CLI processes at the server's own priority)")
    args = parser.parse_args()
    seconds = args.chunks * args.chunk_ms / 1000
    print(f"loop: {common.machine()}; {args.streams} streams of {args.chunks} deltas every "
          f"{args.chunk_ms:g} ms ({seconds:g} s each); cli_niceness "
          f"{'default' if args.cli_niceness is None else args.cli_niceness}; load average "
          f"{common.load_average()}")
    text = ("abcd" * args.chunks)[:args.chunks * 4]
    with Sandbox() as sandbox:
        nice = {} if args.cli_niceness is None else {"cli_niceness": args.cli_niceness}
        server = sandbox.server(extensions=("loop_probe",), max_concurrency=args.streams, **nice)
        server.wait_pool_idle()
        time.sleep(1.0)
        probe = HttpProbe(server)
        status_probe = HttpProbe(server, every=0.1, path="api/status",
                                 headers={"Authorization": "token " + server.token})
        probe.start()
        status_probe.start()
        idle_start = time.monotonic()
        time.sleep(args.idle_seconds)

        sandbox.upstream.responder = lambda rec: Reply.text(text, delay_per_chunk=args.chunk_ms / 1000)
        results, lock = [], threading.Lock()

        def streamer(i):
            with httpx.Client() as client:
                result = stream_request(client, server, message(f"stream {i}", max_tokens=8192))
            result["ended_at"] = time.monotonic()
            with lock:
                results.append(result)

        threads = [threading.Thread(target=streamer, args=(i,)) for i in range(args.streams)]
        load_start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for p in (probe, status_probe):
            p.stop_event.set()
            p.join()
        with httpx.Client() as client:
            response = client.get(server.url + "bench/loop-lag",
                                  headers={"Authorization": "token " + server.token})
            response.raise_for_status()
            lags = response.json()
        load = open("/proc/loadavg").read().split()[0]

    all_streaming = max(r["started_at"] + r["ttft"] for r in results)
    first_end = min(r["ended_at"] for r in results)
    complete = sum(1 for r in results if r["text"] == text)
    print(f"\n{complete}/{args.streams} streams complete; first tokens after "
          f"{ms(min(r['ttft'] for r in results))}..{ms(max(r['ttft'] for r in results))}; "
          f"all {args.streams} streaming together for {first_end - all_streaming:.1f} s; "
          f"load average {load}")
    phases = [("idle", idle_start, load_start), ("starting", load_start, all_streaming),
              ("streaming", all_streaming, first_end)]
    print(f"\n{'':28} {'n':>5} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}")
    for name, start, end in phases:
        print(row(f"loop lag, {name}", between(lags, start, end)))
    for name, start, end in phases:
        print(row(f"GET /api, {name}", between(probe.samples, start, end)))
    for name, start, end in phases:
        print(row(f"GET /api/status, {name}", between(status_probe.samples, start, end)))
    streaming = between(lags, all_streaming, first_end)
    status = between(status_probe.samples, all_streaming, first_end)
    everything = between(status_probe.samples, load_start, first_end)
    print(f"\nGET /api/status p95 from a client while {args.streams} streams run: "
          f"{ms(percentile(status, 0.95))} (target < 50 ms); from the requests on, starts "
          f"included: {ms(percentile(everything, 0.95))}")
    print(f"loop lag p95 while {args.streams} streams run: {ms(percentile(streaming, 0.95))}")


if __name__ == "__main__":
    main()
