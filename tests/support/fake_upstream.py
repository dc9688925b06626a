"""A scripted stand-in for the Anthropic API that records every request the CLI sends.

Runs in a thread on 127.0.0.1 (so tests' own event loops never block it). Tests queue `Reply`
scripts with `push()`; without one, a request is answered "You said: <last user text>", which
makes answers to concurrent requests tell themselves apart. It speaks the wire format the newest
CLI meets: SSE when the request says `stream: true`, a whole JSON Message otherwise; `Recorded`
tells the caller's turns from the `role: "system"` notes and tool placeholders CLIs add.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict
    body: object

    @property
    def messages(self) -> list:
        return (self.body or {}).get("messages", []) if isinstance(self.body, dict) else []

    def user_texts(self) -> list[str]:
        """Every text block the model received in user turns, the CLI's reminders left out."""
        out = []
        for m in self.messages:
            if m["role"] != "user":
                continue
            content = m["content"]
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            out += [b["text"] for b in blocks
                    if b.get("type") == "text" and not b["text"].startswith("<system-reminder>")]
        return out

    def conversation(self) -> list:
        """The user/assistant turns, without the `role: "system"` notes newer CLIs add."""
        return [m for m in self.messages if m.get("role") in ("user", "assistant")]

    def client_tools(self) -> list:
        """The tools the model was offered, without the CLI's own placeholders."""
        tools = (self.body or {}).get("tools") or [] if isinstance(self.body, dict) else []
        return [t for t in tools if t.get("name") != "DeferredToolPlaceholder"]

    def tool_results(self) -> list[dict]:
        """Every tool_result block of the user turns, in order: its text and whether it is an error."""
        out = []
        for message in self.messages:
            if message["role"] == "user" and isinstance(message["content"], list):
                for block in message["content"]:
                    if block.get("type") == "tool_result":
                        content = block["content"]
                        if isinstance(content, list):
                            content = "".join(b.get("text", "") for b in content)
                        out.append({"content": content, "is_error": bool(block.get("is_error"))})
        return out

    def asks_for_thinking(self) -> bool:
        thinking = (self.body or {}).get("thinking") if isinstance(self.body, dict) else None
        return bool(thinking) and thinking.get("type") != "disabled"

    def system_text(self) -> str:
        system = (self.body or {}).get("system") or []
        if isinstance(system, str):
            return system
        return "\n".join(b.get("text", "") for b in system)


@dataclass
class Reply:
    """One scripted upstream answer."""
    blocks: list = field(default_factory=list)     # [("text", str) | ("thinking", str) | ("tool_use", name, input)]
    stop_reason: str = "end_turn"
    status: int = 200
    error_type: str | None = None
    error_message: str = ""
    drop_after_chars: int | None = None            # close the connection mid-stream
    hang: float = 0.0                              # wait this long before answering
    delay_per_chunk: float = 0.0
    input_tokens: int = 25
    output_tokens: int = 12
    headers: dict = field(default_factory=dict)

    @classmethod
    def text(cls, text: str, **kw) -> "Reply":
        return cls(blocks=[("text", text)], **kw)

    @classmethod
    def tool_use(cls, name: str, input: dict, text: str | None = None, **kw) -> "Reply":
        blocks = ([("text", text)] if text else []) + [("tool_use", name, input)]
        return cls(blocks=blocks, stop_reason="tool_use", **kw)

    @classmethod
    def thinking(cls, thinking: str, text: str, **kw) -> "Reply":
        return cls(blocks=[("thinking", thinking), ("text", text)], **kw)

    @classmethod
    def error(cls, status: int, error_type: str, message: str = "scripted error", **kw) -> "Reply":
        return cls(status=status, error_type=error_type, error_message=message, **kw)


class HoldWhere:
    """A responder (`upstream.responder = HoldWhere("held")`) that keeps every request whose
    latest user text contains `word` waiting until `release()`, and answers the others at once."""

    def __init__(self, word: str, reply: Reply | None = None, *, limit: float = 60.0):
        self.word, self.reply, self.limit = word, reply or Reply.text("done"), limit
        self._released = threading.Event()

    def __call__(self, rec: Recorded) -> Reply:
        texts = rec.user_texts()
        if texts and self.word in texts[-1]:
            self._released.wait(self.limit)
        return self.reply

    def release(self) -> None:
        self._released.set()


def _chunks(text: str, size: int = 4):
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


class FakeUpstream:
    def __init__(self):
        self.requests: list[Recorded] = []
        self.script: list[Reply] = []
        self.default_headers: dict = {}
        self.responder = None           # optional: fn(Recorded) -> Reply
        self._lock = threading.Lock()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _record(self):
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                rec = Recorded(self.command, self.path, dict(self.headers), body)
                with upstream._lock:
                    upstream.requests.append(rec)
                return rec

            def do_GET(self):
                self._record()
                self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": "no"}})

            def do_POST(self):
                rec = self._record()
                path = self.path.split("?")[0]
                if path.endswith("/count_tokens"):
                    return self._json(200, {"input_tokens": 42})
                if path != "/v1/messages":
                    return self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": path}})
                reply = upstream._next_reply(rec)
                if reply.hang:
                    time.sleep(reply.hang)
                if reply.status != 200:
                    return self._json(reply.status, {"type": "error", "error": {
                        "type": reply.error_type, "message": reply.error_message}}, reply.headers)
                try:
                    if isinstance(rec.body, dict) and rec.body.get("stream") is True:
                        self._stream(rec, reply)
                    else:
                        self._json(200, upstream.message_for(rec, reply), reply.headers)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _json(self, status, obj, headers=None):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.send_header("request-id", "req_upstream")
                for k, v in {**upstream.default_headers, **(headers or {})}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, rec, reply):
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("request-id", "req_upstream")
                for k, v in {**upstream.default_headers, **reply.headers}.items():
                    self.send_header(k, v)
                self.send_header("connection", "close")
                self.end_headers()
                self.close_connection = True
                sent_chars = 0

                def ev(kind, data):
                    data = {"type": kind, **data}
                    self.wfile.write(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode())
                    self.wfile.flush()

                model = (rec.body or {}).get("model", "claude-sonnet-5")
                ev("message_start", {"message": {
                    "id": "msg_fake" + str(len(upstream.requests)), "type": "message", "role": "assistant",
                    "model": model, "content": [], "stop_reason": None, "stop_sequence": None,
                    "usage": {"input_tokens": reply.input_tokens, "output_tokens": 1,
                              "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}})
                for index, block in enumerate(reply.blocks):
                    kind = block[0]
                    if kind == "text":
                        ev("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})
                        for piece in _chunks(block[1]):
                            if reply.drop_after_chars is not None and sent_chars >= reply.drop_after_chars:
                                self.wfile.flush()
                                self.connection.shutdown(socket.SHUT_RDWR)
                                return
                            ev("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": piece}})
                            sent_chars += len(piece)
                            if reply.delay_per_chunk:
                                time.sleep(reply.delay_per_chunk)
                    elif kind == "thinking":
                        ev("content_block_start", {"index": index, "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
                        for piece in _chunks(block[1], 8):
                            ev("content_block_delta", {"index": index, "delta": {"type": "thinking_delta", "thinking": piece}})
                        ev("content_block_delta", {"index": index, "delta": {"type": "signature_delta", "signature": "sig_" + str(index)}})
                    elif kind == "tool_use":
                        ev("content_block_start", {"index": index, "content_block": {
                            # unique per conversation, as the real API's ids are
                            "type": "tool_use", "id": f"toolu_fake{len(upstream.requests)}_{index}",
                            "name": block[1], "input": {}}})
                        raw = json.dumps(block[2])
                        ev("content_block_delta", {"index": index, "delta": {"type": "input_json_delta", "partial_json": ""}})
                        for piece in _chunks(raw, 7):
                            ev("content_block_delta", {"index": index, "delta": {"type": "input_json_delta", "partial_json": piece}})
                    ev("content_block_stop", {"index": index})
                ev("message_delta", {"delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                                     "usage": {"output_tokens": reply.output_tokens}})
                ev("message_stop", {})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _next_reply(self, rec: Recorded) -> Reply:
        with self._lock:
            if self.script:
                return self.script.pop(0)
        if self.responder is not None:
            return self.responder(rec)
        texts = rec.user_texts()
        return Reply.text("You said: " + (texts[-1] if texts else ""))

    def message_for(self, rec: Recorded, reply: Reply) -> dict:
        """The whole Message the API returns when a request does not ask to stream."""
        content = []
        for index, block in enumerate(reply.blocks):
            if block[0] == "text":
                content.append({"type": "text", "text": block[1]})
            elif block[0] == "thinking":
                content.append({"type": "thinking", "thinking": block[1], "signature": f"sig_{index}"})
            elif block[0] == "tool_use":
                content.append({"type": "tool_use", "id": f"toolu_fake{index}", "name": block[1],
                                "input": block[2]})
        return {"id": "msg_fake" + str(len(self.requests)), "type": "message", "role": "assistant",
                "model": (rec.body or {}).get("model", "claude-sonnet-5"), "content": content,
                "stop_reason": reply.stop_reason, "stop_sequence": None,
                "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}

    def push(self, *replies: Reply) -> None:
        with self._lock:
            self.script.extend(replies)

    @property
    def message_requests(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST"
                    and r.path.split("?")[0] == "/v1/messages"]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.script.clear()
            self.default_headers = {}
            self.responder = None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
