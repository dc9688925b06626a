"""Time to first token and to the end, /v1/messages events vs OpenAI chunks, same bridge.

Real CLI (tests/cli) against the recording fake upstream on loopback, so the figures are the
bridge's and the CLI's own overhead, not a model's. Cold processes (no pool).

    PYTHONPATH=.:tests /tmp/venv/bin/python bench/openai_vs_messages_ttft.py
"""
import asyncio
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))      # the repo: tests.support
from tests.support.fake_upstream import FakeUpstream  # noqa: E402

from claude_nb.bridge import ClaudeBridge  # noqa: E402
from claude_nb.protocol.openai import translate_chat_request  # noqa: E402
from server_ext.handlers.openai import chat_chunks  # noqa: E402

ROUNDS = 6


async def main():
    upstream = FakeUpstream()
    os.environ.update(ANTHROPIC_BASE_URL=upstream.url, ANTHROPIC_API_KEY="bench",
                      CLAUDE_CONFIG_DIR=tempfile.mkdtemp(),
                      CLAUDE_NB_CLI=os.path.join(os.path.dirname(__file__), "..", "tests", "cli",
                                                 "node_modules", "@anthropic-ai",
                                                 "claude-code-linux-x64", "claude"))
    bridge = ClaudeBridge()
    body = {"model": "sonnet", "max_tokens": 64, "messages": [{"role": "user", "content": "hello " * 50}]}
    chat = translate_chat_request({"model": "sonnet", "max_tokens": 64, "stream": True,
                                   "messages": [{"role": "user", "content": "hello " * 50}]})
    results = {"messages": ([], []), "openai": ([], [])}
    for _ in range(ROUNDS):
        for name in results:
            start = time.perf_counter()
            first = None
            stream = bridge.stream(body) if name == "messages" else chat_chunks(bridge, chat)
            async for item in stream:
                if first is None and (item.get("type") == "content_block_delta"
                                      or (item.get("choices") and item["choices"][0]["delta"].get("content"))):
                    first = time.perf_counter() - start
            results[name][0].append(first)
            results[name][1].append(time.perf_counter() - start)
    for name, (ttft, total) in results.items():
        print(f"{name:9s} first token median {statistics.median(ttft) * 1000:6.0f} ms, "
              f"whole answer median {statistics.median(total) * 1000:6.0f} ms ({ROUNDS} runs)")
    await bridge.close()
    upstream.close()


if __name__ == "__main__":
    asyncio.run(main())
