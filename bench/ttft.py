"""Time to first token: through the Jupyter server with the warm pool, against a cold `claude -p`
on the same upstream (and the server with the pool off), interleaved run by run.

Also, through the same server: the second turn of a chat that keeps its process (the
`claude-nb-session` header, as `%%claude` cells send it), and of a conversation sent whole each
turn with no header at all (as the SDK without threads and LangChain send it: continued on the
process that gave the first answer), against the same turn resumed from a transcript (its first
turn's process held by another session, so nothing can continue it).

    /tmp/venv/bin/python bench/ttft.py [--runs 15] [--pause 1.0] [--no-chat]

Target: median(server, pool on) / median(cold claude -p) <= 0.2 (stretch 0.1).
"""
from __future__ import annotations

import argparse
import time

import httpx

import common
from common import Sandbox, cold_cli_ttft, median, message, ms, percentile, stream_request


def server_ttfts(sandbox: Sandbox, runs: int, pause: float) -> dict[str, list[float]]:
    warm = sandbox.server()                                    # defaults: pool on, prewarmed
    cold = sandbox.server(pool_enabled=False)
    warm.wait_pool_idle()
    time.sleep(pause)
    results = {"server, pool on": [], "server, pool off": [], "cold claude -p": []}
    with httpx.Client() as warm_client, httpx.Client() as cold_client:
        # The first request after start: the prewarmed spec (sonnet, max_tokens 4096).
        first = stream_request(warm_client, warm, message("first", max_tokens=4096))
        results["first request after start"] = [first["ttft"]]
        for i in range(runs):
            order = [("server, pool on", lambda: stream_request(warm_client, warm,
                                                                 message(f"run {i}", max_tokens=4096))["ttft"]),
                     ("cold claude -p", lambda: cold_cli_ttft(sandbox, f"run {i}", max_tokens=4096)),
                     ("server, pool off", lambda: stream_request(cold_client, cold,
                                                                  message(f"run {i}", max_tokens=4096))["ttft"])]
            shift = i % len(order)                             # rotate who goes first
            for name, measure in order[shift:] + order[:shift]:
                time.sleep(pause)     # let the replacement process get ready, and the CPU settle
                results[name].append(measure())
        health = warm.health().get("pool")
    results["_pool"] = health
    return results


def chat_body(history: list[dict]) -> dict:
    return {"model": "sonnet", "max_tokens": 4096, "stream": True, "messages": history}


def chat_ttfts(sandbox: Sandbox, runs: int, pause: float) -> dict[str, list[float]]:
    """Second chat turn through the server: kept process (session header) vs transcript resume."""
    server = sandbox.servers[0]
    out = {"chat turn 2, session kept": [], "chat turn 2, no header": [],
           "chat turn 2, resumed cold": []}
    with httpx.Client() as client:
        for i in range(runs):
            session = {"claude-nb-session": f"bench-chat-{i}"}
            history = [{"role": "user", "content": f"my name is Ada {i}"}]
            first = stream_request(client, server, chat_body(history), session)
            history += [{"role": "assistant", "content": first["text"]},
                        {"role": "user", "content": "what is my name?"}]
            time.sleep(pause)
            out["chat turn 2, resumed cold"].append(
                stream_request(client, server, chat_body(history))["ttft"])
            time.sleep(pause)
            out["chat turn 2, session kept"].append(
                stream_request(client, server, chat_body(history), session)["ttft"])
            client.delete(server.url + f"claude_nb/sessions/bench-chat-{i}", headers=server.headers)
            time.sleep(pause)
            plain = [{"role": "user", "content": f"my name is Grace {i}"}]
            answer = stream_request(client, server, chat_body(plain))
            plain += [{"role": "assistant", "content": answer["text"]},
                      {"role": "user", "content": "what is my name?"}]
            time.sleep(pause)
            out["chat turn 2, no header"].append(stream_request(client, server, chat_body(plain))["ttft"])
    out["_pool"] = server.health().get("pool")
    return out


def report(results: dict, baseline: str, rows: list[str]) -> None:
    base = median(results[baseline])
    print(f"{'':34} {'n':>3} {'median':>9} {'p90':>9} {'min':>9}   ratio to {baseline}")
    for name in rows:
        values = results[name]
        print(f"{name:34} {len(values):>3} {ms(median(values)):>9} {ms(percentile(values, 0.9)):>9} "
              f"{ms(min(values)):>9}   {median(values) / base:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--pause", type=float, default=1.0,
                        help="seconds between measurements (the pool refills in the background)")
    parser.add_argument("--no-chat", action="store_true")
    args = parser.parse_args()
    print(f"ttft: {common.machine()}; {args.runs} interleaved runs, {args.pause:g} s apart")
    with Sandbox() as sandbox:
        results = server_ttfts(sandbox, args.runs, args.pause)
        print()
        report(results, "cold claude -p", ["server, pool on", "server, pool off", "cold claude -p",
                                           "first request after start"])
        ratio = median(results["server, pool on"]) / median(results["cold claude -p"])
        print(f"\nserver (pool on) / cold claude -p, median ratio: {ratio:.3f} "
              f"(target <= 0.2, stretch 0.1)")
        print(f"server pool counters: {results['_pool']}")
        if not args.no_chat:
            chat = chat_ttfts(sandbox, max(3, args.runs // 2), args.pause)
            print()
            report(chat, "chat turn 2, resumed cold", ["chat turn 2, session kept",
                                                       "chat turn 2, no header",
                                                       "chat turn 2, resumed cold"])
            print(f"server pool counters: {chat['_pool']}")


if __name__ == "__main__":
    main()
