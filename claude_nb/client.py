"""One client, two transports: the Jupyter server over HTTP, or the CLI bridge in-process.

`Claude` speaks Anthropic's Messages API. Where it sends a request is the transport's business:

- `HttpTransport`: the Jupyter server that runs the `server_ext` extension. Its URL and token
  reach kernels through `CLAUDE_NB_URL` / `CLAUDE_NB_TOKEN` (the extension sets them in the
  server's environment, so every kernel it starts inherits them), or `connect(url, token)`.
  Streams are read synchronously in the caller's thread, so a kernel interrupt stops them.
- `InProcessTransport`: no server (terminal IPython, scripts). A private asyncio loop in a
  worker thread drives `ClaudeBridge.stream`; events come back to the caller through a queue
  (magics are synchronous, and `asyncio.run` fails inside a running kernel loop).

Both give the same answers and raise the same `ClaudeError`.
"""
from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import http.client
import json
import os
import queue
import socket
import sys
import threading
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterator
from urllib.parse import quote, urljoin, urlsplit

from .bridge.events import MessageAccumulator
from .protocol.errors import AnthropicError
from .protocol.models import DEFAULT_MAX_TOKENS, DEFAULT_MODEL
from .protocol.sse import iter_sse
from .protocol.validation import SESSION_HEADER

READ_TIMEOUT = 600.0        # as the official SDK: the server pings on long waits
URL_ENV, TOKEN_ENV = "CLAUDE_NB_URL", "CLAUDE_NB_TOKEN"


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


# -- answers --------------------------------------------------------------------------------
@dataclass
class Answer:
    """A finished answer: its text and what it cost."""
    text: str
    model: str
    usage: dict
    stop_reason: str | None
    request_id: str | None
    cost_usd: float | None = None
    cost_estimated: bool = False
    transport: str = ""
    message: dict = field(default_factory=dict, repr=False)
    tool_calls: list = field(default_factory=list, repr=False)   # with tools=[fn, ...]: each call
    rounds: int = 1                                               # requests it took

    def metadata(self) -> dict:
        """What `%%claude` saves in the output's metadata (`{"claude_nb": ...}`)."""
        return {"model": self.model, "usage": self.usage, "cost_usd": self.cost_usd,
                "cost_estimated": self.cost_estimated, "request_id": self.request_id,
                "stop_reason": self.stop_reason, "transport": self.transport}


class AnswerStream:
    """Iterate for the text as it arrives; `.answer` holds the whole `Answer` once done.

    `close()` (or leaving a `with` block, or an interrupt) stops the request: the server sees
    the client go and ends its CLI process; in-process, the process is ended directly.
    """

    def __init__(self, events: Iterator[dict], transport: "Transport", request_id: str | None,
                 abort: Callable[[], None] | None = None):
        self._events = events
        self._transport = transport
        self._abort = abort
        self.request_id = request_id
        self.answer: Answer | None = None
        self.aborted = False
        self._acc = MessageAccumulator()
        self._final_usage: dict | None = None
        self._iter = self._run()

    def __iter__(self):
        return self

    def __next__(self) -> str:
        return next(self._iter)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self._iter.close()
        close = getattr(self._events, "close", None)
        if close:
            close()

    def abort(self) -> None:
        """Stop the request from another thread (a Stop button): iteration ends, `.answer`
        stays None, and the CLI process is ended."""
        self.aborted = True
        if self._abort is not None:
            self._abort()

    @property
    def text(self) -> str:
        """The text received so far."""
        msg = self._acc.message
        if not msg:
            return ""
        return "".join(b.get("text", "") for b in msg["content"] if b.get("type") == "text")

    def until_done(self) -> Answer:
        for _ in self:
            pass
        assert self.answer is not None
        return self.answer

    def _run(self):
        try:
            yield from self._receive()
        except ClaudeError:
            if self.aborted:       # the connection was cut on purpose
                return
            raise

    def _receive(self):
        for event in self._events:
            kind = event.get("type")
            if kind == "claude_nb.final_usage":
                self._final_usage = event.get("usage")
                continue
            if kind == "claude_nb.request_id":
                self.request_id = event.get("request_id") or self.request_id
                continue
            self._acc.add(event)
            if kind == "content_block_delta":
                delta = event.get("delta") or {}
                if delta.get("type") == "text_delta" and delta.get("text"):
                    yield delta["text"]
        message = self._acc.message
        if self.aborted:
            return
        if message is None or message.get("stop_reason") is None:
            raise ClaudeError("The answer ended before the message was complete.",
                              status=500, type="api_error", request_id=self.request_id)
        if self._final_usage:
            message["usage"] = self._final_usage
        usage = message.get("usage") or {}
        cost, estimated = self._transport.cost_of(self.request_id, message.get("model", ""), usage)
        self.answer = Answer(text=self.text, model=message.get("model", ""), usage=usage,
                             stop_reason=message.get("stop_reason"), request_id=self.request_id,
                             cost_usd=cost, cost_estimated=estimated,
                             transport=self._transport.kind, message=message)


# -- transports -----------------------------------------------------------------------------
class Transport:
    kind = ""

    def stream(self, body: dict, *, source: str = "client", session: str | None = None):
        """-> (events, request_id, abort): the Anthropic stream events, the request id if known
        yet, and a thread-safe callable that stops the request.

        session: a chat's key; the CLI process that answered is kept for the chat's next turn."""
        raise NotImplementedError

    def end_session(self, session: str) -> None:
        """The chat was reset: its kept process can go."""

    def cost_of(self, request_id, model, usage) -> tuple[float | None, bool]:
        from .bridge.pricing import estimate_cost
        return estimate_cost(model, usage), True

    def describe(self) -> str:
        return self.kind


def _query(params: dict | None) -> str:
    """Anthropic's query style: arrays as `key[]=a&key[]=b`; None values left out."""
    parts = []
    for key, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            parts += [f"{quote(key)}%5B%5D={quote(str(v), safe='')}" for v in value]
        else:
            if isinstance(value, bool):
                value = str(value).lower()
            parts.append(f"{quote(key)}={quote(str(value), safe='')}")
    return "&".join(parts)


class HttpTransport(Transport):
    """The Jupyter server's Anthropic-compatible API, with the stdlib's http.client."""

    kind = "server"

    def __init__(self, base_url: str, token: str | None, *, timeout: float = READ_TIMEOUT):
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.token = token or ""
        self.timeout = timeout

    def describe(self) -> str:
        return f"Jupyter server at {self.base_url}"

    def _headers(self, accept: str) -> dict:
        from . import __version__
        headers = {"accept": accept, "anthropic-version": "2023-06-01",
                   "user-agent": f"claude-nb/{__version__}"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        return headers

    def open(self, method: str, path: str, *, params: dict | None = None, body=None,
             accept: str = "application/json", headers: dict | None = None) -> http.client.HTTPResponse:
        """Send a request; return the response if 2xx, else raise its ClaudeError."""
        url = urljoin(self.base_url, path.lstrip("/")) if "://" not in path else path
        parts = urlsplit(url)
        target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        query = _query(params)
        if query:
            target += ("&" if "?" in target else "?") + query
        conn_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = conn_type(parts.hostname, parts.port, timeout=self.timeout)
        headers = {**self._headers(accept), **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["content-type"] = "application/json"
        try:
            conn.request(method, target, body=data, headers=headers)
            sock = conn.sock
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise ConnectionFailed(f"Could not reach the Jupyter server at {self.base_url}: {exc}") from None
        response.claude_nb_socket = sock      # for abort() from another thread
        if response.status >= 400:
            raw = response.read()
            conn.close()
            raise ClaudeError.from_response(response.status, raw, response.getheader("request-id"))
        return response

    def request(self, method: str, path: str, *, params: dict | None = None, body=None):
        """A JSON request; returns the decoded body."""
        response = self.open(method, path, params=params, body=body)
        try:
            raw = response.read()
        finally:
            response.close()
        try:
            return json.loads(raw) if raw.strip() else None
        except ValueError:
            raise ClaudeError(f"The server answered {path} with something that is not JSON.",
                              status=502, type="api_error") from None

    def lines(self, path: str) -> Iterator[str]:
        """A JSONL resource (batch results), line by line."""
        response = self.open("GET", path, accept="application/binary")
        try:
            for raw in response:
                line = raw.decode("utf-8").strip()
                if line:
                    yield line
        finally:
            response.close()

    def stream(self, body: dict, *, source: str = "client", session: str | None = None):
        response = self.open("POST", "v1/messages", body={**body, "stream": True},
                             accept="text/event-stream",
                             headers={SESSION_HEADER: session} if session else None)
        request_id = response.getheader("request-id")

        def abort():
            try:        # wakes the reading thread with EOF; the server sees the client go
                response.claude_nb_socket.shutdown(socket.SHUT_RDWR)
            except (OSError, AttributeError):
                pass
        return self._events(response, request_id), request_id, abort

    def end_session(self, session: str) -> None:
        self.request("DELETE", "claude_nb/sessions/" + quote(session, safe=""))

    def _events(self, response, request_id):
        try:
            lines = (raw.decode("utf-8") for raw in response)
            for name, data in iter_sse(lines):
                if not data:
                    continue
                try:
                    event = json.loads(data)
                except ValueError:
                    raise ClaudeError(f"The server sent an unreadable event: {data[:200]!r}",
                                      status=502, type="api_error", request_id=request_id) from None
                if name == "error" or event.get("type") == "error":
                    err = event.get("error") or {}
                    raise ClaudeError(str(err.get("message") or "error"), type=err.get("type"),
                                      status=200, request_id=request_id)
                if event.get("type") == "ping":
                    continue
                yield event
        except (OSError, http.client.HTTPException) as exc:
            raise ConnectionFailed(f"The connection to {self.base_url} broke mid-answer: {exc}") from None
        finally:
            response.close()


class _LoopThread:
    """A private asyncio loop in a daemon thread: where the in-process bridge lives."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="claude-nb-loop",
                                       daemon=True)
        self.thread.start()

    def submit(self, coro) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)


class InProcessTransport(Transport):
    """The CLI bridge in this process, for terminal IPython and scripts (no Jupyter server)."""

    kind = "in-process"

    def __init__(self, bridge=None, *, config=None, record_usage: bool = True):
        self._bridge = bridge
        self._config = config
        self.record_usage = record_usage
        self._loop: _LoopThread | None = None
        self._lock = threading.Lock()
        self._costs: dict[str, tuple[float, bool]] = {}
        self.run_listeners: list[Callable] = []
        self.batch_runner = None        # set up lazily by claude_nb.jobs

    def describe(self) -> str:
        return "in-process Claude Code CLI bridge (no Jupyter server)"

    @property
    def bridge(self):
        with self._lock:
            created = self._bridge is None
            if created:
                from .bridge import ClaudeBridge
                self._bridge = ClaudeBridge(config=self._config) if self._config else ClaudeBridge()
            if self._on_run not in self._bridge.run_listeners:
                self._bridge.run_listeners.append(self._on_run)
            bridge = self._bridge
        if created and self.record_usage:
            self._open_ledger(bridge)
        return bridge

    def _open_ledger(self, bridge) -> None:
        """Record in-process runs in the usage store, as the server records its own."""
        try:
            from .local import local_state
            local_state(self).store.attach(bridge)
        except ImportError:
            return
        except Exception as exc:   # an unwritable data dir must not stop answers
            print(f"claude_nb: usage will not be recorded ({exc}).", file=sys.stderr)

    @property
    def loop(self) -> _LoopThread:
        with self._lock:
            if self._loop is None:
                self._loop = _LoopThread()
                atexit.register(self._kill_all)
            return self._loop

    def add_run_listener(self, listener: Callable) -> None:
        """Called with each run's `RunRecord` (model, usage, cost_usd, source ...): the usage ledger's hook."""
        self.run_listeners.append(listener)

    def _on_run(self, record) -> None:
        self._costs[record.request_id] = (record.cost_usd, record.cost_estimated)
        while len(self._costs) > 1000:
            self._costs.pop(next(iter(self._costs)))
        for listener in list(self.run_listeners):
            try:
                listener(record)
            except Exception:      # a broken ledger must not fail the user's answer
                pass

    def cost_of(self, request_id, model, usage):
        if request_id in self._costs:
            return self._costs[request_id]
        return super().cost_of(request_id, model, usage)

    def run(self, coro, timeout: float | None = None):
        """Run a coroutine on the private loop and wait for it (interruptible)."""
        future = self.loop.submit(coro)
        try:
            return _wait(future, timeout)
        except BaseException:
            future.cancel()
            raise

    def stream(self, body: dict, *, source: str = "client", session: str | None = None):
        from .protocol.validation import validate_message_request
        body = dict(body)
        body.pop("stream", None)
        try:
            validate_message_request(body)
        except AnthropicError as exc:
            raise ClaudeError.wrap(exc) from None
        request_id = "req_" + uuid.uuid4().hex[:24]
        handoff: queue.Queue = queue.Queue()
        control: dict = {}

        def abort():
            future = control.get("future")
            if future is not None:
                future.cancel()
            handoff.put(("end", None))
        return (self._events(body, source, session, request_id, handoff, control), request_id,
                abort)

    def end_session(self, session: str) -> None:
        if self._loop is not None and self._bridge is not None:
            self.run(self._bridge.end_session(session), timeout=15)

    def _events(self, body, source, session, request_id, handoff, control):
        bridge = self.bridge
        started = threading.Event()
        finished = threading.Event()      # set once the bridge has cleaned up (process ended)

        async def pump():
            started.set()
            try:
                async for event in bridge.stream(body, source=source, request_id=request_id,
                                                 session=session):
                    handoff.put(("event", event))
                handoff.put(("end", None))
            except AnthropicError as exc:
                handoff.put(("error", exc))
            except asyncio.CancelledError:
                handoff.put(("end", None))
                raise
            except Exception as exc:   # a bug below must still reach the caller as an error
                handoff.put(("error", AnthropicError(f"{type(exc).__name__}: {exc}")))
            finally:
                finished.set()

        future = control["future"] = self.loop.submit(pump())
        try:
            while True:
                try:
                    kind, item = handoff.get(timeout=0.2)
                except queue.Empty:
                    continue
                if kind == "event":
                    yield item
                elif kind == "error":
                    raise ClaudeError.wrap(item, request_id) from None
                else:
                    return
        finally:
            if not future.done():
                future.cancel()      # ends the CLI process (the bridge closes it on cancel)
            if started.is_set():
                finished.wait(timeout=15)

    def close(self) -> None:
        """End running CLI processes and stop the private loop."""
        loop = self._loop
        if loop is None:
            return
        state = getattr(self, "_local_state", None)
        if state is not None and state.runner is not None:
            try:        # unfinished batch requests stay in the store for the next process
                loop.submit(state.runner.stop()).result(timeout=15)
            except Exception:
                pass
        if self._bridge is not None:
            try:
                loop.submit(self._bridge.close()).result(timeout=15)
            except Exception:
                self._kill_all()
        if state is not None:
            state.store.close()
        loop.loop.call_soon_threadsafe(loop.loop.stop)
        loop.thread.join(timeout=5)
        self._loop = None

    def _kill_all(self) -> None:
        bridge = self._bridge
        for proc in list(getattr(bridge, "live", ()) or ()):
            proc.kill_now()


def _wait(future: concurrent.futures.Future, timeout: float | None):
    """future.result(), in short waits so a KeyboardInterrupt gets through at once."""
    import time
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            return future.result(timeout=0.2)
        except concurrent.futures.TimeoutError:
            if deadline is not None and time.monotonic() > deadline:
                raise


# -- finding the server ---------------------------------------------------------------------
def _parent_server() -> tuple[str, str] | None:
    """The Jupyter server that started this kernel, from its runtime file (cheap: one stat).

    Only the server whose pid is this kernel's JPY_PARENT_PID is considered: never some other
    server of the same user.
    """
    parent = os.environ.get("JPY_PARENT_PID")
    if not parent or not parent.isdigit():
        return None
    try:
        from jupyter_core.paths import jupyter_runtime_dir
        path = os.path.join(jupyter_runtime_dir(), f"jpserver-{parent}.json")
        with open(path, encoding="utf-8") as fh:
            info = json.load(fh)
    except (OSError, ValueError, ImportError):
        return None
    url = info.get("url")      # the server's connection URL, base_url included
    if not url or info.get("sock"):
        return None
    return url, info.get("token") or ""


def discover_transport(config=None) -> Transport:
    """$CLAUDE_NB_URL (+ $CLAUDE_NB_TOKEN), else the parent server if it serves /v1, else in-process."""
    url = os.environ.get(URL_ENV)
    if url:
        return HttpTransport(url, os.environ.get(TOKEN_ENV))
    parent = _parent_server()
    if parent:
        candidate = HttpTransport(*parent, timeout=5)
        try:
            candidate.request("GET", "v1/models", params={"limit": 1})
        except ClaudeError:
            pass
        else:
            return HttpTransport(*parent)
    return InProcessTransport(config=config)


_default_transport: Transport | None = None
_default_lock = threading.Lock()


def default_transport() -> Transport:
    global _default_transport
    with _default_lock:
        if _default_transport is None:
            config = None
            try:
                from IPython import get_ipython
                shell = get_ipython()
                config = shell.config if shell is not None else None
            except ImportError:
                pass
            _default_transport = discover_transport(config)
        return _default_transport


def connect(url: str | None = None, token: str | None = None) -> Transport:
    """Point claude_nb at a Jupyter server (url=None: run the bridge in-process). Returns it."""
    global _default_transport
    with _default_lock:
        _default_transport = HttpTransport(url, token) if url else InProcessTransport()
        return _default_transport


# -- the client -----------------------------------------------------------------------------
def new_session_key(kind: str) -> str:
    """A chat's key for `Claude.stream(session=...)`: unique per conversation."""
    return f"{kind}-{uuid.uuid4().hex[:16]}"


class Claude:
    """Messages with Claude through the Claude Code CLI. `claude_nb.claude` is the default one.

    >>> claude.message("Name three prime numbers.")
    >>> for piece in claude.message_stream("Write a haiku"): print(piece, end="")
    """

    def __init__(self, transport: Transport | None = None, *, model: str = DEFAULT_MODEL,
                 max_tokens: int = DEFAULT_MAX_TOKENS, system: str | None = None):
        self._transport = transport
        self.model = model
        self.max_tokens = max_tokens
        self.system = system

    @property
    def transport(self) -> Transport:
        return self._transport or default_transport()

    def build_body(self, prompt=None, *, messages: list | None = None, model: str | None = None,
                   system=None, max_tokens: int | None = None, **params) -> dict:
        if messages is None:
            if prompt is None:
                raise ClaudeError("Give a prompt or messages.", status=400)
            messages = [{"role": "user", "content": prompt}]
        elif prompt is not None:
            messages = list(messages) + [{"role": "user", "content": prompt}]
        body = {"model": model or self.model,
                "max_tokens": self.max_tokens if max_tokens is None else max_tokens,
                "messages": messages}
        system = self.system if system is None else system
        if system:
            body["system"] = system
        body.update({k: v for k, v in params.items() if v is not None})
        return body

    def stream(self, prompt=None, *, source: str = "client", session: str | None = None,
               tools=None, max_tool_rounds: int | None = None, **kw) -> AnswerStream:
        """An `AnswerStream`: iterate it for text pieces, then read `.answer`.

        session: a chat's key (see `Transport.stream`); the magics and the chat widget use one.
        tools: tool definitions (dicts: a `tool_use` comes back to you), or Python functions:
        then each call the model makes runs here and its result goes back, round after round
        (at most `max_tool_rounds`, default 10), until the final answer."""
        from .kernel.tools import ToolSet, wants_tool_loop
        if wants_tool_loop(tools):
            from .kernel.tool_loop import DEFAULT_MAX_ROUNDS, ToolLoopStream
            return ToolLoopStream(self, self.build_body(prompt, **kw), ToolSet.from_functions(tools),
                                  max_rounds=DEFAULT_MAX_ROUNDS if max_tool_rounds is None
                                  else max_tool_rounds, source=source)
        if tools is not None:
            kw["tools"] = tools
        transport = self.transport
        events, request_id, abort = transport.stream(self.build_body(prompt, **kw), source=source,
                                                     session=session)
        return AnswerStream(events, transport, request_id, abort)

    def message_stream(self, prompt=None, *, model: str | None = None, system=None,
                       max_tokens: int | None = None, **params) -> Iterator[str]:
        """Yield the answer's text as it arrives (with `tools=[fn, ...]`: every round's text)."""
        with self.stream(prompt, model=model, system=system, max_tokens=max_tokens, **params) as s:
            yield from s

    def end_session(self, session: str) -> None:
        """Let a chat's kept CLI process go (its conversation was reset). Best effort: a process
        left behind is never continued by a different history and retires when idle."""
        try:
            self.transport.end_session(session)
        except ClaudeError:
            pass

    def answer(self, prompt=None, **kw) -> Answer:
        """The whole `Answer` (text, model, usage, cost, request id)."""
        with self.stream(prompt, **kw) as s:
            return s.until_done()

    def message(self, prompt=None, *, model: str | None = None, system=None,
                max_tokens: int | None = None, **params) -> str:
        """Send one message; return the answer's text.

        `tools=[fn, ...]`: Python functions the model may call; each call runs here (schemas come
        from the signatures, type hints and docstrings) until the model answers."""
        return self.answer(prompt, model=model, system=system, max_tokens=max_tokens,
                           **params).text

    def models(self) -> list[dict]:
        """The models on offer (GET /v1/models)."""
        transport = self.transport
        if isinstance(transport, HttpTransport):
            out, after = [], None
            while True:
                page = transport.request("GET", "v1/models", params={"limit": 1000, "after_id": after})
                out += page.get("data") or []
                if not page.get("has_more") or not page.get("last_id"):
                    return out
                after = page["last_id"]
        from .protocol.models import list_models
        return [m.to_json() for m in list_models()]


claude = Claude()


def anthropic_client(**kwargs):
    """An official `anthropic.Anthropic` client configured for the Jupyter server.

    Needs a server running the extension (the SDK speaks HTTP); without one this raises a
    ClaudeError that says so. Extra keyword arguments go to `anthropic.Anthropic`.
    """
    transport = default_transport()
    if not isinstance(transport, HttpTransport):
        raise ClaudeError("anthropic_client() needs a Jupyter server running the claude-nb "
                          "extension (this kernel found none: no $CLAUDE_NB_URL). Start JupyterLab "
                          "in an environment where claude-nb is installed, or call "
                          "claude_nb.connect(url, token) first. Without a server, use "
                          "claude_nb.claude, which runs the CLI in-process.",
                          status=400, type="invalid_request_error")
    try:
        import anthropic
    except ImportError:
        raise ClaudeError("anthropic_client() needs the official SDK: pip install anthropic",
                          status=400) from None
    return anthropic.Anthropic(base_url=transport.base_url.rstrip("/"), api_key=transport.token or "none",
                               **kwargs)
