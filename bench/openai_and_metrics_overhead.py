"""What the OpenAI translation and the metrics registry cost per request (pure Python, no CLI).

    /tmp/venv/bin/python bench/openai_and_metrics_overhead.py
"""
import base64
import time

from server_ext.metrics import ServiceMetrics
from claude_nb.protocol.openai import ChatChunkTranslator, encode_chunk, translate_chat_request


def per_call(fn, n):
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def main():
    image = base64.b64encode(b"\0" * 200_000).decode()
    chat = {"model": "sonnet", "stream": True, "stream_options": {"include_usage": True},
            "tools": [{"type": "function", "function": {"name": f"tool_{i}", "parameters": {
                "type": "object", "properties": {"x": {"type": "string"}}}}} for i in range(10)],
            "messages": [{"role": "system", "content": "Be brief."}]
            + [m for i in range(20) for m in ({"role": "user", "content": f"question {i}"},
                                              {"role": "assistant", "content": f"answer {i}"})]
            + [{"role": "user", "content": [{"type": "text", "text": "and this?"},
                                            {"type": "image_url", "image_url": {
                                                "url": "data:image/png;base64," + image}}]}]}
    t = per_call(lambda: translate_chat_request(chat), 200)
    print(f"translate a 41-message chat with 10 tools and a 200 kB image: {t * 1e6:.0f} us")

    events = ([{"type": "message_start", "message": {"id": "msg_1", "model": "m", "usage": {}}},
               {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}]
              + [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "word "}}] * 2000
              + [{"type": "content_block_stop", "index": 0},
                 {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2000}},
                 {"type": "message_stop"}])

    def stream():
        tr = ChatChunkTranslator(include_usage=True)
        for e in events:
            for c in tr.feed(e):
                encode_chunk(c)
    t = per_call(stream, 20)
    print(f"translate and encode a 2000-delta stream: {t * 1e3:.1f} ms ({t / 2000 * 1e6:.1f} us per chunk)")

    metrics = ServiceMetrics()
    routes = ["/v1/messages", "/v1/chat/completions", "/v1/models", "/v1/messages/batches/{batch_id}"]
    for i in range(10_000):
        metrics.observe_request(routes[i % 4], "POST", 200 if i % 10 else 429, (i % 100) / 10)
        metrics.observe_first_token(routes[i % 2], f"model-{i % 5}", (i % 30) / 10)
    t = per_call(lambda: metrics.observe_request("/v1/messages", "POST", 200, 0.5), 100_000)
    print(f"observe one request: {t * 1e6:.2f} us")
    t = per_call(metrics.expose, 200)
    print(f"expose ({len(metrics.expose().splitlines())} lines): {t * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
