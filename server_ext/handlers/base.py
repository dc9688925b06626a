"""One base handler for every /v1 route: token auth in any of the SDKs' spellings, a
request id, and every failure turned into Anthropic's error envelope.

Handlers that differ say so through three hooks, never by copying a method:
`allows_anonymous()` (answer without the token), `error_body(error)` (another API's error
shape) and `REQUEST_ID_HEADERS` (where that API's clients look for the request id)."""
from __future__ import annotations

import asyncio
import functools
import json
import traceback

from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web
from tornado.iostream import StreamClosedError

from claude_nb.protocol.errors import (AnthropicError, AuthenticationFailed, PermissionDenied,
                                       new_request_id)
from claude_nb.protocol.sse import PING, encode_event

AUTH_RESOURCE = "claude_nb"
PING_EVERY = 10.0          # seconds of silence before a `ping` keeps a stream alive
INTERNAL_EVENT_PREFIX = "claude_nb."


def _unauthenticated() -> AuthenticationFailed:
    return AuthenticationFailed(
        "invalid x-api-key: use this Jupyter server's token as the API key "
        "(x-api-key, Authorization: Bearer, or Authorization: token)", should_retry=False)


class ClientGone(Exception):
    """The HTTP client disconnected."""


class ApiHandler(ExtensionHandlerMixin, APIHandler):
    auth_resource = AUTH_RESOURCE
    REQUEST_ID_HEADERS: tuple[str, ...] = ("request-id",)

    # -- set-up ---------------------------------------------------------------------------
    @property
    def app(self):
        return self.extensionapp

    @property
    def service(self):
        """The extension's `Service`: the one way a handler reaches the bridge, store, runner."""
        return self.extensionapp.service

    @property
    def bridge(self):
        return self.service.bridge

    def allows_anonymous(self) -> bool:
        """Hook: True lets a request without a valid token through, with `self.anonymous` set."""
        return False

    async def prepare(self):
        self._set_request_id(new_request_id())
        self._task = asyncio.current_task()
        self._client_gone = False
        self.anonymous = False
        try:
            await self._authenticate()
        except Exception:
            if not self.allows_anonymous():
                raise
            self.current_user = None
            self.anonymous = True

    def _set_request_id(self, request_id: str) -> None:
        self.request_id = request_id
        for name in self.REQUEST_ID_HEADERS:
            self.set_header(name, request_id)

    async def _authenticate(self):
        # The SDKs send the key as `x-api-key` (0.x/1.x) or `Authorization: Bearer` (2.x);
        # Jupyter reads `Authorization: token|bearer`. Hand x-api-key over in that form.
        api_key = self.request.headers.get("x-api-key")
        if api_key and not self.request.headers.get("Authorization", "").strip():
            self.request.headers["Authorization"] = "token " + api_key
        try:
            # APIHandler.prepare without the login redirect: an API answers 401, not a page.
            await JupyterHandler.prepare(self, _redirect_to_login=False)
        except web.HTTPError:
            if not self.check_host():
                # Jupyter's DNS-rebinding guard, not a bad key: say so.
                raise PermissionDenied(
                    f"Host {self.request.host!r} is not allowed: use 127.0.0.1 or localhost, or "
                    "set c.ServerApp.allow_remote_access / local_hostnames.", should_retry=False) from None
            if not getattr(self, "_jupyter_current_user", None):
                raise _unauthenticated() from None
            raise
        if not self.current_user:
            raise _unauthenticated()
        if not self.check_origin():
            raise web.HTTPError(404)

    def check_xsrf_cookie(self):
        # Unknown callers get the 401 below instead; token-authenticated calls are exempt
        # (Jupyter's rule); cookie-authenticated POSTs stay XSRF-checked.
        if not getattr(self, "_jupyter_current_user", None):
            return None
        return super().check_xsrf_cookie()

    def on_connection_close(self):
        self._client_gone = True
        task = getattr(self, "_task", None)
        if task is not None and not task.done():
            task.cancel()      # ends the CLI process behind this request at once

    # -- responses ------------------------------------------------------------------------
    def write_json(self, obj, status: int = 200):
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(obj, ensure_ascii=False))

    def error_from(self, exc, status_code: int) -> AnthropicError:
        """Any failure as the AnthropicError the client sees (logged when it is our fault).
        Handlers that answer in another API's error shape (OpenAI) start from this too."""
        if isinstance(exc, AnthropicError):
            return exc
        if isinstance(exc, web.HTTPError):
            # Tornado keeps the format arguments in `args` (and escapes `%` when there are none)
            message = (exc.log_message % exc.args if exc.log_message
                       else self._reason or "request failed")
            return AnthropicError(message, status=status_code)
        if exc is not None:
            self.log.error("claude_nb: %s", "".join(traceback.format_exception(exc)))
        return AnthropicError(f"Internal server error (request {getattr(self, 'request_id', '?')}); "
                              "see the Jupyter server log.", status=500)

    def error_body(self, error: AnthropicError) -> tuple[int, dict]:
        """Hook: the status and JSON body the client gets for `error` (Anthropic's envelope)."""
        return error.status, error.envelope(self.request_id)

    def write_error(self, status_code: int, **kwargs):
        # refused before prepare() ran (a body or path Tornado could not decode, a 405): no id yet
        request_id = getattr(self, "request_id", None) or new_request_id()
        error = self.error_from(kwargs.get("exc_info", (None, None, None))[1], status_code)
        self.clear_header("Content-Type")
        self._set_request_id(request_id)
        status, body = self.error_body(error)
        self.set_status(status if 400 <= status < 600 else 500)
        self.set_header("Content-Type", "application/json")
        if error.should_retry is not None:
            self.set_header("x-should-retry", "true" if error.should_retry else "false")
        self.finish(json.dumps(body, ensure_ascii=False))

    def log_exception(self, typ, value, tb):
        if isinstance(value, AnthropicError):
            return          # answered to the client; not a server fault
        super().log_exception(typ, value, tb)

    # -- server-sent events ---------------------------------------------------------------
    async def send_events(self, events, encode=encode_event, on_error=None):
        """Stream events as SSE. The 200 is only committed with the first event, so an error
        before it is a normal HTTP error (which the SDKs retry); after it, an `event: error`.
        A `ping` goes out after PING_EVERY seconds of silence: one timer task for the stream,
        not a task and a wait per event (the streaming path does no avoidable work per event)."""
        iterator = events.__aiter__()
        loop = asyncio.get_running_loop()
        stream = {"started": False, "last": loop.time()}
        pinger = asyncio.ensure_future(self._ping_while_silent(stream, asyncio.current_task()))
        try:
            while True:
                try:
                    event = await iterator.__anext__()
                except StopAsyncIteration:
                    break
                # Internal events (final usage) stay in-process; other items (a writer's own
                # end marker) are the encoder's to write.
                if isinstance(event, dict) and str(event.get("type", "")).startswith(INTERNAL_EVENT_PREFIX):
                    continue
                if not stream["started"]:
                    self._start_sse()
                    stream["started"] = True
                stream["last"] = loop.time()
                await self._write(encode(event))
        except AnthropicError as exc:
            if not stream["started"]:
                raise
            self.log.info("claude_nb: stream %s ended with %r", self.request_id, exc)
            payload = on_error(exc) if on_error else encode_event(
                {"type": "error", "error": exc.envelope(self.request_id)["error"],
                 "request_id": self.request_id})
            try:
                await self._write(payload)
            except ClientGone:
                pass
        except ClientGone:
            pass
        finally:
            pinger.cancel()
            await _close(iterator)       # ends the CLI process behind this stream
        if not self._finished and not self._client_gone:
            self.finish()

    async def _ping_while_silent(self, stream: dict, consumer: asyncio.Task | None):
        """Write a `ping` whenever nothing was written for PING_EVERY seconds (committing the
        200 if nothing was yet). A client found gone ends the stream (and its CLI) at once."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                await asyncio.sleep(max(0.0, stream["last"] + PING_EVERY - loop.time()))
                if loop.time() - stream["last"] < PING_EVERY:
                    continue
                if not stream["started"]:
                    self._start_sse()
                    stream["started"] = True
                stream["last"] = loop.time()
                await self._write(PING)
        except ClientGone:
            if consumer is not None:
                consumer.cancel()        # the model is silent: nothing else would notice

    def _start_sse(self):
        self.set_status(200)
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")

    async def _write(self, data: bytes):
        if self._client_gone:
            raise ClientGone()
        try:
            self.write(data)
            await self.flush()
        except StreamClosedError:
            self._client_gone = True
            raise ClientGone() from None


def api_method(method):
    """Wrap a handler method: a client that disconnects ends quietly (its work is cancelled)."""
    @functools.wraps(method)
    async def wrapper(self, *args, **kwargs):
        try:
            return await method(self, *args, **kwargs)
        except asyncio.CancelledError:
            if getattr(self, "_client_gone", False):
                return None
            raise
    return wrapper


async def _close(iterator):
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:
            pass
