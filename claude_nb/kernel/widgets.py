"""A small chat panel (ipywidgets) with live text and a Stop button, beside `%%claude`.

Widget callbacks cannot run while a cell is busy, so a Stop button can't stop a stream read in
the cell itself (the kernel's interrupt can). Here the answer streams in a background thread:
the cell (or the Send click) returns at once, the kernel stays free to handle Stop, and the
thread adopts the parent message of the cell that started it (`set_parent`), so anything it
prints lands in that cell. Widget state is not saved as notebook output; use `%%claude` for
answers that must stay in the .ipynb.
"""
from __future__ import annotations

import html
import threading
import time

from .client import Claude, new_session_key
from .errors import ClaudeError


class ChatWidget:
    """`claude_nb.chat()` -> type, Send, watch the answer stream, Stop it. Remembers the chat."""

    def __init__(self, client: Claude | None = None, *, model: str | None = None,
                 system: str | None = None, max_tokens: int | None = None,
                 update_interval: float = 0.1):
        import ipywidgets as w
        self.client = client or Claude()
        self.model, self.system, self.max_tokens = model, system, max_tokens
        self.update_interval = update_interval
        self.conversation: list[dict] = []
        self.session = new_session_key("chat")      # its CLI process is kept between turns
        self.transcript = w.HTML(value="")
        self.prompt = w.Textarea(placeholder="Ask Claude…", layout=w.Layout(width="100%", height="4em"))
        self.send_button = w.Button(description="Send", button_style="primary", icon="paper-plane")
        self.stop_button = w.Button(description="Stop", button_style="warning", icon="stop",
                                    disabled=True)
        self.status = w.Label(value="")
        self.send_button.on_click(lambda _: self.send())
        self.stop_button.on_click(lambda _: self.stop())
        self.view = w.VBox([self.transcript,
                            w.HBox([self.prompt, w.VBox([self.send_button, self.stop_button])]),
                            self.status])
        self._thread: threading.Thread | None = None
        self._stream = None
        self._live = ""
        # True from Send until the answer is settled in `conversation`. Not the thread's
        # liveness: the thread's own last render runs while it is still alive.
        self._answering = False
        self._render_lock = threading.Lock()     # Send's render and the thread's never interleave
        self.last_answer = None
        self.error: ClaudeError | None = None

    # -- display --------------------------------------------------------------------------
    def _repr_mimebundle_(self, include=None, exclude=None):
        return self.view._repr_mimebundle_(include=include, exclude=exclude)

    def _render(self) -> None:
        with self._render_lock:
            turns = list(self.conversation)
            if self._answering:               # the reply being written, with a cursor
                turns.append({"role": "assistant", "content": self._live + " ▍"})
            parts = []
            for turn in turns:
                who = "You" if turn["role"] == "user" else "Claude"
                parts.append(f"<div><b>{who}</b><div style='white-space: pre-wrap'>"
                             f"{html.escape(turn['content'])}</div></div>")
            self.transcript.value = "".join(parts)

    # -- actions --------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._answering

    def send(self, text: str | None = None) -> None:
        """Ask `text` (default: what is typed in the box); the answer streams in the panel."""
        text = (self.prompt.value if text is None else text).strip()
        if not text or self.busy:
            return
        self.prompt.value = ""
        self.error = None
        user_turn = {"role": "user", "content": text}
        history = self.conversation + [user_turn]
        self.conversation = history
        self._live = ""
        self._answering = True
        parent = _current_parent()
        self.send_button.disabled, self.stop_button.disabled = True, False
        self.status.value = "answering…"
        self._render()                       # before the thread starts: its renders come after
        self._thread = threading.Thread(target=self._run, args=(history, parent),
                                        name="claude-nb-chat", daemon=True)
        self._thread.start()

    ask = send

    def stop(self) -> None:
        """Stop the answer being streamed; what arrived so far stays in the panel."""
        stream = self._stream
        if stream is not None:
            stream.abort()

    def wait(self, timeout: float | None = None) -> "ChatWidget":
        """Block until the current answer is done (for scripts and tests)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self

    # -- the background thread ------------------------------------------------------------
    def _run(self, history: list[dict], parent) -> None:
        _adopt_parent(parent)
        stream = None
        try:
            stream = self._stream = self.client.stream(
                messages=history, model=self.model, system=self.system,
                max_tokens=self.max_tokens, source="magic", session=self.session)
            last = 0.0
            for _ in stream:
                self._live = stream.text
                now = time.monotonic()
                if now - last >= self.update_interval:
                    self._render()
                    last = now
            text = stream.text
            if stream.aborted or stream.answer is None:
                self.status.value = "stopped"
            else:
                self.last_answer = stream.answer
                usage = stream.answer.usage or {}
                self.status.value = (f"{stream.answer.model} · {usage.get('input_tokens', 0)} in / "
                                     f"{usage.get('output_tokens', 0)} out")
            if text:
                self.conversation = history + [{"role": "assistant", "content": text}]
            else:
                self.conversation = history[:-1]     # nothing came: forget the question
        except ClaudeError as exc:
            self.error = exc
            self.conversation = history[:-1]
            self.status.value = f"Claude error [{exc.type}]: {exc.message}"
        finally:
            self._stream = None
            self._live = ""
            self._answering = False          # settled: the last render shows no live reply
            self.send_button.disabled, self.stop_button.disabled = False, True
            self._render()

    def reset(self) -> None:
        """Forget the conversation."""
        if not self.busy:
            if self.conversation:
                self.client.end_session(self.session)
                self.session = new_session_key("chat")
            self.conversation = []
            self.status.value = ""
            self._render()


def _current_parent():
    try:
        from IPython import get_ipython
        shell = get_ipython()
        return shell.get_parent() if shell is not None and hasattr(shell, "get_parent") else None
    except ImportError:
        return None


def _adopt_parent(parent) -> None:
    """ipykernel >= 7 no longer routes a thread's output to the cell that started it."""
    if parent is None:
        return
    try:
        from IPython import get_ipython
        shell = get_ipython()
        if shell is not None and hasattr(shell, "set_parent"):
            shell.set_parent(parent)
    except Exception:
        pass


def chat(client: Claude | None = None, **kwargs) -> ChatWidget:
    """A chat panel: `claude_nb.chat(model="haiku")` as the last line of a cell."""
    return ChatWidget(client, **kwargs)
