"""Putting values into prompts without breaking on code that contains braces.

`str.format` fails on `{` in code (jupyter-ai#27, #967). Here only simple references are
replaced, and only when they resolve; everything else is left exactly as written:

- `expand_variables`: `{name}`, `{name.attr.attr}`, `{name[0]}`, `{name['key']}`, `{name[-1].attr}`
  from a namespace (the notebook's variables). `{{` and `}}` give literal braces.
- `fill_template`: `{column}` from a row (batch prompts); any text between braces that is a
  column name, so columns with spaces work too. `{{` / `}}` likewise.
"""
from __future__ import annotations

import ast
import re
from typing import Mapping

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_INDEX = r"\[(?:-?\d+|'[^'\\\[\]]*'|\"[^\"\\\[\]]*\")\]"
_REFERENCE = re.compile(r"\{\{|\}\}|\{(" + _NAME + r"(?:\." + _NAME + "|" + _INDEX + r")*)\}")
_STEP = re.compile(r"\.(" + _NAME + r")|\[([^\]]*)\]")
_MISSING = object()


def _resolve(expr: str, namespace: Mapping):
    head = re.match(_NAME, expr).group(0)
    if head not in namespace:
        return _MISSING
    value = namespace[head]
    for step in _STEP.finditer(expr, len(head)):
        attr, index = step.groups()
        try:
            if attr is not None:
                if attr.startswith("__") and attr.endswith("__"):
                    return _MISSING        # no reaching into interpreter internals
                value = getattr(value, attr)
            else:
                value = value[ast.literal_eval(index)]
        except Exception:
            return _MISSING
    return value


def _substitute(pattern: re.Pattern, text: str, lookup) -> str:
    """Replace each `{ref}` match by `lookup(ref)`; `{{`/`}}` become literal braces, and a
    reference whose lookup is _MISSING (or fails) stays exactly as written."""
    def replace(match: re.Match) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        try:
            value = lookup(match.group(1))
        except Exception:
            return token
        return token if value is _MISSING else value
    return pattern.sub(replace, text)


def expand_variables(text: str, namespace: Mapping, *, render=str) -> str:
    """Replace `{ref}` forms that resolve in `namespace`; leave everything else as is."""
    def lookup(ref):
        value = _resolve(ref, namespace)
        return value if value is _MISSING else render(value)
    return _substitute(_REFERENCE, text, lookup)


_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]+)\}")


def template_fields(template: str, columns) -> list[str]:
    """The columns a template refers to."""
    names = set(map(str, columns))
    return [m.group(1) for m in _FIELD.finditer(template) if m.group(1) and m.group(1) in names]


def fill_template(template: str, row: Mapping) -> str:
    """`{column}` -> str(row[column]) for every column of the row; the rest left as written."""
    row = {str(k): v for k, v in row.items()}
    return _substitute(_FIELD, template, lambda key: str(row[key]) if key in row else _MISSING)
