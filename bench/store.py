"""The store at the API's limits: a 100,000-request batch checked, stored, finished and read
back as JSONL, with no CLI involved. Prints timings, asserts nothing.

    /tmp/venv/bin/python bench/store.py [--requests 100000]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from claude_nb.service.batches import parse_create_body, results_lines  # noqa: E402
from claude_nb.service.store import Store  # noqa: E402


def timed(label, fn):
    started = time.perf_counter()
    value = fn()
    print(f"{label:<44} {time.perf_counter() - started:7.2f} s")
    return value


def main(n: int) -> None:
    body = json.dumps({"requests": [
        {"custom_id": f"row-{i}", "params": {"model": "sonnet", "max_tokens": 100, "messages": [
            {"role": "user", "content": f"Classify the sentiment of review number {i}."}]}}
        for i in range(n)]}).encode()
    print(f"request body                                 {len(body) / 1e6:7.1f} MB, {n:,} requests")
    store = Store(Path(tempfile.mkdtemp(prefix="claudenb-bench-")) / "bench.sqlite3")
    requests = timed("parse and check (validate_message_request)", lambda: parse_create_body(body))
    batch = timed("store the batch (one transaction)", lambda: store.create_batch(
        requests, expires_at=time.time() + 3600, owner="bench"))
    message = {"id": "msg_x", "type": "message", "role": "assistant", "model": "claude-sonnet-5",
               "content": [{"type": "text", "text": "positive"}], "stop_reason": "end_turn",
               "stop_sequence": None, "usage": {"input_tokens": 20, "output_tokens": 1}}

    def work_a_thousand():
        for item in store.claim_items(batch.id, "bench", limit=1000):
            store.save_result(batch.id, item.idx, {"type": "succeeded", "message": message})
    timed("claim + save_result, 1,000 items (1 tx each)", work_a_thousand)
    rest = store.claim_items(batch.id, "bench", limit=n)
    for item in rest:
        store.save_result(batch.id, item.idx, {"type": "succeeded", "message": message})
    timed("finish (count results)", lambda: store.finish_batch(batch.id))
    size = timed("stream all results as JSONL", lambda: sum(len(x) for x in results_lines(store, batch.id)))
    print(f"results                                      {size / 1e6:7.1f} MB")
    store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    main(parser.parse_args().requests)
