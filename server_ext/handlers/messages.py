"""POST /v1/messages (JSON and SSE, message threads included), POST /v1/messages/count_tokens,
and the end of a chat session or thread (DELETE /claude_nb/sessions/<key>, /claude_nb/threads/<id>)."""
from __future__ import annotations

import asyncio

from jupyter_server.auth.decorator import authorized

from claude_nb.protocol.models import resolve_model
from claude_nb.protocol.threads import parse_thread_param
from claude_nb.protocol.tokens import count_request_tokens
from claude_nb.protocol.validation import (SESSION_HEADER, ignored_fields, parse_json_body,
                                           parse_session_key, validate_count_request,
                                           validate_message_request)
from claude_nb.service.cache import CACHE_HEADER, parse_cache_header

from .base import ApiHandler, api_method


class MessagesHandler(ApiHandler):
    @api_method
    @authorized
    async def post(self):
        body = parse_json_body(self.request.body)
        thread = parse_thread_param(body.pop("thread", None))
        if thread is not None:
            return await self._threaded(body, thread)
        body = validate_message_request(body)
        resolve_model(body["model"])
        session = parse_session_key(self.request.headers.get(SESSION_HEADER))
        cache = parse_cache_header(self.request.headers.get(CACHE_HEADER))
        ignored = ignored_fields(body)
        if ignored:
            self.set_header("claude-nb-ignored", ",".join(ignored))
        if body.get("stream"):
            events = self.bridge.stream(body, source="api", request_id=self.request_id,
                                        session=session, cache=cache)
            await self.send_events(self.app.metrics.watch_first_token(
                self._cache_header(events), "/v1/messages", self.request.request_time))
        else:
            info: dict = {}
            message = await self.bridge.create(body, source="api", request_id=self.request_id,
                                               session=session, cache=cache, info=info)
            if cache:
                self.set_header(CACHE_HEADER, "hit" if info.get("cached") else "miss")
            self.write_json(message)

    async def _cache_header(self, events):
        """The result cache's verdict comes first, before the 200 is committed: as a header."""
        try:
            async for event in events:
                if event.get("type") == "claude_nb.cache":
                    self.set_header(CACHE_HEADER, "hit" if event.get("hit") else "miss")
                yield event
        finally:
            await events.aclose()

    async def _threaded(self, body: dict, thread):
        """The message-threads beta: the thread registry validates, runs and holds the turn."""
        threads = self.service.threads
        ignored = ignored_fields(body)
        if ignored:
            self.set_header("claude-nb-ignored", ",".join(ignored))
        if body.get("stream"):
            events = threads.stream(body, thread, source="api", request_id=self.request_id)
            await self.send_events(self.app.metrics.watch_first_token(
                events, "/v1/messages", self.request.request_time))
        else:
            self.write_json(await threads.create(body, thread, source="api",
                                                 request_id=self.request_id))


class CountTokensHandler(ApiHandler):
    @api_method
    @authorized
    async def post(self):
        body = validate_count_request(parse_json_body(self.request.body))
        resolve_model(body["model"])
        # Counting a large request takes seconds of CPU: off the loop that serves the notebook UI.
        count = await asyncio.get_running_loop().run_in_executor(None, count_request_tokens, body)
        self.write_json({"input_tokens": count})


class SessionHandler(ApiHandler):
    @api_method
    @authorized
    async def delete(self, session: str):
        key = parse_session_key(session, "session")
        await self.bridge.end_session(key)
        self.write_json({"id": key, "type": "session_deleted"})


class ThreadHandler(ApiHandler):
    """Our extension: drop a message thread (and its kept CLI process) when a chat is reset.
    Any response id of the thread names it."""

    @api_method
    @authorized
    async def delete(self, message_id: str):
        await self.service.threads.end(message_id)
        self.write_json({"id": message_id, "type": "thread_deleted"})
