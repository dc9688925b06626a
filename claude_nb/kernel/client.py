"""`Claude`: Anthropic's Messages API from a kernel, over whichever transport it found.

Where a request goes is the transport's business (`claude_nb.kernel.transports`): the Jupyter
server over HTTP, or the service in-process when there is no server. Both give the same
answers and raise the same `ClaudeError`.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterator

from ..bridge.events import MessageAccumulator
from ..protocol.models import DEFAULT_MAX_TOKENS, DEFAULT_MODEL
from .errors import ClaudeError
from .text_stream import TextStream
from .transports import Transport, default_transport


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
    cached: bool = False          # answered from the result cache: no CLI run, nothing billed
    tool_calls: list = field(default_factory=list, repr=False)   # with tools=[fn, ...]: each call
    rounds: int = 1                                               # requests it took

    def metadata(self) -> dict:
        """What `%%claude` saves in the output's metadata (`{"claude_nb": ...}`)."""
        return {"model": self.model, "usage": self.usage, "cost_usd": self.cost_usd,
                "cost_estimated": self.cost_estimated, "request_id": self.request_id,
                "stop_reason": self.stop_reason, "transport": self.transport,
                "cached": self.cached}


class AnswerStream(TextStream):
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
        self.cached = False
        self._iter = self._run()

    def _release(self) -> None:
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
            if kind == "claude_nb.cache":
                self.cached = bool(event.get("hit"))
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
        if self.cached:
            cost, estimated = 0.0, False      # nothing ran, nothing was billed
        else:
            cost, estimated = self._transport.cost_of(self.request_id, message.get("model", ""),
                                                      usage)
        self.answer = Answer(text=self.text, model=message.get("model", ""), usage=usage,
                             stop_reason=message.get("stop_reason"), request_id=self.request_id,
                             cost_usd=cost, cost_estimated=estimated,
                             transport=self._transport.kind, message=message, cached=self.cached)


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
               tools=None, max_tool_rounds: int | None = None, cache: bool = False,
               **kw) -> AnswerStream:
        """An `AnswerStream`: iterate it for text pieces, then read `.answer`.

        session: a chat's key (see `Transport.stream`); the magics and the chat widget use one.
        tools: tool definitions (dicts: a `tool_use` comes back to you), or Python functions:
        then each call the model makes runs here and its result goes back, round after round
        (at most `max_tool_rounds`, default 10), until the final answer.
        cache: answer from the result cache when this exact request was answered before (no
        CLI run, nothing billed; `.answer.cached` says so), else store the answer for next time."""
        from .tools import ToolSet, wants_tool_loop
        if wants_tool_loop(tools):
            from .tool_loop import DEFAULT_MAX_ROUNDS, ToolLoopStream
            return ToolLoopStream(self, self.build_body(prompt, **kw), ToolSet.from_functions(tools),
                                  max_rounds=DEFAULT_MAX_ROUNDS if max_tool_rounds is None
                                  else max_tool_rounds, source=source)
        if tools is not None:
            kw["tools"] = tools
        transport = self.transport
        events, request_id, abort = transport.stream(self.build_body(prompt, **kw), source=source,
                                                     session=session, cache=cache)
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
                max_tokens: int | None = None, cache: bool = False, **params) -> str:
        """Send one message; return the answer's text.

        `tools=[fn, ...]`: Python functions the model may call; each call runs here (schemas come
        from the signatures, type hints and docstrings) until the model answers. cache=True: an
        identical earlier request's answer is reused from the result cache (no CLI run, nothing
        billed)."""
        return self.answer(prompt, model=model, system=system, max_tokens=max_tokens,
                           cache=cache, **params).text

    def models(self) -> list[dict]:
        """The models on offer (GET /v1/models)."""
        return self.transport.models()


claude = Claude()


def anthropic_client(**kwargs):
    """An official `anthropic.Anthropic` client configured for the Jupyter server.

    Needs a server running the extension (the SDK speaks HTTP); without one this raises a
    ClaudeError that says so. Extra keyword arguments go to `anthropic.Anthropic`.
    """
    endpoint = default_transport().sdk_endpoint()
    if endpoint is None:
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
    base_url, api_key = endpoint
    return anthropic.Anthropic(base_url=base_url, api_key=api_key, **kwargs)
