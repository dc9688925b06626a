"""`%claude fix [note]`: the last failing cell's source and traceback, sent with a request to
explain the error and correct the cell."""
from __future__ import annotations

import sys

from .credentials import Scrubber
from .references import CellError, ErrorLog, format_traceback

FIX_INSTRUCTIONS = (
    "Explain briefly what caused the error, then give the corrected cell as one complete "
    "Python code block that replaces the failing cell.")
FIX_CODE_INSTRUCTIONS = "Give the corrected cell only, as one complete Python code block."


def last_error(shell, errors: ErrorLog) -> CellError | None:
    """The latest failing cell; an error from before claude_nb was loaded counts too."""
    if errors.last is not None:
        return errors.last
    exc = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if exc is None:
        return None
    return CellError(None, "", format_traceback(shell, exc, errors.max_traceback_chars),
                     type(exc).__name__, str(exc))


def fix_prompt(error: CellError, note: str = "", *, code_only: bool = False,
               scrub: Scrubber | None = None) -> str:
    """The prompt: the cell, its traceback (credentials scrubbed), the user's note."""
    scrub = scrub or (lambda text: text)
    where = f"cell In[{error.execution_count}]" if error.execution_count is not None else "a cell"
    parts = [f"This notebook {where} failed with {error.ename}."]
    if error.source.strip():
        parts.append("The cell:\n```python\n" + scrub(error.source.strip("\n")) + "\n```")
    parts.append("The traceback:\n```\n" + scrub(error.traceback) + "\n```")
    if note.strip():
        parts.append("Note from the user: " + note.strip())
    parts.append(FIX_CODE_INSTRUCTIONS if code_only else FIX_INSTRUCTIONS)
    return "\n\n".join(parts)
