"""The kernel side's one error: every failed request, whatever the transport."""
from __future__ import annotations

import json

from ..protocol.errors import AnthropicError


class ClaudeError(AnthropicError):
    """A failed request, with the Anthropic error `type`, `message`, HTTP `status` and `request_id`."""

    def __init__(self, message: str, *, status: int | None = None, type: str | None = None,
                 request_id: str | None = None, **kw):
        super().__init__(message, status=status, type=type, **kw)
        self.request_id = request_id

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"

    @classmethod
    def wrap(cls, exc: AnthropicError, request_id: str | None = None) -> "ClaudeError":
        if isinstance(exc, ClaudeError):
            return exc
        return cls(exc.message, status=exc.status, type=exc.type, request_id=request_id,
                   should_retry=exc.should_retry, error_code=exc.error_code)

    @classmethod
    def from_response(cls, status: int, raw: bytes, request_id: str | None) -> "ClaudeError":
        """From an HTTP error body: Anthropic's envelope, Jupyter's {"message"} or plain text."""
        text = raw.decode("utf-8", "replace").strip()
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            err = body["error"]
            return cls(str(err.get("message") or text), status=status, type=err.get("type"),
                       request_id=request_id or body.get("request_id"))
        if isinstance(body, dict) and body.get("message"):
            text = str(body["message"])
        if status == 404:
            text = ("The Jupyter server answered 404: is the claude-nb extension enabled there? "
                    "(`jupyter server extension list`)" + (f" [{text}]" if text else ""))
        return cls(text or f"HTTP {status}", status=status, request_id=request_id)


class ConnectionFailed(ClaudeError):
    def __init__(self, message: str):
        super().__init__(message, status=503, type="api_connection_error")
