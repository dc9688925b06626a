"""The Jupyter server that runs the `server_ext` extension, over HTTP (the stdlib's http.client).

Streams are read synchronously in the caller's thread, so a kernel interrupt stops them;
`abort()` from another thread (a Stop button) shuts the socket, and the server sees the client
go and ends its CLI process.
"""
from __future__ import annotations

import http.client
import json
import socket
from typing import Iterator
from urllib.parse import quote, urljoin, urlsplit

from ...protocol.sse import iter_sse
from ...protocol.validation import SESSION_HEADER
from ..errors import ClaudeError, ConnectionFailed
from .base import Transport

READ_TIMEOUT = 600.0        # as the official SDK: the server pings on long waits
QUOTA_PATH = "v1/usage/quota"


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


class HttpTransport(Transport):
    """The Jupyter server's Anthropic-compatible API, with the stdlib's http.client."""

    kind = "server"

    def __init__(self, base_url: str, token: str | None, *, timeout: float = READ_TIMEOUT):
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.token = token or ""
        self.timeout = timeout

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

    def stream(self, body: dict, *, source: str = "client", session: str | None = None):
        response = self.open("POST", "v1/messages", body={**body, "stream": True},
                             accept="text/event-stream",
                             headers={SESSION_HEADER: session} if session else None)
        request_id = response.getheader("request-id")

        def abort():
            try:        # wakes the reading thread with EOF; the server sees the client go
                response.claude_nb_socket.shutdown(socket.SHUT_RDWR)
            except (OSError, AttributeError):
                pass
        return self._events(response, request_id), request_id, abort

    def cli_status(self) -> dict:
        return self.request("GET", "health")["cli"]

    def end_session(self, session: str) -> None:
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

    def report(self, path: str, params: dict) -> dict:
        return self.request("GET", path, params=params)

    def quota(self) -> dict:
        return self.request("GET", QUOTA_PATH)

    def sdk_endpoint(self) -> tuple[str, str]:
        return self.base_url.rstrip("/"), self.token or "none"

    def _events(self, response, request_id):
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

    def create(self, requests: list[dict]) -> dict:
        return self.transport.request("POST", "v1/messages/batches", body={"requests": requests})

    def retrieve(self, batch_id: str) -> dict:
        return self.transport.request("GET", f"v1/messages/batches/{batch_id}")

    def cancel(self, batch_id: str) -> dict:
        return self.transport.request("POST", f"v1/messages/batches/{batch_id}/cancel")

    def progress(self, batch_id: str, batch: dict) -> int | None:
        return None      # the API keeps its counts at 0 until the batch ends

    def results(self, batch: dict) -> Iterator[dict]:
        url = batch.get("results_url") or f"v1/messages/batches/{batch['id']}/results"
        for line in self.transport.lines(url):
            yield json.loads(line)
