"""POST /v1/chat/completions: OpenAI's chat API over the same bridge, pool and usage record.

The translation is `claude_nb.protocol.openai` (pure); `chat_chunks` and `chat_completion` run
it through the bridge (the tests use them too), and the handler moves bytes: JSON, or data-only
SSE ending with `data: [DONE]`, and every error in OpenAI's shape
`{"error": {"message", "type", "param", "code"}}`.
"""
from __future__ import annotations

from typing import AsyncIterator

from jupyter_server.auth.decorator import authorized

from claude_nb.protocol.openai import (DONE, ChatChunkTranslator, ChatRequest, completion_from_message,
                                       encode_chunk, openai_error, translate_chat_request)
from claude_nb.protocol.validation import parse_json_body

from .base import ApiHandler, api_method

ROUTE = "/v1/chat/completions"
RUN_SOURCE = "openai"
_END = object()         # marks the end of a successful stream: encoded as `data: [DONE]`


async def chat_chunks(bridge, chat: ChatRequest, **stream_kwargs) -> AsyncIterator[dict]:
    """The chunks of one streamed chat completion, run through `bridge.stream`."""
    translator = ChatChunkTranslator(created=chat.created, include_usage=chat.include_usage,
                                     model=chat.model)
    events = bridge.stream(chat.messages_body, **stream_kwargs)
    try:
        async for event in events:
            for chunk in translator.feed(event):
                yield chunk
    finally:
        await events.aclose()      # a consumer that stops early ends the CLI run now


async def chat_completion(bridge, chat: ChatRequest, **create_kwargs) -> dict:
    """One whole chat completion, run through `bridge.create`."""
    message = await bridge.create(chat.messages_body, **create_kwargs)
    return completion_from_message(message, created=chat.created)


class ChatCompletionsHandler(ApiHandler):
    # x-request-id: where the openai SDK looks for it (`completion._request_id`)
    REQUEST_ID_HEADERS = ("request-id", "x-request-id")

    @api_method
    @authorized
    async def post(self):
        chat = translate_chat_request(parse_json_body(self.request.body))
        if chat.ignored:
            self.set_header("claude-nb-ignored", ",".join(chat.ignored))
        kwargs = {"source": RUN_SOURCE, "request_id": self.request_id}
        if not chat.stream:
            self.write_json(await chat_completion(self.bridge, chat, **kwargs))
            return

        async def chunks():
            source = chat_chunks(self.bridge, chat, **kwargs)
            first = True
            try:
                async for chunk in source:
                    if first and _has_content(chunk):
                        self.app.metrics.observe_first_token(ROUTE, chunk.get("model", ""),
                                                             self.request.request_time())
                        first = False
                    yield chunk
            finally:
                await source.aclose()
            yield _END

        await self.send_events(chunks(), encode=lambda c: DONE if c is _END else encode_chunk(c),
                               on_error=lambda exc: encode_chunk(openai_error(exc)[1]))

    def error_body(self, error):
        return openai_error(error)


def _has_content(chunk: dict) -> bool:
    choices = chunk.get("choices") or []
    delta = choices[0].get("delta") or {} if choices else {}
    return bool(delta.get("content") or delta.get("tool_calls") or delta.get("reasoning_content"))
