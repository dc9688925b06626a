"""Chat completions out: a whole Anthropic Message as a `chat.completion`
(`completion_from_message`), and the bridge's stream events as `chat.completion.chunk` objects
(`ChatChunkTranslator`), written as OpenAI's data-only SSE (`encode_chunk`, then `DONE`)."""
from __future__ import annotations

import json
import time
import uuid

from ..sse import sse_json

FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
                  "max_tokens": "length", "model_context_window_exceeded": "length",
                  "tool_use": "tool_calls", "refusal": "content_filter"}


def completion_id(message_id: str | None) -> str:
    """A chat completion id derived from the Message id, so logs can match the two."""
    if message_id and message_id.startswith("msg_"):
        return "chatcmpl-" + message_id[4:]
    return "chatcmpl-" + (message_id or uuid.uuid4().hex)


def finish_reason(stop_reason: str | None) -> str | None:
    if stop_reason is None:
        return None
    return FINISH_REASONS.get(stop_reason, "stop")


def usage_from_anthropic(usage: dict | None) -> dict:
    """OpenAI's usage: every input token the model read counts as a prompt token."""
    usage = usage or {}
    cached = int(usage.get("cache_read_input_tokens") or 0)
    prompt = (int(usage.get("input_tokens") or 0) + cached
              + int(usage.get("cache_creation_input_tokens") or 0))
    completion = int(usage.get("output_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0}}


def completion_from_message(message: dict, *, created: int | None = None) -> dict:
    """A whole Anthropic Message as a `chat.completion`."""
    texts, reasoning, calls = [], [], []
    for block in message.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "thinking":
            reasoning.append(block.get("thinking", ""))
        elif kind == "tool_use":
            calls.append({"id": block["id"], "type": "function",
                          "function": {"name": block["name"],
                                       "arguments": json.dumps(block.get("input") or {},
                                                               ensure_ascii=False)}})
    reply: dict = {"role": "assistant", "content": "".join(texts) if texts or not calls else None,
                   "refusal": None, "annotations": []}
    if calls:
        reply["tool_calls"] = calls
    if reasoning:
        reply["reasoning_content"] = "".join(reasoning)   # the de facto field (vLLM, DeepSeek)
    return {
        "id": completion_id(message.get("id")),
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": message.get("model") or "",
        "choices": [{"index": 0, "message": reply, "logprobs": None,
                     "finish_reason": finish_reason(message.get("stop_reason")) or "stop"}],
        "usage": usage_from_anthropic(message.get("usage")),
        "service_tier": "default",
        "system_fingerprint": None,
    }


class ChatChunkTranslator:
    """Anthropic stream events in, `chat.completion.chunk` objects out (one choice, index 0).

    The bridge's last internal `claude_nb.final_usage` event becomes the usage chunk when the
    client asked for `stream_options.include_usage`.
    """

    def __init__(self, *, created: int | None = None, include_usage: bool = False, model: str = ""):
        self.created = created if created is not None else int(time.time())
        self.include_usage = include_usage
        self.model = model
        self.id = completion_id(None)
        self.started = False
        self.finish: str | None = None
        self._calls: dict[int, dict] = {}     # block index -> {"index", "sent"}
        self._usage: dict = {}

    def _chunk(self, delta: dict | None, finish: str | None = None, *, usage=None,
               choices: bool = True) -> dict:
        chunk = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                 "model": self.model, "service_tier": "default", "system_fingerprint": None,
                 "choices": ([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
                             if choices else [])}
        if self.include_usage:
            chunk["usage"] = usage
        return chunk

    def feed(self, event: dict) -> list[dict]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.id = completion_id(message.get("id"))
            self.model = message.get("model") or self.model
            self._usage = dict(message.get("usage") or {})
            self.started = True
            return [self._chunk({"role": "assistant", "content": "", "refusal": None})]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = len(self._calls)
                self._calls[event.get("index", 0)] = {"index": index, "sent": False}
                return [self._chunk({"tool_calls": [{
                    "index": index, "id": block.get("id"), "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""}}]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta" and delta.get("text"):
                return [self._chunk({"content": delta["text"]})]
            if dtype == "thinking_delta" and delta.get("thinking"):
                return [self._chunk({"reasoning_content": delta["thinking"]})]
            if dtype == "input_json_delta" and delta.get("partial_json"):
                call = self._calls.get(event.get("index", 0))
                if call is None:
                    return []
                call["sent"] = True
                return [self._chunk({"tool_calls": [{"index": call["index"],
                                                     "function": {"arguments": delta["partial_json"]}}]})]
            return []
        if kind == "content_block_stop":
            call = self._calls.get(event.get("index", 0))
            if call is not None and not call["sent"]:
                call["sent"] = True    # no arguments streamed: still hand the client valid JSON
                return [self._chunk({"tool_calls": [{"index": call["index"],
                                                     "function": {"arguments": "{}"}}]})]
            return []
        if kind == "message_delta":
            self._usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            reason = (event.get("delta") or {}).get("stop_reason")
            if reason is not None and self.finish is None:
                self.finish = finish_reason(reason)
                return [self._chunk({}, self.finish)]
            return []
        if kind == "claude_nb.final_usage":
            self._usage = dict(event.get("usage") or self._usage)
            if self.include_usage:
                return [self._chunk(None, usage=usage_from_anthropic(self._usage), choices=False)]
            return []
        return []      # message_stop, ping


def encode_chunk(chunk: dict) -> bytes:
    """One data-only SSE line, the way OpenAI streams (no `event:` names)."""
    return b"data: " + sse_json(chunk).encode("utf-8") + b"\n\n"


DONE = b"data: [DONE]\n\n"
