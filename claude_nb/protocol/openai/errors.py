"""Errors on the OpenAI route: `ChatRequestError` names the request field at fault, and
`openai_error(exc)` gives any `AnthropicError`'s status and the
`{"error": {"message", "type", "param", "code"}}` body OpenAI clients parse."""
from __future__ import annotations

from ..errors import AnthropicError, InvalidRequest


class ChatRequestError(InvalidRequest):
    """A 400 that names the OpenAI request field at fault (OpenAI's `param`)."""

    def __init__(self, param: str | None, message: str, *, code: str | None = None,
                 status: int = 400):
        super().__init__(message if param is None else f"{param}: {message}", status=status,
                         should_retry=False)
        self.param = param
        self.code = code


# Anthropic status -> (status, OpenAI error type, default code)
_OPENAI_ERRORS = {
    400: (400, "invalid_request_error", None),
    401: (401, "authentication_error", "invalid_api_key"),
    402: (402, "insufficient_quota", "insufficient_quota"),
    403: (403, "permission_error", None),
    404: (404, "invalid_request_error", "not_found"),
    405: (405, "invalid_request_error", None),
    409: (409, "invalid_request_error", "conflict"),
    413: (413, "invalid_request_error", "request_too_large"),
    429: (429, "rate_limit_error", "rate_limit_exceeded"),
    500: (500, "server_error", None),
    503: (503, "server_error", "service_unavailable"),
    504: (504, "server_error", "timeout"),
    529: (503, "server_error", "overloaded"),       # OpenAI clients know 503, not 529
}


def openai_error(exc: AnthropicError) -> tuple[int, dict]:
    """The HTTP status and OpenAI-shaped body for an error on the OpenAI route."""
    status, kind, code = _OPENAI_ERRORS.get(
        exc.status, (exc.status, "invalid_request_error" if exc.status < 500 else "server_error", None))
    code = getattr(exc, "code", None) or exc.error_code or code
    return status, {"error": {"message": exc.message, "type": kind,
                              "param": getattr(exc, "param", None), "code": code}}
