"""Showing an answer as it streams: display-handle updates in a kernel, printed text elsewhere.

In a kernel the answer is one `display_data` output, updated in place at most every
`interval` seconds and once at the end, so the saved notebook holds the final answer (and its
metadata). Terminal IPython can't update an output, so there the text is printed as it comes.
"""
from __future__ import annotations

import html
import json
import sys
import time

MIME_MARKDOWN = "text/markdown"
MIME_PLAIN = "text/plain"
MIME_JSON = "application/json"
MIME_HTML = "text/html"

# `--format code` answers: the magic also asks the front-end for a new cell with the code
# (set_next_input), which JupyterLab and Notebook honour but VS Code and Colab ignore. So the
# output itself carries the code, with a Copy button (clipboard API; execCommand where that is
# refused) and a line that says where else the code went. Inline handler: a <script> in an
# output runs once, at render time, and not in every front-end.
_COPY_SCRIPT = (
    "var b=this,t=b.closest('.claude-nb-code').querySelector('code').textContent;"
    "var done=function(){b.textContent='Copied';setTimeout(function(){b.textContent='Copy'},2000)};"
    "var old=function(){var a=document.createElement('textarea');a.value=t;"
    "document.body.appendChild(a);a.select();document.execCommand('copy');a.remove();done()};"
    "if(navigator.clipboard&&window.isSecureContext){navigator.clipboard.writeText(t).then(done,old)}"
    "else{old()}")
CODE_NOTE = ("Also offered as a new cell below, where the front-end supports it (JupyterLab, "
             "Notebook); VS Code and Colab ignore that: copy the code from here.")


def code_html(code: str) -> str:
    """The code of a `--format code` answer, as HTML with a Copy button and a note."""
    return ("<div class='claude-nb-code'>"
            "<div style='display:flex;justify-content:space-between;align-items:center;"
            "gap:1em;font-size:0.85em;opacity:0.8'>"
            f"<span class='claude-nb-code-note'>{html.escape(CODE_NOTE)}</span>"
            "<button type='button' class='claude-nb-copy' "
            f"onclick=\"{html.escape(_COPY_SCRIPT)}\">Copy</button>"
            "</div>"
            "<pre style='margin-top:0.4em'><code>" + html.escape(code) + "</code></pre></div>")


class Rendered:
    """A display object with real `text/plain` beside its rich form, and our metadata.

    (IPython's own `Markdown` has `<IPython.core.display.Markdown object>` as its text/plain.)
    """

    def __init__(self, text: str, *, fmt: str = "markdown", metadata: dict | None = None,
                 value=None):
        self.text = text
        self.fmt = fmt
        self.value = value            # the parsed object (json), the extracted code (code)
        self.metadata = metadata or {}

    def _repr_mimebundle_(self, include=None, exclude=None):
        data = {MIME_PLAIN: self.text}
        if self.fmt == "json" and self.value is not None:
            data[MIME_JSON] = self.value
            data[MIME_PLAIN] = json.dumps(self.value, indent=2, ensure_ascii=False)
        elif self.fmt in ("markdown", "code"):
            data[MIME_MARKDOWN] = self.text
        if self.fmt == "code" and self.value:      # value: the code of the answer
            data[MIME_HTML] = code_html(self.value)
        md = {"claude_nb": self.metadata} if self.metadata else {}
        return data, md

    def __repr__(self) -> str:
        return self.text


def in_kernel(shell) -> bool:
    """True where outputs can be updated in place (a Jupyter kernel: Lab, Notebook, VS Code)."""
    return getattr(shell, "kernel", None) is not None


class LiveView:
    """One answer on screen: `feed(text_so_far)` while it streams, `finish(obj)` at the end."""

    def __init__(self, shell, *, live: bool = True, interval: float = 0.1, fmt: str = "markdown",
                 kernel: bool | None = None, out=None):
        self.kernel = in_kernel(shell) if kernel is None else kernel
        self.live = live
        self.interval = interval
        self.fmt = fmt
        self.out = out or sys.stdout
        self._handle = None
        self._last_update = 0.0
        self._pending = False
        self._printed = 0          # terminal: characters already printed
        self.updates = 0

    # -- while streaming ------------------------------------------------------------------
    def feed(self, text: str, force: bool = False) -> None:
        """Show the text so far; `force` updates now, whatever the interval (an agent's tool
        call must show before it runs)."""
        if not self.live and not force:
            return
        if not self.kernel:
            self.out.write(text[self._printed:])
            self.out.flush()
            self._printed = len(text)
            return
        now = time.monotonic()
        if self._handle is None:
            from IPython.display import display
            self._handle = display(Rendered(text, fmt="markdown"), display_id=True)
            self._last_update = now
        elif force or now - self._last_update >= self.interval:
            self._handle.update(Rendered(text, fmt="markdown"))
            self._last_update = now
            self.updates += 1
            self._pending = False
        else:
            self._pending = True

    # -- at the end -----------------------------------------------------------------------
    def finish(self, rendered: Rendered) -> None:
        """Show the final answer (with its metadata): one last update, or the only display."""
        if not self.kernel:
            if self.live or self._printed:
                rest = rendered.text[self._printed:] if rendered.fmt != "json" else ""
                self.out.write(rest + "\n")
            else:
                data, _ = rendered._repr_mimebundle_()
                self.out.write(data[MIME_PLAIN] + "\n")
            self.out.flush()
            return
        if self._handle is None:
            from IPython.display import display
            self._handle = display(rendered, display_id=True)
        else:
            self._handle.update(rendered)
            self.updates += 1

    def abandon(self, text: str, note: str) -> None:
        """The stream stopped early (error or interrupt): keep what came, say why."""
        if not self.kernel:
            if self.live and self._printed:
                self.out.write("\n")
                self.out.flush()
            return
        if self._handle is not None:
            self._handle.update(Rendered(f"{text}\n\n*[{note}]*", fmt="markdown",
                                         metadata={"incomplete": True, "reason": note}))
