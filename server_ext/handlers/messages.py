"""POST /v1/messages (JSON and SSE), POST /v1/messages/count_tokens, and the end of a chat
session (DELETE /claude_nb/sessions/<key>)."""
from __future__ import annotations

import asyncio

from jupyter_server.auth.decorator import authorized

from claude_nb.protocol.models import resolve_model
from claude_nb.protocol.tokens import count_request_tokens
from claude_nb.protocol.validation import (SESSION_HEADER, ignored_fields, parse_json_body,
                                           parse_session_key, validate_count_request,
                                           validate_message_request)

from .base import ApiHandler, api_method


class MessagesHandler(ApiHandler):
    @api_method
    @authorized
    async def post(self):
        body = validate_message_request(parse_json_body(self.request.body))
        resolve_model(body["model"])
        session = parse_session_key(self.request.headers.get(SESSION_HEADER))
        ignored = ignored_fields(body)
        if ignored:
            self.set_header("claude-nb-ignored", ",".join(ignored))
        if body.get("stream"):
            events = self.bridge.stream(body, source="api", request_id=self.request_id,
                                        session=session)
            await self.send_events(self.app.metrics.watch_first_token(
                events, "/v1/messages", self.request.request_time))
        else:
            self.write_json(await self.bridge.create(body, source="api", request_id=self.request_id,
                                                     session=session))


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
