"""References to the notebook's history in prompts: `{In[n]}`, `{Out[n]}`, `{Err[n]}`, `{_}`.

`In`, `Out` and `_` are IPython's own; `Err` is kept here: a post-run-cell hook records each
failing cell's source and traceback (ANSI codes stripped, long tracebacks trimmed in the
middle) under its execution count. `%claude fix` and the agent's `read_cells` read it too.
"""
from __future__ import annotations

import re
import traceback
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")
MAX_TRACEBACK_CHARS = 6000
KEEP_ERRORS = 100


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def trim_middle(text: str, limit: int, what: str = "characters") -> str:
    """Keep the head and the tail (where a traceback's cause and error are), cut the middle."""
    if limit <= 0 or len(text) <= limit:
        return text
    head = limit * 2 // 5
    tail = limit - head
    cut = len(text) - head - tail
    return f"{text[:head]}\n[... {cut} {what} trimmed ...]\n{text[-tail:]}"


@dataclass
class CellError:
    """One failed cell: where, what was run, and the traceback the user saw (plain text)."""
    execution_count: int | None
    source: str
    traceback: str
    ename: str
    evalue: str

    def __str__(self) -> str:          # what `{Err[n]}` puts in a prompt
        return self.traceback


def format_traceback(shell, exc: BaseException, limit: int = MAX_TRACEBACK_CHARS) -> str:
    """The traceback as IPython shows it (cells named `Cell In[n]`), without colours."""
    text = ""
    try:
        if isinstance(exc, SyntaxError):
            stb = shell.SyntaxTB.structured_traceback(type(exc), exc, exc.__traceback__)
        else:
            tb = exc.__traceback__
            # the first frame is IPython's own run_code: the user never sees it
            if tb is not None and "IPython" in tb.tb_frame.f_code.co_filename:
                tb = tb.tb_next
            stb = shell.InteractiveTB.structured_traceback(type(exc), exc, tb)
        text = strip_ansi("\n".join(stb))
    except Exception:         # an unusual shell: the standard library's format
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return trim_middle(text.strip("\n"), limit)


class ErrorLog(Mapping):
    """`Err`: failed cells by execution count (the latest `KEEP_ERRORS`)."""

    def __init__(self, shell=None, keep: int = KEEP_ERRORS):
        self.shell = shell
        self.keep = keep
        self._errors: OrderedDict[int, CellError] = OrderedDict()
        self.last: CellError | None = None
        self.max_traceback_chars = MAX_TRACEBACK_CHARS

    def __getitem__(self, n):
        if isinstance(n, int) and n < 0 and self._errors:      # Err[-1]: the latest
            return list(self._errors.values())[n]
        return self._errors[n]

    def __iter__(self):
        return iter(self._errors)

    def __len__(self):
        return len(self._errors)

    def record(self, error: CellError) -> None:
        self.last = error
        if error.execution_count is not None:
            self._errors[error.execution_count] = error
            self._errors.move_to_end(error.execution_count)
            while len(self._errors) > self.keep:
                self._errors.popitem(last=False)

    # -- the hook -----------------------------------------------------------------------------
    def post_run_cell(self, result) -> None:
        exc = result.error_in_exec or result.error_before_exec
        if exc is None:
            return
        info = getattr(result, "info", None)
        source = getattr(info, "raw_cell", None) or ""
        if _is_own_cell(source):       # a failing %claude cell is not the user's bug to fix
            return
        text = format_traceback(self.shell, exc, self.max_traceback_chars)
        self.record(CellError(result.execution_count, source, text, type(exc).__name__,
                              str(exc)))


def _is_own_cell(source: str) -> bool:
    return bool(re.match(r"\s*%%?claude\b", source))


def error_log(shell) -> ErrorLog:
    """The shell's error log, hooked into it on first use."""
    log = getattr(shell, "_claude_nb_error_log", None)
    if log is None:
        log = shell._claude_nb_error_log = ErrorLog(shell)
        shell.events.register("post_run_cell", log.post_run_cell)
    return log


def unhook(shell) -> None:
    log = getattr(shell, "_claude_nb_error_log", None)
    if log is not None:
        try:
            shell.events.unregister("post_run_cell", log.post_run_cell)
        except ValueError:
            pass
        del shell._claude_nb_error_log


class ReferenceNamespace(Mapping):
    """The user's variables, plus `Err` (unless the user has their own `Err`)."""

    def __init__(self, user_ns: Mapping, errors: ErrorLog):
        self.user_ns = user_ns
        self.errors = errors

    def __getitem__(self, name):
        if name in self.user_ns:
            return self.user_ns[name]
        if name == "Err":
            return self.errors
        raise KeyError(name)

    def __contains__(self, name):
        return name in self.user_ns or name == "Err"

    def __iter__(self):
        yield from self.user_ns
        if "Err" not in self.user_ns:
            yield "Err"

    def __len__(self):
        return len(self.user_ns) + ("Err" not in self.user_ns)
