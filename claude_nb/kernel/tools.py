"""Python functions as tools: a JSON schema from each function's signature, type hints and
docstring, and the call that answers a `tool_use` block with a `tool_result`.

    def get_weather(city: str, unit: Literal["C", "F"] = "C") -> str:
        '''Current weather for a city.

        Args:
            city: the city's name, e.g. "Paris".
            unit: temperature unit.
        '''
    claude.message("Weather in Paris?", tools=[get_weather])

Docstrings in Google (`Args:`), NumPy (`Parameters` / `----------`) and Sphinx (`:param x:`)
style give each parameter its description; `Annotated[str, "..."]` does too.
"""
from __future__ import annotations

import asyncio
import collections.abc
import concurrent.futures
import dataclasses
import enum
import inspect
import json
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_RESULT_CHARS = 100_000


@dataclass
class ToolOutcome:
    """What goes back to the model as a tool_result (and what the cell shows)."""
    content: str
    is_error: bool = False
    status: str = "ok"            # ok | error | denied | refused | timeout ... (for displays)

    def block(self, tool_use_id: str) -> dict:
        block = {"type": "tool_result", "tool_use_id": tool_use_id, "content": self.content}
        if self.is_error:
            block["is_error"] = True
        return block


# -- schemas ---------------------------------------------------------------------------------
_ARRAYS = (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Iterable,
           collections.abc.Set)
_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean", bytes: "string",
           type(None): "null"}


def json_schema(hint) -> dict:
    """The JSON schema of a type hint (unknown types: no constraint)."""
    if hint is inspect.Parameter.empty or hint is Any:
        return {}
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Annotated:
        schema = json_schema(args[0])
        text = next((a for a in args[1:] if isinstance(a, str)), None)
        return {**schema, "description": text} if text else schema
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return json_schema(options[0])
        return {"anyOf": [json_schema(a) for a in options]}
    if origin is typing.Literal:
        values = list(args)
        kinds = {type(v) for v in values}
        schema = {"enum": values}
        if len(kinds) == 1 and next(iter(kinds)) in _SIMPLE:
            schema["type"] = _SIMPLE[next(iter(kinds))]
        return schema
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"enum": [m.value for m in hint]}
    if hint in (list, tuple, set, frozenset) or origin in _ARRAYS:
        schema = {"type": "array"}
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            schema["prefixItems"] = [json_schema(a) for a in args]
        elif args:
            schema["items"] = json_schema(args[0])
        return schema
    if hint is dict or origin in (dict, collections.abc.Mapping):
        schema = {"type": "object"}
        if len(args) == 2:
            schema["additionalProperties"] = json_schema(args[1])
        return schema
    if dataclasses.is_dataclass(hint):
        return _object_schema({f.name: f.type for f in dataclasses.fields(hint)},
                              {f.name for f in dataclasses.fields(hint)
                               if f.default is dataclasses.MISSING
                               and f.default_factory is dataclasses.MISSING}, {})
    return {}


def _object_schema(hints: dict, required: set, docs: dict) -> dict:
    properties = {}
    for name, hint in hints.items():
        prop = json_schema(hint)
        if docs.get(name) and "description" not in prop:
            prop["description"] = docs[name]
        properties[name] = prop
    schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = [n for n in hints if n in required]
    return schema


_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Params|Returns?|Raises|Yields|Examples?|"
                      r"Notes?|See Also|Attributes)\s*:?\s*$", re.IGNORECASE)


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(the description, {parameter: description}) of a docstring."""
    lines = inspect.cleandoc(doc or "").splitlines()
    params: dict[str, str] = {}
    description: list[str] = []
    section, numpy, base, current = None, False, None, None
    for i, line in enumerate(lines):
        if re.match(r"^\s*-{3,}\s*$", line):
            continue                                       # NumPy underline
        sphinx = re.match(r"^\s*:param\s+(?:[^:]+\s+)?(\w+)\s*:\s*(.*)$", line)
        if sphinx:
            section, current = "sphinx", sphinx.group(1)
            params[current] = sphinx.group(2).strip()
            continue
        if re.match(r"^\s*:(returns?|rtype|raises?|type)\b", line):
            section, current = "other", None
            continue
        header = _SECTION.match(line)
        if header:
            kind = header.group(1).lower()
            section = "params" if kind in ("args", "arguments", "parameters", "params") else "other"
            numpy = i + 1 < len(lines) and bool(re.match(r"^\s*-{3,}\s*$", lines[i + 1]))
            base, current = None, None
            continue
        indent = len(line) - len(line.lstrip())
        if section is None:
            description.append(line)
        elif section == "params" and line.strip():
            if base is None:
                base = indent
            if indent <= base:
                if numpy:
                    entry = re.match(r"^\s*\*{0,2}(\w+)", line)
                    current, text = (entry.group(1), "") if entry else (None, "")
                else:
                    entry = re.match(r"^\s*\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", line)
                    current, text = (entry.group(1), entry.group(2).strip()) if entry else (None, "")
                if current:
                    params[current] = text
            elif current:
                params[current] = (params[current] + " " + line.strip()).strip()
        elif section == "sphinx" and current and indent > 0 and line.strip():
            params[current] = (params[current] + " " + line.strip()).strip()
    return "\n".join(description).strip(), params


class FunctionTool:
    """One Python function offered to the model as a tool."""

    def __init__(self, fn: Callable, *, name: str | None = None, description: str | None = None):
        if not callable(fn):
            raise TypeError(f"A tool must be a function, not {type(fn).__name__}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        if not _NAME.match(self.name):
            raise ValueError(f"Tool name {self.name!r}: use 1-64 of a-z, A-Z, 0-9, _ and -.")
        summary, param_docs = parse_docstring(inspect.getdoc(fn))
        self.description = description or summary or f"The Python function {self.name}."
        self.signature = inspect.signature(fn)
        try:
            hints = typing.get_type_hints(fn, include_extras=True)
        except Exception:          # unresolvable forward references: use what is written
            hints = {}
        params, required = {}, set()
        for p in self.signature.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            if p.kind is p.POSITIONAL_ONLY:
                raise TypeError(f"Tool {self.name}: positional-only parameter {p.name!r} "
                                "cannot be passed by name.")
            params[p.name] = hints.get(p.name, p.annotation)
            if p.default is p.empty:
                required.add(p.name)
        self.input_schema = _object_schema(params, required, param_docs)
        for p in self.signature.parameters.values():
            if p.name in self.input_schema["properties"] and p.default is not p.empty:
                try:
                    json.dumps(p.default)
                    self.input_schema["properties"][p.name]["default"] = p.default
                except (TypeError, ValueError):
                    pass
        self._enums = {n: h for n, h in params.items()
                       if isinstance(h, type) and issubclass(h, enum.Enum)}
        self._takes_extra = any(p.kind is p.VAR_KEYWORD for p in self.signature.parameters.values())

    def definition(self) -> dict:
        """The Messages API tool definition."""
        return {"name": self.name, "description": self.description,
                "input_schema": self.input_schema}

    def __call__(self, arguments: dict) -> ToolOutcome:
        if not isinstance(arguments, dict):
            return ToolOutcome("The tool input must be a JSON object.", is_error=True, status="error")
        known = set(self.input_schema["properties"])
        unknown = set(arguments) - known
        if unknown and not self._takes_extra:
            return ToolOutcome(f"Unknown argument(s) for {self.name}: {', '.join(sorted(unknown))}. "
                               f"Its parameters: {', '.join(sorted(known)) or 'none'}.",
                               is_error=True, status="error")
        missing = [n for n in self.input_schema.get("required", []) if n not in arguments]
        if missing:
            return ToolOutcome(f"Missing argument(s) for {self.name}: {', '.join(missing)}.",
                               is_error=True, status="error")
        try:
            arguments = {k: (self._enums[k](v) if k in self._enums else v)
                         for k, v in arguments.items()}
            result = self.fn(**arguments)
            if inspect.isawaitable(result):
                result = _run_awaitable(result)
        except Exception as exc:        # the model is told, and may try again
            return ToolOutcome(f"{type(exc).__name__}: {exc}", is_error=True, status="error")
        return ToolOutcome(_as_text(result))


def _run_awaitable(awaitable):
    """An async tool's result, whether or not an event loop runs in this thread (kernels)."""
    async def wrap():
        return await awaitable
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, wrap()).result()


def _as_text(result) -> str:
    if result is None:
        text = ""
    elif isinstance(result, str):
        text = result
    else:
        try:
            text = json.dumps(result, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = repr(result)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"\n[... truncated: {len(text)} characters in all]"
    return text


class ToolSet:
    """Tools by name: what the loop offers the model and calls for each `tool_use`."""

    def __init__(self, tools: dict[str, Callable[[dict], ToolOutcome]], definitions: list[dict]):
        self.tools = tools
        self.definitions = definitions

    @classmethod
    def from_functions(cls, functions) -> "ToolSet":
        wrapped = [f if isinstance(f, FunctionTool) else FunctionTool(f) for f in functions]
        names = [t.name for t in wrapped]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"Two tools share the name(s) {', '.join(sorted(dupes))}.")
        return cls({t.name: t for t in wrapped}, [t.definition() for t in wrapped])

    def call(self, name: str, arguments: dict) -> ToolOutcome:
        tool = self.tools.get(name)
        if tool is None:
            return ToolOutcome(f"There is no tool named {name!r}. Tools: {', '.join(self.tools)}.",
                               is_error=True, status="error")
        return tool(arguments)


def wants_tool_loop(tools) -> bool:
    """True when `tools` holds Python callables (run here), False for plain tool definitions."""
    if not tools:
        return False
    callables = [t for t in tools if callable(t) or isinstance(t, FunctionTool)]
    if callables and len(callables) != len(tools):
        raise TypeError("tools: give either Python functions (run here in a loop) or tool "
                        "definitions (dicts, answered by you), not both.")
    return bool(callables)
