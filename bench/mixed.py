"""First token when requests of several shapes take turns (as SDK apps, LangChain chains and
notebooks with several models send them): the server against a cold `claude -p` launched for the
same shape, interleaved, in the same run.

Five shapes rotate: haiku with a system prompt, sonnet answering in French, opus, sonnet with
thinking, haiku with a system prompt in blocks. One round goes first so the server has seen each
shape (a server that only keeps a process per shape seen is measured fairly), then --rounds
measured rounds.

    .venv/bin/python bench/mixed.py [--rounds 6] [--pause 1.0]

Target: median first token through the server <= 0.2 x the cold CLI's.
"""
from __future__ import annotations

import argparse
import time

import httpx

import common
from common import Sandbox, cold_cli_run, median, ms, percentile, stream_request

SHAPES = [
    {"model": "sonnet", "max_tokens": 4096},      # the default shape (bench/cost.py --shapes 1)
    {"model": "haiku", "max_tokens": 1024, "system": "You answer in one short sentence."},
    {"model": "sonnet", "max_tokens": 2048, "system": "Réponds toujours en français."},
    {"model": "opus", "max_tokens": 4096},
    {"model": "sonnet", "max_tokens": 8000, "thinking": {"type": "enabled", "budget_tokens": 2000}},
    {"model": "haiku", "max_tokens": 1024,
     "system": [{"type": "text", "text": "You are a careful analyst."},
                {"type": "text", "text": "Quote numbers exactly."}]},
]
# The five shapes that rotate (the default one is only for bench/cost.py --shapes 1).
ROTATING = SHAPES[1:]


def shaped(shape: dict, text: str) -> dict:
    return {**shape, "stream": True, "messages": [{"role": "user", "content": text}]}


def cold_spec(shape: dict):
    """The LaunchSpec the bridge would start a process with for this shape."""
    from claude_nb.bridge.plan import plan_request
    return plan_request(shaped(shape, ".")).spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--pause", type=float, default=1.0,
                        help="seconds between measurements (refills happen in the background)")
    parser.add_argument("--max-idle", type=int, default=None,
                        help="c.ClaudeBridge.pool_max_idle (default: the server's default)")
    args = parser.parse_args()
    print(f"mixed: {common.machine()}; {len(ROTATING)} shapes x {args.rounds} rounds, interleaved "
          f"with a cold CLI; pool_max_idle {args.max_idle or 'default'}; "
          f"load average {common.load_average()}")
    server_ttft: list[float] = []
    cold_ttft: list[float] = []
    per_shape: dict[int, list[float]] = {i: [] for i in range(len(ROTATING))}
    with Sandbox() as sandbox:
        server = sandbox.server(**({} if args.max_idle is None else {"pool_max_idle": args.max_idle}))
        server.wait_pool_idle()
        with httpx.Client() as client:
            for i, shape in enumerate(ROTATING):          # one round first: every shape seen once
                stream_request(client, server, shaped(shape, f"first {i}"))
                time.sleep(args.pause)
            for r in range(args.rounds):
                for i, shape in enumerate(ROTATING):
                    time.sleep(args.pause)
                    ttft = stream_request(client, server, shaped(shape, f"round {r} shape {i}"))["ttft"]
                    server_ttft.append(ttft)
                    per_shape[i].append(ttft)
                    time.sleep(args.pause)
                    cold_ttft.append(cold_cli_run(sandbox, f"cold {r} {i}", cold_spec(shape))["ttft"])
            pool = server.health().get("pool")
        load = common.load_average()
    print(f"\n{'':28} {'n':>3} {'median':>9} {'p90':>9}")
    print(f"{'server':28} {len(server_ttft):>3} {ms(median(server_ttft)):>9} "
          f"{ms(percentile(server_ttft, 0.9)):>9}")
    print(f"{'cold claude -p, same shape':28} {len(cold_ttft):>3} {ms(median(cold_ttft)):>9} "
          f"{ms(percentile(cold_ttft, 0.9)):>9}")
    for i, values in per_shape.items():
        label = f"  shape {i + 1} ({ROTATING[i]['model']})"
        print(f"{label:28} {len(values):>3} {ms(median(values)):>9} {ms(percentile(values, 0.9)):>9}")
    print(f"\nmedian ratio server / cold: {median(server_ttft) / median(cold_ttft):.2f} "
          f"(target <= 0.2)")
    print(f"pool counters: {pool}")
    print(f"load average at the end: {load}")


if __name__ == "__main__":
    main()
