"""Message threads: time to first token of a `continue` turn (one new user turn, answered by the
CLI process the thread kept) against a cold `claude -p` on the same upstream, interleaved run by
run. Also the same turn sent as the SDK's replay does it (`create` with the whole history: the
bridge resumes it from a transcript on a new process).

    .venv/bin/python bench/threads.py [--runs 10] [--pause 1.0]

Target: median(continue) / median(cold claude -p) <= 0.2.
"""
from __future__ import annotations

import argparse
import json
import time

import httpx

import common
from common import Sandbox, cold_cli_ttft, median, ms, percentile

BODY = {"model": "sonnet", "max_tokens": 4096, "stream": True}


def threaded_turn(client: httpx.Client, server, messages: list, thread: dict) -> dict:
    """One streamed threaded /v1/messages: first text delta time, the response id and text."""
    started = time.perf_counter()
    first, message_id, text = None, None, []
    with client.stream("POST", server.url + "v1/messages", headers=server.headers, timeout=120,
                       content=json.dumps({**BODY, "messages": messages, "thread": thread})) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.read()[:500]!r}")
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line[6:])
            if event["type"] == "message_start":
                message_id = event["message"]["id"]
            elif event["type"] == "content_block_delta" and event["delta"]["type"] == "text_delta":
                first = first if first is not None else time.perf_counter() - started
                text.append(event["delta"]["text"])
            elif event["type"] == "error":
                raise RuntimeError("stream error: " + line[:500])
    return {"ttft": first, "id": message_id, "text": "".join(text)}


def measure(sandbox: Sandbox, runs: int, pause: float) -> dict:
    server = sandbox.server()                      # defaults: pool on, pool_max_idle 6, pool_prestart 2
    server.wait_pool_idle()
    out = {"continue, kept process": [], "replay: create with the whole history": [],
           "cold claude -p": []}
    with httpx.Client() as client:
        for i in range(runs):
            question = {"role": "user", "content": f"my name is Ada {i}"}
            created = threaded_turn(client, server, [question], {"type": "create"})
            follow_up = {"role": "user", "content": "what is my name?"}
            history = [question, {"role": "assistant", "content": created["text"]}, follow_up]

            def continued():
                return threaded_turn(client, server, [follow_up],
                                     {"type": "continue", "previous_message_id": created["id"]})["ttft"]
            order = [("continue, kept process", continued),
                     ("replay: create with the whole history",
                      lambda: threaded_turn(client, server, history, {"type": "create"})["ttft"]),
                     ("cold claude -p", lambda: cold_cli_ttft(sandbox, f"run {i}", max_tokens=4096))]
            shift = i % len(order)                 # rotate who goes first
            time.sleep(pause)     # the created turn's process is kept, the pool refills
            for name, run in order[shift:] + order[:shift]:
                out[name].append(run())
                time.sleep(pause)
    health = server.health()
    out["_pool"], out["_threads"] = health.get("pool"), health.get("threads")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--pause", type=float, default=1.0,
                        help="seconds between measurements (the pool refills in the background)")
    args = parser.parse_args()
    print(f"threads: {common.machine()}; {args.runs} interleaved runs, {args.pause:g} s apart")
    with Sandbox() as sandbox:
        results = measure(sandbox, args.runs, args.pause)
    base = median(results["cold claude -p"])
    print(f"\n{'':40} {'n':>3} {'median':>9} {'p90':>9} {'min':>9}   ratio to cold claude -p")
    for name in ("continue, kept process", "replay: create with the whole history", "cold claude -p"):
        values = results[name]
        print(f"{name:40} {len(values):>3} {ms(median(values)):>9} {ms(percentile(values, 0.9)):>9} "
              f"{ms(min(values)):>9}   {median(values) / base:.3f}")
    ratio = median(results["continue, kept process"]) / base
    print(f"\ncontinue / cold claude -p, median ratio: {ratio:.3f} (target <= 0.2)")
    print(f"server pool counters: {results['_pool']}")
    print(f"server threads: {results['_threads']}")


if __name__ == "__main__":
    main()
