"""Anthropic-style errors: one exception type that knows its status and envelope.

Everything below the handlers raises these; the handlers' base class and the SSE writer turn
them into `{"type":"error","error":{"type","message"},"request_id"}` with the right status.
"""
from __future__ import annotations

import secrets

# status -> Anthropic error type (https://platform.claude.com/docs/en/api/errors)
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


class AnthropicError(Exception):
    """An error the client should see, with its HTTP status and Anthropic error type."""

    status = 500

    def __init__(self, message: str, *, status: int | None = None, type: str | None = None,
                 should_retry: bool | None = None, error_code: str | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status
        self.message = message
        self.type = type or ERROR_TYPES.get(self.status) or (
            "invalid_request_error" if self.status < 500 else "api_error")
        # None: let the client decide by status; False where a retry cannot help.
        self.should_retry = should_retry
        self.error_code = error_code

    def envelope(self, request_id: str | None = None) -> dict:
        error: dict = {"type": self.type, "message": self.message}
        if self.error_code:
            error["details"] = {"error_code": self.error_code}
        return {"type": "error", "error": error, "request_id": request_id}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.type!r}, {self.message!r})"


class InvalidRequest(AnthropicError):
    status = 400


class AuthenticationFailed(AnthropicError):
    status = 401


class PermissionDenied(AnthropicError):
    status = 403


class NotFound(AnthropicError):
    status = 404


class RequestTooLarge(AnthropicError):
    status = 413


class RateLimited(AnthropicError):
    status = 429


class ApiFailure(AnthropicError):
    status = 500


class Overloaded(AnthropicError):
    status = 529


class GatewayTimeout(AnthropicError):
    status = 504


def error_for_status(status: int | None, message: str, **kw) -> AnthropicError:
    """The error a client should get for an upstream status the CLI reported."""
    if not status or status < 400:
        return ApiFailure(message, **kw)
    return AnthropicError(message, status=status, **kw)
