"""The tool-use loop: ask, run the tools the model calls, send their results, ask again.

Every round is one ordinary Messages request through the client's transport (the server over
HTTP, or the bridge in-process): the tools go to the model as client tools, the CLI's built-in
tools stay off, and a `tool_use` comes back here to be answered. Tools run in the caller's
thread, between rounds (so `run_code` runs in the kernel's main thread, as user code does).

`Claude.stream(tools=[fn, ...])` builds this loop, so this module does not import client.py (no
import cycle): it works on the `Claude` it is given, whose rounds are `AnswerStream`s that end
in `Answer`s.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from .text_stream import TextStream
from .tools import ToolOutcome, ToolSet

DEFAULT_MAX_ROUNDS = 10


class ToolLoopStream(TextStream):
    """Iterate for the text of every round as it arrives; `.answer` is the final `Answer`.

    `.answer.text` is the final round's text (the answer); its usage and cost add up every
    round; `.answer.tool_calls` lists each call with its outcome. `on_call(call)` runs as each
    `tool_use` arrives and `on_result(call, outcome)` once it is answered (displays use them).
    """

    def __init__(self, client, body_kw: dict, toolset: ToolSet, *,
                 max_rounds: int = DEFAULT_MAX_ROUNDS, source: str = "client",
                 on_call: Callable[[dict], None] | None = None,
                 on_result: Callable[[dict, ToolOutcome], None] | None = None):
        self.client = client
        self.body_kw = dict(body_kw)
        self.toolset = toolset
        self.max_rounds = max_rounds
        self.source = source
        self.on_call = on_call
        self.on_result = on_result
        self.rounds: list = []               # each round's Answer
        self.tool_calls: list[dict] = []
        self.parts: list[str] = []           # the text of finished rounds
        self.stopped: str | None = None      # "max_rounds" when the loop was cut short
        self.answer = None                   # the final Answer, once done
        self.aborted = False
        self._current = None                 # the AnswerStream of the round in progress
        self._iter = self._run()

    def _release(self) -> None:
        if self._current is not None:
            self._current.close()

    def abort(self) -> None:
        self.aborted = True
        if self._current is not None:
            self._current.abort()

    @property
    def text(self) -> str:
        """The text of every round so far, rounds separated by a blank line."""
        current = self._current.text if self._current is not None else ""
        return "\n\n".join(p for p in self.parts + [current] if p)

    @property
    def current(self):
        """The round being streamed (or whose tool calls are being answered)."""
        return self._current

    @property
    def round_text(self) -> str:
        return self._current.text if self._current is not None else ""

    def until_done(self):
        for _ in self:
            pass
        assert self.answer is not None
        return self.answer

    def _run(self):
        messages = list(self.body_kw.pop("messages"))
        tools = list(self.toolset.definitions) + list(self.body_kw.pop("tools", None) or [])
        for round_number in range(self.max_rounds + 1):
            self._current = stream = self.client.stream(messages=messages, tools=tools,
                                                        source=self.source, **self.body_kw)
            with stream:
                sent = ""
                for piece in stream:
                    if not sent and self.parts:
                        yield "\n\n"              # rounds read as paragraphs
                    sent += piece
                    yield piece
            if stream.answer is None:           # aborted
                return
            answer = stream.answer
            self.rounds.append(answer)
            calls = [b for b in answer.message.get("content", []) if b.get("type") == "tool_use"]
            if answer.stop_reason != "tool_use" or not calls:
                self._finish(answer)
                return
            if round_number == self.max_rounds:
                self.stopped = "max_rounds"
                self._finish(answer)
                return
            results = []
            for block in calls:
                call = {"id": block["id"], "name": block["name"], "input": block.get("input") or {}}
                if self.on_call:
                    self.on_call(call)
                outcome = self.toolset.call(call["name"], call["input"])
                call.update(status=outcome.status, is_error=outcome.is_error,
                            result=outcome.content)
                self.tool_calls.append(call)
                if self.on_result:
                    self.on_result(call, outcome)
                results.append(outcome.block(block["id"]))
            if answer.text:
                self.parts.append(answer.text)
            self._current = None
            messages = messages + [{"role": "assistant", "content": answer.message["content"]},
                                   {"role": "user", "content": results}]

    def _finish(self, last) -> None:
        usage: dict = {}
        for a in self.rounds:
            for key, value in (a.usage or {}).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    usage[key] = usage.get(key, 0) + value
        costs = [a.cost_usd for a in self.rounds]
        cost = None if any(c is None for c in costs) else sum(costs)
        self.answer = replace(last, usage=usage, cost_usd=cost,
                              cost_estimated=any(a.cost_estimated for a in self.rounds),
                              tool_calls=list(self.tool_calls), rounds=len(self.rounds))
