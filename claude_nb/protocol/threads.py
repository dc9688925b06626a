"""The message-threads beta (`message-threads-2026-08-12`) on the wire: the `thread` request
field, the fields a thread fixes when it is created, and the errors a client recovers from.

Shapes as the official SDK (anthropic 2.16) reads them: the error code sits in
`error.details.error_code`; `thread_not_found` is a 404, the others are 400s. On
`thread_not_found`, `thread_already_continued` and `thread_continue_in_flight` the SDK replays
the whole conversation under a new thread; on `thread_unsupported_request` its tool runner
goes on without threads (a plain `thread()` raises it to the caller).
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import AnthropicError, InvalidRequest

MESSAGE_THREADS_BETA = "message-threads-2026-08-12"

# Taken from the thread on a `continue`; a continue that sends one again is refused.
CREATE_ONLY_FIELDS = ("system", "tools")

# Request fields a thread cannot honour here. `context_management` asks the server to edit the
# turns it holds (clear old tool results or thinking) as the conversation grows; the bridge
# accepts it without effect on a request that carries its own history, but a thread would
# silently hold turns the client believes cleared. (The SDK's names for these:
# anthropic.types.ThreadUnsupportedFeatureName.)
UNSUPPORTED_WITH_THREADS = ("context_management",)


@dataclass(frozen=True)
class ThreadParam:
    """The request's `thread`: `create`, or `continue` from `previous_message_id`."""
    type: str
    previous_message_id: str | None = None


def parse_thread_param(value) -> ThreadParam | None:
    """The `thread` field (None, or absent: no thread), or the 400 naming what is wrong."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest("thread: Input should be an object: {\"type\": \"create\"} or "
                             "{\"type\": \"continue\", \"previous_message_id\": ...}")
    kind = value.get("type")
    allowed = {"create": {"type"}, "continue": {"type", "previous_message_id"}}.get(kind)
    if allowed is None:
        raise InvalidRequest("thread.type: Input should be 'create' or 'continue'")
    extra = sorted(set(value) - allowed)
    if extra:
        raise InvalidRequest(f"thread.{extra[0]}: Extra inputs are not permitted")
    if kind == "create":
        return ThreadParam("create")
    previous = value.get("previous_message_id")
    if not isinstance(previous, str) or not previous:
        raise InvalidRequest("thread.previous_message_id: Field required: the `id` of the "
                             "previous response in this thread")
    return ThreadParam("continue", previous)


def check_thread_request(body: dict, thread: ThreadParam) -> None:
    """What makes a threaded request wrong before any thread is looked up."""
    if thread.type == "continue":
        for name in CREATE_ONLY_FIELDS:
            if name in body:
                raise InvalidRequest(
                    f"{name}: a thread keeps the `{name}` it was created with; leave `{name}` out "
                    "of a `continue` (to change it, start a new thread with "
                    "thread: {\"type\": \"create\"} and the whole conversation).")
    unsupported = [name for name in UNSUPPORTED_WITH_THREADS if body.get(name) is not None]
    if unsupported:
        raise ThreadError(
            f"{', '.join(unsupported)} cannot be combined with `thread` on this server; send the "
            "whole conversation without `thread`, or leave "
            f"{'it' if len(unsupported) == 1 else 'them'} out.",
            status=400, error_code="thread_unsupported_request", unsupported=unsupported)


class ThreadError(AnthropicError):
    """A thread error with its `error.details` (`error_code`, and `unsupported` for one)."""

    def __init__(self, message: str, *, status: int, error_code: str,
                 unsupported: list[str] | None = None):
        # Replaying (or dropping `thread`) is the way out, never the same request again.
        super().__init__(message, status=status, error_code=error_code, should_retry=False)
        self.unsupported = unsupported

    def envelope(self, request_id: str | None = None) -> dict:
        out = super().envelope(request_id)
        if self.unsupported is not None:
            out["error"]["details"]["unsupported"] = list(self.unsupported)
        return out


def thread_not_found(message_id: str) -> ThreadError:
    return ThreadError(
        f"thread.previous_message_id: no thread holds {message_id!r} here (unknown, expired or "
        "evicted); replay the whole conversation with thread: {\"type\": \"create\"}.",
        status=404, error_code="thread_not_found")


def thread_already_continued(message_id: str, head: str) -> ThreadError:
    return ThreadError(
        f"thread.previous_message_id: {message_id!r} was already continued, and a response can be "
        f"continued once; continue from the thread's latest response, {head!r}.",
        status=400, error_code="thread_already_continued")


def thread_continue_in_flight(message_id: str) -> ThreadError:
    return ThreadError(
        f"thread.previous_message_id: another request is still continuing from {message_id!r}; "
        "wait for it and continue from its response, or replay the whole conversation with "
        "thread: {\"type\": \"create\"}.",
        status=400, error_code="thread_continue_in_flight")


# The codes after which a client replays the whole conversation under a new thread.
REPLAY_ERROR_CODES = ("thread_not_found", "thread_already_continued", "thread_continue_in_flight")
