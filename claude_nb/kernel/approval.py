"""Asking the user before the agent runs code: Approve / Deny buttons under Jupyter, a y/N
prompt in terminal IPython. No answer within the timeout counts as Deny.

Buttons in a busy cell: the cell blocks the kernel's main thread, so the click's `comm_msg`
would wait in the main shell's queue until the cell ends. ipykernel 7 has subshells (JEP 91):
shell loops in their own threads, and it routes a comm's frontend messages to the subshell its
`_reply_subshell_for` names. Here the buttons' comms name a subshell made for this purpose, so
the click is handled (by ipywidgets' own machinery) in that thread while the cell waits. A
kernel without subshells (ipykernel 6, other kernels) gets the stdin prompt instead, which every
Jupyter frontend shows as a text box (no timeout there: `input()` cannot time out).
"""
from __future__ import annotations

import html
import select
import sys
import threading
import time
from dataclasses import dataclass


@dataclass
class Decision:
    approved: bool
    reason: str        # approved | denied | timeout | no-prompt


class Approver:
    """Asks whether `code` may run; returns a `Decision`."""

    def ask(self, code: str, timeout: float) -> Decision:
        raise NotImplementedError

    def close(self) -> None:
        """Called when the agent's cell is done (drop any leftover UI)."""


# -- terminal ---------------------------------------------------------------------------------
class PromptApprover(Approver):
    """`Run this code? [y/N]` on the terminal; waits at most `timeout` seconds."""

    def __init__(self, stdin=None, stdout=None):
        self.stdin = stdin
        self.stdout = stdout

    def ask(self, code: str, timeout: float) -> Decision:
        stdin = self.stdin or sys.stdin
        out = self.stdout or sys.stdout
        out.write(f"\nClaude wants to run the code above. Run it? [y/N] "
                  f"(no answer in {timeout:.0f} s = no) ")
        out.flush()
        try:
            line = _read_line(stdin, timeout)
        except EOFError:
            line = ""
        if line is None:
            out.write("\n")
            out.flush()
            return Decision(False, "timeout")
        ok = line.strip().lower() in ("y", "yes")
        return Decision(ok, "approved" if ok else "denied")


def _read_line(stdin, timeout: float) -> str | None:
    """A line from stdin, or None after `timeout` seconds (select where stdin has a file
    descriptor; a blocking read elsewhere)."""
    try:
        fd = stdin.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    if fd is not None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], min(left, 0.2))   # ^C gets through
            if ready:
                break
    line = stdin.readline()
    if line == "":
        raise EOFError
    return line


# -- Jupyter without subshells: the stdin channel ------------------------------------------------
class StdinApprover(Approver):
    """`input()`, shown by Jupyter frontends as a text box under the cell."""

    def ask(self, code: str, timeout: float) -> Decision:
        try:
            line = input("Claude wants to run the code above. Type y to run it, anything else "
                         "to deny: ")
        except Exception:        # StdinNotImplementedError: a frontend that can't ask (nbclient)
            return Decision(False, "no-prompt")
        ok = line.strip().lower() in ("y", "yes")
        return Decision(ok, "approved" if ok else "denied")


# -- Jupyter with subshells: buttons --------------------------------------------------------------
class WidgetApprover(Approver):
    """Approve / Deny buttons in the cell, answered while the cell runs."""

    def __init__(self, kernel):
        self.kernel = kernel
        self._handle = None

    @staticmethod
    def supported(kernel) -> bool:
        if kernel is None or not getattr(kernel, "_supports_kernel_subshells", False):
            return False
        if getattr(kernel, "shell_channel_thread", None) is None:
            return False
        try:
            import ipywidgets  # noqa: F401
            from ipykernel.comm.comm import BaseComm
        except ImportError:
            return False
        return hasattr(BaseComm, "_reply_subshell_for")

    def _subshell(self) -> str:
        """This kernel's approval subshell, made once (a thread with its own shell loop)."""
        thread = self.kernel.shell_channel_thread
        manager = thread.manager
        existing = getattr(self.kernel, "_claude_nb_subshell", None)
        if existing and existing in manager.list_subshell():
            return existing
        made: dict = {}
        done = threading.Event()

        def create():            # subshells are made in the shell channel thread
            try:
                made["id"] = manager._create_subshell()
            except BaseException as exc:
                made["error"] = exc
            finally:
                done.set()
        thread.io_loop.add_callback(create)
        if not done.wait(10) or "id" not in made:
            raise RuntimeError(f"could not start a subshell: {made.get('error', 'timed out')}")
        self.kernel._claude_nb_subshell = made["id"]
        return made["id"]

    def ask(self, code: str, timeout: float) -> Decision:
        import ipywidgets as w
        from IPython.display import display
        try:
            subshell = self._subshell()
        except Exception:
            return StdinApprover().ask(code, timeout)
        answer: dict = {}
        answered = threading.Event()

        def choose(approved: bool):
            def on_click(_button):
                answer.setdefault("approved", approved)
                answered.set()
            return on_click

        approve = w.Button(description="Approve", button_style="success", icon="check",
                           tooltip="Run this code in the kernel")
        deny = w.Button(description="Deny", button_style="danger", icon="times",
                        tooltip="Don't run it; Claude is told so")
        for button, approved in ((approve, True), (deny, False)):
            button.on_click(choose(approved))
            # the click's comm_msg goes to the subshell, which handles it while this cell waits
            button.comm._reply_subshell_for = lambda data, default, _s=subshell: _s
        prompt = w.HTML(f"<b>Claude wants to run the code above.</b> "
                        f"{html.escape(f'No answer in {timeout:.0f} s counts as Deny.')}")
        box = w.VBox([prompt, w.HBox([approve, deny])])
        box.add_class("claude-nb-approval")
        if self._handle is None:
            self._handle = display(box, display_id=True)
        else:
            self._handle.update(box)
        try:
            deadline = time.monotonic() + timeout
            while not answered.wait(min(0.1, max(0.0, deadline - time.monotonic()))):
                if time.monotonic() >= deadline:
                    break
        finally:
            for widget in (approve, deny, prompt, box):
                widget.close()
            self._handle.update(_Blank())       # the saved notebook keeps no dead widget
        if "approved" not in answer:
            return Decision(False, "timeout")
        return Decision(answer["approved"], "approved" if answer["approved"] else "denied")


class _Blank:
    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": ""}


def approver_for(shell) -> Approver:
    """Buttons where the kernel can answer them mid-cell, stdin in other kernels, a y/N prompt
    in terminal IPython."""
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return PromptApprover()
    if WidgetApprover.supported(kernel):
        return WidgetApprover(kernel)
    return StdinApprover()
