"""The tools the kernel answers for the agent. Their names are public and fixed:

- `list_variables`: each user variable's name, type and shape or length (no values);
- `inspect_variable(name)`: a DataFrame's columns, dtypes, shape, head and describe; for other
  objects the type, a truncated repr and the docstring's first lines;
- `read_cells(count)`: the latest inputs, outputs and errors, truncated;
- `run_code(code)`: runs Python in the user's namespace, only once the user approved that exact
  code (`ClaudeMagics.agent_run`: ask / never / always);
- `insert_cell(code)`: proposes code as a new cell below, not run.

Every result is scrubbed of credential values before it leaves the kernel (credentials.py).
"""
from __future__ import annotations

import ast
import contextlib
import inspect
import io
import reprlib
import traceback
import types
from dataclasses import dataclass
from typing import Callable

from .approval import Approver
from .credentials import WITHHELD, Scrubber, looks_like_credential, redacted
from .references import ErrorLog
from .tools import ToolOutcome, ToolSet

TOOL_NAMES = ("list_variables", "inspect_variable", "read_cells", "run_code", "insert_cell")
RUN_MODES = ("ask", "never", "always")

DEFINITIONS = [
    {"name": "list_variables",
     "description": "List the user's variables in the live Python kernel: name, type and shape "
                    "or length (no values).",
     "input_schema": {"type": "object", "properties": {}}},
    {"name": "inspect_variable",
     "description": "Look at one variable: for a pandas DataFrame its columns, dtypes, shape, "
                    "head and describe(); for other objects the type, a truncated repr and the "
                    "docstring's first lines.",
     "input_schema": {"type": "object", "properties": {
         "name": {"type": "string", "description": "The variable's name."}},
         "required": ["name"]}},
    {"name": "read_cells",
     "description": "Read the notebook's latest executed cells: their code, results and "
                    "errors (truncated).",
     "input_schema": {"type": "object", "properties": {
         "count": {"type": "integer", "description": "How many of the latest cells (default 5).",
                   "minimum": 1}}}},
    {"name": "run_code",
     "description": "Run Python code in the user's kernel namespace (variables persist). The "
                    "user must approve the exact code first; if they deny it nothing runs. "
                    "Returns printed output, the value of the last expression and any error.",
     "input_schema": {"type": "object", "properties": {
         "code": {"type": "string", "description": "Python source to run."}},
         "required": ["code"]}},
    {"name": "insert_cell",
     "description": "Propose code as a new notebook cell below the current one, for the user "
                    "to review and run. Nothing is run.",
     "input_schema": {"type": "object", "properties": {
         "code": {"type": "string", "description": "Python source for the new cell."}},
         "required": ["code"]}},
]

_HIDDEN_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


@dataclass
class Limits:
    max_result_chars: int = 4000         # each tool result
    max_cells: int = 20                  # read_cells count cap
    max_variables: int = 200             # list_variables entries
    approval_timeout: float = 120.0


def truncate(text: str, limit: int) -> str:
    if limit > 0 and len(text) > limit:
        return text[:limit] + f"\n[... truncated: {len(text)} characters in all]"
    return text


class KernelTools:
    """Answers the five notebook tools against a shell's namespace and history."""

    def __init__(self, shell, *, errors: ErrorLog | None = None, approver: Approver | None = None,
                 run_mode: str = "ask", limits: Limits | None = None,
                 offer_code: Callable[[str], None] | None = None):
        if run_mode not in RUN_MODES:
            raise ValueError(f"agent_run must be one of {', '.join(RUN_MODES)}, not {run_mode!r}")
        self.shell = shell
        self.errors = errors
        self.approver = approver
        self.run_mode = run_mode
        self.limits = limits or Limits()
        self.offer_code = offer_code
        self.proposed: list[str] = []
        self.on_before_approval: Callable[[], None] | None = None   # e.g. flush the display

    @property
    def user_ns(self) -> dict:
        return self.shell.user_ns

    def toolset(self) -> ToolSet:
        return ToolSet({name: (lambda args, _n=name: self.call(_n, args)) for name in TOOL_NAMES},
                       [dict(d) for d in DEFINITIONS])

    def call(self, name: str, arguments: dict) -> ToolOutcome:
        handler = getattr(self, "_" + name)
        try:
            outcome = handler(**(arguments or {}))
        except TypeError as exc:
            outcome = ToolOutcome(f"Bad arguments for {name}: {exc}", is_error=True, status="error")
        # nothing leaves the kernel unscrubbed, however it was produced
        scrub = Scrubber(self.user_ns)
        outcome.content = truncate(scrub(outcome.content), self.limits.max_result_chars)
        return outcome

    # -- the tools ------------------------------------------------------------------------------
    def _user_variables(self) -> list[tuple[str, object]]:
        hidden = getattr(self.shell, "user_ns_hidden", {})
        out = []
        for name, value in list(self.user_ns.items()):
            if name.startswith("_") or name in _HIDDEN_NAMES:
                continue
            if name in hidden and hidden[name] is value:
                continue
            if isinstance(value, types.ModuleType):
                continue
            out.append((name, value))
        return out

    def _list_variables(self) -> ToolOutcome:
        rows = []
        variables = self._user_variables()
        for name, value in variables[:self.limits.max_variables]:
            kind = _type_name(value)
            if looks_like_credential(name):
                rows.append(f"{name}: {kind} ({WITHHELD})")
                continue
            rows.append(f"{name}: {kind}{_size(value)}")
        if len(variables) > self.limits.max_variables:
            rows.append(f"[... {len(variables) - self.limits.max_variables} more]")
        return ToolOutcome("\n".join(rows) if rows else "No user variables yet.")

    def _inspect_variable(self, name: str) -> ToolOutcome:
        name = str(name).strip()
        if looks_like_credential(name):
            return ToolOutcome(f"{name}: {WITHHELD}. Credential values never leave the kernel.",
                               is_error=True, status="refused")
        if name not in self.user_ns:
            return ToolOutcome(f"There is no variable named {name!r}.", is_error=True,
                               status="error")
        value = self.user_ns[name]
        if _is_dataframe(value):
            return ToolOutcome(_describe_frame(name, value))
        if _is_series(value):
            return ToolOutcome(_describe_series(name, value))
        lines = [f"{name}: {_type_name(value)}{_size(value)}"]
        lines.append("repr: " + _short_repr(value))
        doc = _doc_lines(value)
        if doc:
            lines.append("doc: " + doc)
        return ToolOutcome("\n".join(lines))

    def _read_cells(self, count: int = 5) -> ToolOutcome:
        try:
            count = max(1, min(int(count), self.limits.max_cells))
        except (TypeError, ValueError):
            count = 5
        inputs = self.user_ns.get("In") or []
        outputs = self.user_ns.get("Out") or {}
        current = getattr(self.shell, "execution_count", len(inputs))
        numbers = [n for n in range(1, min(len(inputs), current)) if inputs[n].strip()]
        numbers = numbers[-count:]
        if not numbers:
            return ToolOutcome("No cells have run yet in this session.")
        per_cell = max(200, self.limits.max_result_chars // max(1, len(numbers)) - 40)
        parts = []
        for n in numbers:
            part = f"In [{n}]:\n{inputs[n].rstrip()}"
            if n in outputs:
                part += f"\nOut[{n}]:\n{_short_repr(outputs[n])}"
            if self.errors is not None and n in self.errors:
                err = self.errors[n]
                part += f"\nError in [{n}]: {err.ename}: {err.evalue}\n{err.traceback[-800:]}"
            parts.append(truncate(part, per_cell))
        return ToolOutcome("\n\n".join(parts))

    def _run_code(self, code: str) -> ToolOutcome:
        code = str(code)
        if self.run_mode == "never":
            return ToolOutcome("Running code is turned off here (ClaudeMagics.agent_run = "
                               "'never'). Nothing was run. Propose it with insert_cell instead.",
                               is_error=True, status="refused")
        if self.run_mode == "ask":
            if self.approver is None:
                return ToolOutcome("No way to ask the user for approval here. Nothing was run.",
                                   is_error=True, status="refused")
            if self.on_before_approval:
                self.on_before_approval()
            decision = self.approver.ask(code, self.limits.approval_timeout)
            if not decision.approved:
                why = {"timeout": f"The user did not answer within "
                                  f"{self.limits.approval_timeout:.0f} s, which counts as a denial.",
                       "no-prompt": "This frontend cannot ask the user, so the code was not "
                                    "approved."}.get(decision.reason, "The user denied it.")
                return ToolOutcome(f"Not run: {why} Nothing was run.", is_error=True,
                                   status="timeout" if decision.reason == "timeout" else "denied")
        return self._execute(code)

    def _execute(self, code: str) -> ToolOutcome:
        try:
            tree = ast.parse(code, "<claude run_code>", "exec")
        except SyntaxError as exc:
            return ToolOutcome("".join(traceback.format_exception_only(type(exc), exc)),
                               is_error=True, status="error")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        out = io.StringIO()
        value, error = None, None
        with contextlib.redirect_stdout(_Tee(out)), contextlib.redirect_stderr(_Tee(out)):
            try:
                exec(compile(tree, "<claude run_code>", "exec"), self.user_ns)
                if last is not None:
                    value = eval(compile(last, "<claude run_code>", "eval"), self.user_ns)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:      # SystemExit too: the kernel must stay up
                error = exc
        parts = []
        printed = out.getvalue()
        if printed:
            parts.append("Output:\n" + printed.rstrip("\n"))
        if value is not None:
            parts.append("Result: " + _short_repr(value))
        if error is not None:
            tb = traceback.format_exception(type(error), error, error.__traceback__)
            tb = [line for line in tb if "notebook_tools.py" not in line]
            parts.append("Error:\n" + "".join(tb).rstrip("\n"))
            return ToolOutcome("\n".join(parts), is_error=True, status="error")
        return ToolOutcome("\n".join(parts) if parts else "Ran without output.")

    def _insert_cell(self, code: str) -> ToolOutcome:
        code = str(code).strip("\n")
        if not code.strip():
            return ToolOutcome("The cell is empty; nothing proposed.", is_error=True,
                               status="error")
        self.proposed.append(code)
        return ToolOutcome("Proposed as a new cell below (not run). The user will review it.")

    def offer_proposed(self) -> None:
        """At the end of the agent's turn: the proposed cells, as one new cell below."""
        if self.proposed and self.offer_code is not None:
            self.offer_code("\n\n".join(self.proposed))


class _Tee(io.TextIOBase):
    """Captures what run_code prints (it goes back to the model and shows in the transcript)."""

    def __init__(self, sink: io.StringIO):
        self.sink = sink

    def write(self, text):
        return self.sink.write(text)

    def writable(self):
        return True


# -- describing values ----------------------------------------------------------------------------
def _type_name(value) -> str:
    t = type(value)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__.split('.')[0]}.{t.__name__}"


def _size(value) -> str:
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple):
        return f", shape {shape}"
    if isinstance(value, (str, bytes, list, tuple, dict, set, frozenset)) or (
            hasattr(value, "__len__") and not isinstance(value, type)):
        try:
            return f", length {len(value)}"
        except Exception:
            return ""
    return ""


_REPR = reprlib.Repr()
_REPR.maxstring = 400
_REPR.maxother = 400
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxdict = 30
_REPR.maxlevel = 4


def _short_repr(value, limit: int = 1500) -> str:
    if isinstance(value, (dict, list, tuple, set, frozenset, str, bytes)):
        text = _REPR.repr(redacted(value))
    elif _is_dataframe(value) or _is_series(value):
        text = _frame_text(value.head(10))
    else:
        try:
            text = repr(redacted(value))
        except Exception as exc:
            text = f"<repr failed: {type(exc).__name__}>"
    return truncate(text, limit)


def _doc_lines(value, lines: int = 3) -> str:
    doc = inspect.getdoc(value) if isinstance(value, (type, types.FunctionType, types.MethodType,
                                                      types.BuiltinFunctionType)) \
        else inspect.getdoc(type(value))
    if not doc or type(value).__module__ == "builtins" and not callable(value):
        return ""
    return " ".join(doc.strip().splitlines()[:lines])


def _is_dataframe(value) -> bool:
    return type(value).__name__ == "DataFrame" and hasattr(value, "dtypes") and hasattr(value, "columns")


def _is_series(value) -> bool:
    return type(value).__name__ == "Series" and hasattr(value, "dtype") and hasattr(value, "index")


def _frame_text(frame) -> str:
    import pandas as pd
    if _is_dataframe(frame):
        frame = frame.copy()
        for column in frame.columns:
            if looks_like_credential(str(column)):
                frame[column] = WITHHELD
    with pd.option_context("display.max_columns", 30, "display.width", 200,
                           "display.max_colwidth", 60):
        return frame.to_string()


def _describe_frame(name: str, frame) -> str:
    import pandas as pd
    lines = [f"{name}: pandas DataFrame, shape {frame.shape}", "columns and dtypes:"]
    for column, dtype in frame.dtypes.items():
        note = f" ({WITHHELD})" if looks_like_credential(str(column)) else ""
        lines.append(f"  {column}: {dtype}{note}")
    lines.append("head:\n" + _frame_text(frame.head(5)))
    visible = [c for c in frame.columns if not looks_like_credential(str(c))]
    try:
        described = frame[visible].describe(include="all")
        with pd.option_context("display.max_columns", 30, "display.width", 200):
            lines.append("describe:\n" + described.to_string())
    except (ValueError, TypeError):
        pass
    return "\n".join(lines)


def _describe_series(name: str, series) -> str:
    lines = [f"{name}: pandas Series {series.name!r}, dtype {series.dtype}, length {len(series)}"]
    if looks_like_credential(str(series.name)):
        lines.append(WITHHELD)
        return "\n".join(lines)
    lines.append("head:\n" + series.head(5).to_string())
    try:
        lines.append("describe:\n" + series.describe().to_string())
    except (ValueError, TypeError):
        pass
    return "\n".join(lines)
