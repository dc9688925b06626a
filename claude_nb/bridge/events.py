"""From the CLI's raw upstream stream events to the events a client of /v1/messages gets.

The CLI forwards the upstream's own SSE events (`stream_event` lines). On the way out we:
- rename client tools back from the CLI's `mcp__client__<name>` to `<name>`;
- hide blocks the client never asked for (the CLI's own tools);
- turn the CLI's `StructuredOutput` tool call back into the JSON text the API returns;
- emulate `stop_sequences`: cut the text before the first match and end the message there;
- renumber block indexes so they stay 0, 1, 2 in start order.
"""
from __future__ import annotations

import copy
import json

CLIENT_TOOL_PREFIX = "mcp__client__"
STRUCTURED_TOOL = "StructuredOutput"


def empty_usage() -> dict:
    return {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "server_tool_use": None, "service_tier": "standard"}


def normalize_usage(usage: dict | None) -> dict:
    out = empty_usage()
    for key, value in (usage or {}).items():
        if key in out and value is not None:
            out[key] = value
    cc = (usage or {}).get("cache_creation") or {}
    out["cache_creation"] = {
        "ephemeral_5m_input_tokens": int(cc.get("ephemeral_5m_input_tokens") or 0),
        "ephemeral_1h_input_tokens": int(cc.get("ephemeral_1h_input_tokens") or 0)}
    if out.get("service_tier") not in ("standard", "priority", "batch"):
        out["service_tier"] = "standard"
    return out


class EventTranslator:
    def __init__(self, *, client_tools=(), stop_sequences=(), structured: bool = False):
        self.client_tools = set(client_tools)
        self.stop_sequences = [s for s in stop_sequences if s]
        self.holdback = max((len(s) for s in self.stop_sequences), default=1) - 1
        self.structured = structured
        self.message: dict | None = None
        self.started = False
        self.finished = False        # message_stop emitted
        self.cut = False             # we ended the message ourselves (stop sequence)
        self.saw_client_tool = False
        self.upstream_messages = 0
        self._index_map: dict[int, int] = {}
        self._hidden: set[int] = set()
        self._as_text: set[int] = set()      # StructuredOutput tool input streamed as text
        self._text: dict[int, list] = {}     # client index -> [accumulated, emitted upto]
        self._next_index = 0
        self._output_tokens = 0

    # -- public ---------------------------------------------------------------------------
    def feed(self, event: dict) -> list[dict]:
        if self.finished or not isinstance(event, dict):
            return []
        kind = event.get("type")
        handler = getattr(self, "_on_" + str(kind), None)
        if handler is None:
            return []        # ping and unknown event types: nothing to forward
        return handler(event)

    # -- handlers -------------------------------------------------------------------------
    def _on_message_start(self, event):
        self.upstream_messages += 1
        if self.started:
            return []
        self.started = True
        message = copy.deepcopy(event.get("message") or {})
        message.setdefault("id", "msg_unknown")
        message.update({"type": "message", "role": "assistant", "content": [],
                        "stop_reason": None, "stop_sequence": None})
        message["usage"] = normalize_usage(message.get("usage"))
        self.message = message
        return [{"type": "message_start", "message": copy.deepcopy(message)}]

    def _on_content_block_start(self, event):
        upstream = event.get("index", 0)
        block = copy.deepcopy(event.get("content_block") or {})
        if block.get("type") == "tool_use":
            name = block.get("name", "")
            if self.structured and name == STRUCTURED_TOOL:
                self._as_text.add(upstream)
                block = {"type": "text", "text": ""}
            elif name.startswith(CLIENT_TOOL_PREFIX) and name[len(CLIENT_TOOL_PREFIX):] in self.client_tools:
                block["name"] = name[len(CLIENT_TOOL_PREFIX):]
                block["input"] = {}
                self.saw_client_tool = True
            else:
                self._hidden.add(upstream)
                return []
        index = self._next_index
        self._next_index += 1
        self._index_map[upstream] = index
        if block.get("type") == "text":
            self._text[index] = ["", 0]
            text = block.get("text") or ""
            block["text"] = ""
            out = [{"type": "content_block_start", "index": index, "content_block": block}]
            if text:
                out += self._text_delta(index, text)
            return out
        return [{"type": "content_block_start", "index": index, "content_block": block}]

    def _on_content_block_delta(self, event):
        upstream = event.get("index", 0)
        if upstream in self._hidden or upstream not in self._index_map:
            return []
        index = self._index_map[upstream]
        delta = event.get("delta") or {}
        if upstream in self._as_text and delta.get("type") == "input_json_delta":
            return self._text_delta(index, delta.get("partial_json", ""))
        if delta.get("type") == "text_delta" and index in self._text:
            return self._text_delta(index, delta.get("text", ""))
        return [{"type": "content_block_delta", "index": index, "delta": delta}]

    def _on_content_block_stop(self, event):
        upstream = event.get("index", 0)
        if upstream in self._hidden or upstream not in self._index_map:
            return []
        index = self._index_map[upstream]
        out = []
        if index in self._text:
            acc, emitted = self._text[index]
            if emitted < len(acc):
                out.append(self._delta_event(index, acc[emitted:]))
                self._text[index][1] = len(acc)
        out.append({"type": "content_block_stop", "index": index})
        return out

    def _on_message_delta(self, event):
        delta = dict(event.get("delta") or {})
        usage = dict(event.get("usage") or {})
        usage.setdefault("output_tokens", self._output_tokens)
        self._output_tokens = usage["output_tokens"] or 0
        if delta.get("stop_reason") == "tool_use" and not self.saw_client_tool:
            delta["stop_reason"] = "end_turn"     # only the CLI's own (hidden) tools were called
        delta.setdefault("stop_sequence", None)
        return [{"type": "message_delta", "delta": delta, "usage": usage}]

    def _on_message_stop(self, event):
        self.finished = True
        return [{"type": "message_stop"}]

    # -- stop sequences -------------------------------------------------------------------
    def _delta_event(self, index, text):
        return {"type": "content_block_delta", "index": index,
                "delta": {"type": "text_delta", "text": text}}

    def _text_delta(self, index, text):
        state = self._text[index]
        state[0] += text
        acc, emitted = state
        if self.stop_sequences:
            start = max(0, emitted - self.holdback)
            hits = [(acc.find(s, start), s) for s in self.stop_sequences]
            hits = [(pos, s) for pos, s in hits if pos >= 0]
            if hits:
                pos, seq = min(hits)
                out = []
                if pos > emitted:
                    out.append(self._delta_event(index, acc[emitted:pos]))
                state[0] = acc[:pos]
                state[1] = pos
                out.append({"type": "content_block_stop", "index": index})
                out.append({"type": "message_delta",
                            "delta": {"stop_reason": "stop_sequence", "stop_sequence": seq},
                            "usage": {"output_tokens": self._output_tokens}})
                out.append({"type": "message_stop"})
                self.finished = self.cut = True
                return out
            upto = len(acc) - self.holdback
        else:
            upto = len(acc)
        if upto > emitted:
            state[1] = upto
            return [self._delta_event(index, acc[emitted:upto])]
        return []


class MessageAccumulator:
    """Builds the final Message from the events a client received."""

    def __init__(self):
        self.message: dict | None = None
        self._json: dict[int, str] = {}

    def add(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "message_start":
            self.message = copy.deepcopy(event["message"])
        elif self.message is None:
            return
        elif kind == "content_block_start":
            self.message["content"].append(copy.deepcopy(event["content_block"]))
        elif kind == "content_block_delta":
            block = self.message["content"][event["index"]]
            delta = event["delta"]
            dtype = delta.get("type")
            if dtype == "text_delta":
                block["text"] = block.get("text", "") + delta.get("text", "")
            elif dtype == "input_json_delta":
                self._json[event["index"]] = self._json.get(event["index"], "") + delta.get("partial_json", "")
            elif dtype == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
            elif dtype == "signature_delta":
                block["signature"] = delta.get("signature", "")
            elif dtype == "citations_delta":
                block.setdefault("citations", []).append(delta.get("citation"))
        elif kind == "content_block_stop":
            index = event["index"]
            if index in self._json:
                raw = self._json.pop(index)
                try:
                    self.message["content"][index]["input"] = json.loads(raw) if raw.strip() else {}
                except ValueError:
                    self.message["content"][index]["input"] = {}
        elif kind == "message_delta":
            self.message.update({k: v for k, v in event.get("delta", {}).items()
                                 if k in ("stop_reason", "stop_sequence", "stop_details", "container")})
            for key, value in (event.get("usage") or {}).items():
                if value is not None:
                    self.message["usage"][key] = value
