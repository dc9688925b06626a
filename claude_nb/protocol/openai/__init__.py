"""OpenAI Chat Completions over the same Messages machinery: pure translations both ways.

`request.translate_chat_request` turns an OpenAI chat body into a validated Anthropic Messages
body; `response` turns the Anthropic answer (whole, or as stream events) into OpenAI's shapes;
`errors` gives OpenAI's error body for any `AnthropicError`. Running a request through the
bridge is the handler's business (`server_ext/handlers/openai.py`).
"""
from .errors import ChatRequestError, openai_error
from .request import (IGNORED_FIELDS, JSON_OBJECT_INSTRUCTION, KNOWN_FIELDS, MAX_STOP_SEQUENCES, ChatRequest,
                      translate_chat_request)
from .response import (DONE, FINISH_REASONS, ChatChunkTranslator, completion_from_message, completion_id,
                       encode_chunk, finish_reason, usage_from_anthropic)

__all__ = ["ChatRequestError", "openai_error", "IGNORED_FIELDS", "JSON_OBJECT_INSTRUCTION", "KNOWN_FIELDS",
           "MAX_STOP_SEQUENCES", "ChatRequest", "translate_chat_request", "DONE", "FINISH_REASONS",
           "ChatChunkTranslator", "completion_from_message", "completion_id", "encode_chunk",
           "finish_reason", "usage_from_anthropic"]
