"""From the CLI's raw upstream stream events to the events a client of /v1/messages gets.

The CLI forwards the upstream's own SSE events (`stream_event` lines). On the way out we:
- rename client tools back from the CLI's `mcp__client__<name>` to `<name>`;
- hide blocks the client never asked for (the CLI's own tools, a call after tool_choice
  "none", a second call after disable_parallel_tool_use);
- turn the CLI's `StructuredOutput` tool call back into the JSON text the API returns, and
  hold the message's end until the CLI has accepted the JSON (see `release`);
- hold the message's end (`message_delta`, `message_stop`) until the CLI's `result` line says
  the run succeeded (see `release`): newer CLIs close a cut upstream stream with an end of
  their own, so only the result tells a whole answer from a cut one;
- emulate `stop_sequences`: cut the text before the first match and end the message there;
- renumber block indexes so they stay 0, 1, 2 in start order.
"""
from __future__ import annotations

import copy
import json

from ..protocol.tokens import count_text

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
    """Turns the upstream events of one CLI run into the client's events.

    Feed it the `event` of every `stream_event` line. Only the first upstream message counts
    (the CLI runs with --max-turns 1; anything after its message_stop is ignored).
    """

    def __init__(self, *, client_tools=(), stop_sequences=(), structured: bool = False,
                 max_tool_calls: int | None = None):
        self.client_tools = set(client_tools)
        self.stop_sequences = [s for s in stop_sequences if s]
        self.holdback = max((len(s) for s in self.stop_sequences), default=1) - 1
        self.structured = structured
        self.max_tool_calls = max_tool_calls
        self.message: dict | None = None
        self.started = False
        self.upstream_done = False   # the upstream message_stop arrived (or we cut)
        self.finished = False        # message_stop emitted to the client
        self.cut = False             # we ended the message ourselves (stop sequence)
        self.saw_client_tool = False
        self.client_tool_calls = 0
        self.upstream_messages = 0
        self.upstream_stop_reason: str | None = None
        self.structured_error: str | None = None   # the CLI's verdict on a StructuredOutput call
        self.ended_without_reason = False   # an end with no stop_reason: the CLI closed a cut stream
        self._structured_ids: set[str] = set()
        self._held: list[dict] = []  # the message's end, until the run's result accepts it
        self._index_map: dict[int, int] = {}
        self._hidden: set[int] = set()
        self._as_text: set[int] = set()      # StructuredOutput tool input streamed as text
        self._pending: dict[int, dict] = {}  # structured: text blocks awaiting what follows
        self._text: dict[int, list] = {}     # client index -> [accumulated, emitted upto]
        self._next_index = 0
        self._output_tokens = 0

    # -- public ---------------------------------------------------------------------------
    def feed(self, event: dict) -> list[dict]:
        if self.upstream_done or not isinstance(event, dict):
            return []
        kind = event.get("type")
        handler = getattr(self, "_on_" + str(kind), None)
        if handler is None:
            return []        # ping and unknown event types: nothing to forward
        return handler(event)

    def observe_cli_user(self, line: dict) -> None:
        """The CLI's own `user` lines carry its verdict on a StructuredOutput call."""
        content = ((line.get("message") or {}).get("content")) or []
        for block in content if isinstance(content, list) else []:
            if (isinstance(block, dict) and block.get("type") == "tool_result"
                    and block.get("tool_use_id") in self._structured_ids and block.get("is_error")):
                text = block.get("content")
                if isinstance(text, list):
                    text = " ".join(b.get("text", "") for b in text if isinstance(b, dict))
                self.structured_error = str(text or "the output did not match the schema")

    @property
    def awaiting_verdict(self) -> bool:
        """The message ended upstream; its end is held back until the run's result."""
        return self.upstream_done and bool(self._held) and not self.finished

    def release(self) -> list[dict]:
        """Emit the held end of the message (the run succeeded, structured JSON accepted)."""
        out, self._held = self._held, []
        if out:
            self.finished = True
        return out

    @property
    def output_tokens(self) -> int:
        """Output tokens so far; after a cut, an estimate from the text generated upstream."""
        return self._output_tokens

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
        self._output_tokens = int(message["usage"].get("output_tokens") or 0)
        self.message = message
        return [{"type": "message_start", "message": copy.deepcopy(message)}]

    def _open_block(self, upstream: int, block: dict) -> list[dict]:
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

    def _flush_pending(self) -> list[dict]:
        """Structured mode: text written before a client tool call is part of the answer."""
        out = []
        for upstream, pending in sorted(self._pending.items()):
            out += self._open_block(upstream, pending["block"])
            index = self._index_map[upstream]
            if pending["text"]:
                out += self._text_delta(index, pending["text"])
            if pending["stopped"]:
                out += self._close_block(index)
        self._pending.clear()
        return out

    def _on_content_block_start(self, event):
        upstream = event.get("index", 0)
        block = copy.deepcopy(event.get("content_block") or {})
        kind = block.get("type")
        out: list[dict] = []
        if kind == "tool_use":
            name = block.get("name", "")
            client_name = name[len(CLIENT_TOOL_PREFIX):] if name.startswith(CLIENT_TOOL_PREFIX) else None
            if self.structured and name == STRUCTURED_TOOL:
                self._pending.clear()            # the JSON is the answer; preamble text is not
                self._structured_ids.add(block.get("id"))
                self._as_text.add(upstream)
                block = {"type": "text", "text": ""}
            elif (client_name in self.client_tools
                  and (self.max_tool_calls is None or self.client_tool_calls < self.max_tool_calls)):
                out += self._flush_pending()
                block["name"] = client_name
                block["input"] = {}
                self.saw_client_tool = True
                self.client_tool_calls += 1
            else:
                # The CLI's own tools, a tool call after tool_choice "none", or a parallel call
                # the client ruled out: never shown to the client.
                self._hidden.add(upstream)
                return []
        elif kind == "text" and self.structured:
            self._pending[upstream] = {"block": block, "text": block.get("text") or "", "stopped": False}
            block["text"] = ""
            return []
        return out + self._open_block(upstream, block)

    def _on_content_block_delta(self, event):
        upstream = event.get("index", 0)
        delta = event.get("delta") or {}
        if upstream in self._pending:
            if delta.get("type") == "text_delta":
                self._pending[upstream]["text"] += delta.get("text", "")
            return []
        if upstream in self._hidden or upstream not in self._index_map:
            return []
        index = self._index_map[upstream]
        if upstream in self._as_text and delta.get("type") == "input_json_delta":
            return self._text_delta(index, delta.get("partial_json", ""))
        if delta.get("type") == "text_delta" and index in self._text:
            return self._text_delta(index, delta.get("text", ""))
        return [{"type": "content_block_delta", "index": index, "delta": delta}]

    def _close_block(self, index: int) -> list[dict]:
        out = []
        if index in self._text:
            acc, emitted = self._text[index]
            if emitted < len(acc):
                out.append(self._delta_event(index, acc[emitted:]))
                self._text[index][1] = len(acc)
        out.append({"type": "content_block_stop", "index": index})
        return out

    def _on_content_block_stop(self, event):
        upstream = event.get("index", 0)
        if upstream in self._pending:
            self._pending[upstream]["stopped"] = True
            return []
        if upstream in self._hidden or upstream not in self._index_map:
            return []
        return self._close_block(self._index_map[upstream])

    def _on_message_delta(self, event):
        self._pending.clear()                # structured: text never followed by a tool call
        delta = dict(event.get("delta") or {})
        usage = dict(event.get("usage") or {})
        if usage.get("output_tokens") is None:
            usage["output_tokens"] = self._output_tokens
        self._output_tokens = usage["output_tokens"] or 0
        self.upstream_stop_reason = delta.get("stop_reason") or self.upstream_stop_reason
        if not delta.get("stop_reason"):
            self.ended_without_reason = True     # the API always says why a message ended
        if delta.get("stop_reason") == "tool_use" and not self.saw_client_tool:
            delta["stop_reason"] = "end_turn"     # only hidden tools (the CLI's own) were called
        delta.setdefault("stop_sequence", None)
        self._held.append({"type": "message_delta", "delta": delta, "usage": usage})
        return []

    def _on_message_stop(self, event):
        self.upstream_done = True
        if not any(e["type"] == "message_delta" for e in self._held):
            self.ended_without_reason = True     # an end the CLI made up after a cut
        self._held.append({"type": "message_stop"})
        return []

    # -- stop sequences -------------------------------------------------------------------
    def _delta_event(self, index, text):
        return {"type": "content_block_delta", "index": index,
                "delta": {"type": "text_delta", "text": text}}

    def _text_delta(self, index, text):
        state = self._text[index]
        state[0] += text
        acc, emitted = state
        if self.stop_sequences:
            # Text within `holdback` characters of the end may be the start of a stop sequence:
            # it is only sent once the following text shows it is not.
            start = max(0, emitted - self.holdback)
            hits = [(acc.find(s, start), s) for s in self.stop_sequences]
            hits = [(pos, s) for pos, s in hits if pos >= 0]
            if hits:
                # The sequence that completes first is the one the stream would stop at,
                # whatever the chunking: "<END>" inside "<<END>>" wins.
                pos, seq = min(hits, key=lambda hit: (hit[0] + len(hit[1]), hit[0]))
                return self._cut(index, pos, seq)
            upto = len(acc) - self.holdback
        else:
            upto = len(acc)
        if upto > emitted:
            state[1] = upto
            return [self._delta_event(index, acc[emitted:upto])]
        return []

    def _cut(self, index: int, pos: int, seq: str) -> list[dict]:
        """A stop sequence matched: end the message there, as the API does."""
        state = self._text[index]
        acc, emitted = state
        out = []
        if pos > emitted:
            out.append(self._delta_event(index, acc[emitted:pos]))
        state[0] = acc[:pos]
        state[1] = pos
        # The stream's usage has no running output count: estimate what was generated.
        generated = sum(count_text(text) for text, _ in self._text.values())
        self._output_tokens = max(self._output_tokens, generated)
        out.append({"type": "content_block_stop", "index": index})
        out.append({"type": "message_delta",
                    "delta": {"stop_reason": "stop_sequence", "stop_sequence": seq},
                    "usage": {"output_tokens": self._output_tokens}})
        out.append({"type": "message_stop"})
        self.upstream_done = self.finished = self.cut = True
        self._held = []
        return out


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
