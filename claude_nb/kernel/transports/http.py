"""The Jupyter server that runs the `server_ext` extension, over HTTP (the stdlib's http.client).

Streams are read synchronously in the caller's thread, so a kernel interrupt stops them;
`abort()` from another thread (a Stop button) shuts the socket, and the server sees the client
go and ends its CLI process.
"""
from __future__ import annotations

import http.client
import json
import socket
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import quote, urljoin, urlsplit

from ...bridge.events import MessageAccumulator
from ...protocol.sse import iter_sse
from ...protocol.threads import CREATE_ONLY_FIELDS, MESSAGE_THREADS_BETA, REPLAY_ERROR_CODES
from ...protocol.validation import SESSION_HEADER
from ...service.cache import CACHE_HEADER
from ..errors import ClaudeError, ConnectionFailed
from .base import Transport

READ_TIMEOUT = 600.0        # as the official SDK: the server pings on long waits
QUOTA_PATH = "v1/usage/quota"
CACHE_PATH = "claude_nb/cache"


def _query(params: dict | None) -> str:
    """Anthropic's query style: arrays as `key[]=a&key[]=b`; None values left out."""
    parts = []
    for key, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            parts += [f"{quote(key)}%5B%5D={quote(str(v), safe='')}" for v in value]
        else:
            if isinstance(value, bool):
                value = str(value).lower()
            parts.append(f"{quote(key)}={quote(str(value), safe='')}")
    return "&".join(parts)


def _normal_turns(turns: list) -> list:
    """Turns in one comparable form: string content as a text block, no nulls or cache hints."""
    out = []
    for turn in turns:
        content = turn.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        out.append({"role": turn.get("role"), "content": [
            {k: v for k, v in b.items() if v is not None and k != "cache_control"}
            if isinstance(b, dict) else b for b in blocks]})
    return out


@dataclass
class HeldChat:
    """Where a chat's message thread on the server stands."""
    previous_message_id: str      # the response the next turn continues from
    turns: list                   # the conversation the server holds (normalized)
    create_only: dict             # the `system` / `tools` the thread was created with


class HttpTransport(Transport):
    """The Jupyter server's Anthropic-compatible API, with the stdlib's http.client.

    A chat (`stream(..., session=key)`) is a message thread on the server: the first turn
    creates it with the whole history, each later one continues it with the new turn only, and
    the server answers it on the CLI process it kept from the turn before. Whenever the thread
    cannot be continued (a reset, another system prompt, an edited history, or the server has
    dropped it) the whole history goes again under a new thread, as the official SDK does.
    """

    kind = "server"

    def __init__(self, base_url: str, token: str | None, *, timeout: float = READ_TIMEOUT):
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.token = token or ""
        self.timeout = timeout
        self.chats: dict[str, HeldChat] = {}
        self._threads_supported = True      # False after an older server refused `thread`

    def describe(self) -> str:
        return f"Jupyter server at {self.base_url}"

    def _headers(self, accept: str) -> dict:
        from ..._version import __version__
        headers = {"accept": accept, "anthropic-version": "2023-06-01",
                   "user-agent": f"claude-nb/{__version__}"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        return headers

    def open(self, method: str, path: str, *, params: dict | None = None, body=None,
             accept: str = "application/json", headers: dict | None = None) -> http.client.HTTPResponse:
        """Send a request; return the response if 2xx, else raise its ClaudeError."""
        url = urljoin(self.base_url, path.lstrip("/")) if "://" not in path else path
        parts = urlsplit(url)
        target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        query = _query(params)
        if query:
            target += ("&" if "?" in target else "?") + query
        conn_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = conn_type(parts.hostname, parts.port, timeout=self.timeout)
        headers = {**self._headers(accept), **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["content-type"] = "application/json"
        try:
            conn.request(method, target, body=data, headers=headers)
            sock = conn.sock
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise ConnectionFailed(f"Could not reach the Jupyter server at {self.base_url}: {exc}") from None
        response.claude_nb_socket = sock      # for abort() from another thread
        if response.status >= 400:
            raw = response.read()
            conn.close()
            raise ClaudeError.from_response(response.status, raw, response.getheader("request-id"))
        return response

    def request(self, method: str, path: str, *, params: dict | None = None, body=None):
        """A JSON request; returns the decoded body."""
        response = self.open(method, path, params=params, body=body)
        try:
            raw = response.read()
        finally:
            response.close()
        try:
            return json.loads(raw) if raw.strip() else None
        except ValueError:
            raise ClaudeError(f"The server answered {path} with something that is not JSON.",
                              status=502, type="api_error") from None

    def lines(self, path: str) -> Iterator[str]:
        """A JSONL resource (batch results), line by line."""
        response = self.open("GET", path, accept="application/binary")
        try:
            for raw in response:
                line = raw.decode("utf-8").strip()
                if line:
                    yield line
        finally:
            response.close()

    def stream(self, body: dict, *, source: str = "client", session: str | None = None,
               cache: bool = False):
        if session and self._threads_supported and not cache:
            return self._chat_stream(body, session)
        headers = {SESSION_HEADER: session} if session else {}
        if cache:
            headers[CACHE_HEADER] = "use"
        response = self.open("POST", "v1/messages", body={**body, "stream": True},
                             accept="text/event-stream", headers=headers or None)
        request_id = response.getheader("request-id")
        hit = (response.getheader(CACHE_HEADER) or "") == "hit"
        return self._events(response, request_id, hit), request_id, self._aborter(response)

    @staticmethod
    def _aborter(response):
        def abort():
            try:        # wakes the reading thread with EOF; the server sees the client go
                response.claude_nb_socket.shutdown(socket.SHUT_RDWR)
            except (OSError, AttributeError):
                pass
        return abort

    def _chat_stream(self, body: dict, session: str):
        """One turn of a chat as a message thread: continue when the server holds everything
        before the new turn, else create (the whole history)."""
        held = self.chats.pop(session, None)     # a turn that fails leaves the chat to start over
        messages = list(body["messages"])
        create_only = {k: body[k] for k in CREATE_ONLY_FIELDS if k in body}
        headers = {"anthropic-beta": MESSAGE_THREADS_BETA}
        response = None
        if (held is not None and held.create_only == create_only
                and len(messages) > len(held.turns)
                and _normal_turns(messages[:len(held.turns)]) == held.turns):
            turn = {k: v for k, v in body.items() if k not in CREATE_ONLY_FIELDS}
            turn.update(stream=True, messages=messages[len(held.turns):],
                        thread={"type": "continue", "previous_message_id": held.previous_message_id})
            try:
                response = self.open("POST", "v1/messages", body=turn, accept="text/event-stream",
                                     headers=headers)
            except ClaudeError as exc:
                if exc.error_code not in REPLAY_ERROR_CODES:
                    raise
        threaded = True
        if response is None and held is not None:
            self._release_thread(held)      # its kept CLI process would otherwise wait for nothing
        if response is None:
            try:
                response = self.open("POST", "v1/messages", accept="text/event-stream",
                                     body={**body, "stream": True, "thread": {"type": "create"}},
                                     headers=headers)
            except ClaudeError as exc:
                if exc.error_code == "thread_unsupported_request":
                    threaded = False
                elif exc.status == 400 and exc.message.startswith("thread:"):
                    self._threads_supported = False    # a server before message threads
                else:
                    raise
            if response is None:
                return self.stream(body, session=session if not self._threads_supported else None)
        request_id = response.getheader("request-id")
        events = self._events(response, request_id)
        if threaded:
            events = self._holding(events, session, messages, create_only)
        return events, request_id, self._aborter(response)

    def _holding(self, events, session: str, messages: list, create_only: dict):
        """Pass the events through; once the answer is whole, note where the thread stands."""
        answer = MessageAccumulator()
        for event in events:
            if not str(event.get("type", "")).startswith("claude_nb."):
                answer.add(event)
            yield event
        message = answer.message
        if message is not None and message.get("stop_reason") is not None and message.get("id"):
            self.chats[session] = HeldChat(
                message["id"], _normal_turns(messages + [{"role": "assistant",
                                                          "content": message["content"]}]),
                create_only)

    def cli_status(self) -> dict:
        return self.request("GET", "health")["cli"]

    def _release_thread(self, held: HeldChat) -> None:
        """Drop a chat's thread on the server, and the CLI process kept for it (best effort:
        one already gone is a 404)."""
        try:
            self.request("DELETE", "claude_nb/threads/" + quote(held.previous_message_id, safe=""))
        except ClaudeError:
            pass

    def end_session(self, session: str) -> None:
        held = self.chats.pop(session, None)
        if held is not None:       # the thread and the CLI process kept for it
            self._release_thread(held)
        elif not self._threads_supported:
            self.request("DELETE", "claude_nb/sessions/" + quote(session, safe=""))

    def models(self) -> list[dict]:
        out, after = [], None
        while True:
            page = self.request("GET", "v1/models", params={"limit": 1000, "after_id": after})
            out += page.get("data") or []
            if not page.get("has_more") or not page.get("last_id"):
                return out
            after = page["last_id"]

    def batches(self) -> "HttpBatches":
        return HttpBatches(self)

    def result_cache(self) -> "HttpResultCache":
        return HttpResultCache(self)

    def report(self, path: str, params: dict) -> dict:
        return self.request("GET", path, params=params)

    def quota(self) -> dict:
        return self.request("GET", QUOTA_PATH)

    def sdk_endpoint(self) -> tuple[str, str]:
        return self.base_url.rstrip("/"), self.token or "none"

    def _events(self, response, request_id, cache_hit: bool = False):
        if cache_hit:
            yield {"type": "claude_nb.cache", "hit": True}
        try:
            lines = (raw.decode("utf-8") for raw in response)
            for name, data in iter_sse(lines):
                if not data:
                    continue
                try:
                    event = json.loads(data)
                except ValueError:
                    raise ClaudeError(f"The server sent an unreadable event: {data[:200]!r}",
                                      status=502, type="api_error", request_id=request_id) from None
                if name == "error" or event.get("type") == "error":
                    err = event.get("error") or {}
                    raise ClaudeError(str(err.get("message") or "error"), type=err.get("type"),
                                      status=200, request_id=request_id)
                if event.get("type") == "ping":
                    continue
                yield event
        except (OSError, http.client.HTTPException) as exc:
            raise ConnectionFailed(f"The connection to {self.base_url} broke mid-answer: {exc}") from None
        finally:
            response.close()


class HttpBatches:
    """The server's Message Batches API."""

    def __init__(self, transport: "HttpTransport"):
        self.transport = transport

    def create(self, requests: list[dict], *, cache: bool = False) -> dict:
        response = self.transport.open("POST", "v1/messages/batches", body={"requests": requests},
                                       headers={CACHE_HEADER: "use" if cache else "off"})
        try:
            return json.loads(response.read())
        finally:
            response.close()

    def retrieve(self, batch_id: str) -> dict:
        return self.transport.request("GET", f"v1/messages/batches/{batch_id}")

    def cancel(self, batch_id: str) -> dict:
        return self.transport.request("POST", f"v1/messages/batches/{batch_id}/cancel")

    def progress(self, batch_id: str, batch: dict) -> int | None:
        # the API's own counts stay in `processing` until the batch ends
        return int(self.transport.request("GET", f"claude_nb/batches/{batch_id}/progress")["answered"])

    def results(self, batch: dict) -> Iterator[dict]:
        url = batch.get("results_url") or f"v1/messages/batches/{batch['id']}/results"
        for line in self.transport.lines(url):
            yield json.loads(line)

    def results_so_far(self, batch_id: str) -> Iterator[dict]:
        for line in self.transport.lines(f"claude_nb/batches/{batch_id}/results"):
            yield json.loads(line)


class HttpResultCache:
    """The server's result cache (/claude_nb/cache)."""

    def __init__(self, transport: "HttpTransport"):
        self.transport = transport

    def clear(self) -> int:
        return int(self.transport.request("DELETE", CACHE_PATH)["deleted"])

    def info(self) -> dict:
        return self.transport.request("GET", CACHE_PATH)

    def lookup(self, requests: list[dict]) -> tuple[list[bool], int]:
        body = self.transport.request("POST", CACHE_PATH + "/lookup", body={"requests": requests})
        return [bool(c) for c in body["cached"]], int(body.get("concurrency") or 1)
