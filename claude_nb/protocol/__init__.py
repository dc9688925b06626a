"""Anthropic protocol shapes: errors, validation, SSE, the model catalogue, token counts."""
from .errors import AnthropicError, InvalidRequest, NotFound, error_for_status, new_request_id  # noqa: F401
