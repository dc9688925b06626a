"""Helpers for the reliability suite: request bodies, raw HTTP for what client libraries
refuse to send (oversized or undecodable headers), and checks of Anthropic's error shapes."""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

BODY = {"model": "sonnet", "max_tokens": 64, "messages": [{"role": "user", "content": "ping"}]}


def body(prompt: str = "ping", **extra) -> dict:
    return {**BODY, "messages": [{"role": "user", "content": prompt}], **extra}


@dataclass
class RawResponse:
    status: int | None          # None: the server closed the connection without a status line
    headers: dict
    body: bytes
    cookies: dict = field(default_factory=dict)     # from every Set-Cookie header

    def json(self):
        return json.loads(self.body)


async def raw_request(port: int, method: str, path: str, headers: dict | None = None,
                      body: bytes = b"", *, raw_head: bytes | None = None,
                      timeout: float = 60.0) -> RawResponse:
    """One HTTP/1.1 request over a plain socket, for what HTTP client libraries refuse to send
    (oversized or undecodable headers). Reads to EOF."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if raw_head is None:
            given = {k.lower() if isinstance(k, str) else k.decode("latin-1").lower()
                     for k in (headers or {})}
            lines = [f"{method} {path} HTTP/1.1".encode(), b"Connection: close"]
            if "host" not in given:
                lines.append(f"Host: 127.0.0.1:{port}".encode())
            if "content-length" not in given:
                lines.append(f"Content-Length: {len(body)}".encode())
            for key, value in (headers or {}).items():
                k = key.encode("latin-1") if isinstance(key, str) else key
                v = value.encode("latin-1") if isinstance(value, str) else value
                lines.append(k + b": " + v)
            raw_head = b"\r\n".join(lines) + b"\r\n\r\n"
        data = b""
        try:
            writer.write(raw_head + body)
            await writer.drain()
        except (ConnectionResetError, BrokenPipeError):
            pass        # refused while sending (oversized): read whatever answer came first
        try:
            data = await asyncio.wait_for(reader.read(), timeout)
        except ConnectionResetError:
            pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
    return parse_response(data)


def parse_response(data: bytes) -> RawResponse:
    if not data:
        return RawResponse(None, {}, b"")
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers, cookies = {}, {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        key, value = k.decode("latin-1").strip().lower(), v.decode("latin-1").strip()
        headers[key] = value
        if key == "set-cookie":
            name, _, rest_of_cookie = value.partition("=")
            cookies[name] = rest_of_cookie.split(";")[0]
    if headers.get("transfer-encoding") == "chunked":
        rest = _unchunk(rest)
    return RawResponse(status, headers, rest, cookies)


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2:]
    return out


def assert_envelope(payload, status: int | None = None, error_type: str | None = None) -> dict:
    """An Anthropic error envelope: {"type":"error","error":{"type","message"},"request_id"}."""
    assert isinstance(payload, dict), payload
    assert payload.get("type") == "error", payload
    error = payload.get("error")
    assert isinstance(error, dict) and isinstance(error.get("type"), str), payload
    assert isinstance(error.get("message"), str) and error["message"], payload
    assert str(payload.get("request_id", "")).startswith("req_"), payload
    if error_type is not None:
        assert error["type"] == error_type, payload
    return error


def sse_events(raw: bytes) -> list[tuple[str, dict]]:
    """(event name, data) pairs of an SSE body."""
    out = []
    for chunk in raw.decode("utf-8").split("\n\n"):
        name, data = None, []
        for line in chunk.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if name or data:
            out.append((name, json.loads("\n".join(data)) if data else None))
    return out


def cli_pids_now(bridge) -> list[int]:
    return [p.pid for p in list(bridge.live) if p.pid]


def is_openai_route(route: str) -> bool:
    """Routes that answer in OpenAI's shapes (errors included)."""
    return route.lstrip("/").split("?")[0].startswith("v1/chat/")


def assert_openai_error(payload, error_type: str | None = None) -> dict:
    """OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""
    assert isinstance(payload, dict) and isinstance(payload.get("error"), dict), payload
    error = payload["error"]
    assert isinstance(error.get("message"), str) and error["message"], payload
    assert isinstance(error.get("type"), str), payload
    assert "param" in error and "code" in error, payload
    if error_type is not None:
        assert error["type"] == error_type, payload
    return error


def assert_error_for(route: str, payload, error_type: str | None = None) -> dict:
    """The error shape the route's API uses: OpenAI's on its routes, Anthropic's elsewhere."""
    if is_openai_route(route):
        return assert_openai_error(payload, error_type)
    return assert_envelope(payload, error_type=error_type)
