"""Output schemas for `df.claude.extract`: what the user writes -> a JSON schema + column dtypes.

Accepted, for each field:
- a dict of field -> `str`, `int`, `float`, `bool`, a list of allowed values (a categorical),
  `typing.Literal[...]` (also a categorical) or `Optional[...]` of one of those;
- a JSON schema of an object (`{"type": "object", "properties": {...}}`);
- a pydantic model class or a TypedDict class.

The JSON schema goes to the API as `output_config.format`, so every answer is valid against it
by construction (the CLI checks it); the dtypes make the columns typed: string, Int64, float64,
boolean, category (over exactly the allowed values), object for anything nested.
"""
from __future__ import annotations

import typing
from dataclasses import dataclass

from .errors import ClaudeError

_SCALARS = {str: ("string", "string"), int: ("integer", "Int64"), float: ("number", "float64"),
            bool: ("boolean", "boolean")}
_JSON_DTYPES = {"string": "string", "integer": "Int64", "number": "float64", "boolean": "boolean"}


@dataclass
class OutputSchema:
    json_schema: dict           # an object schema, every field required, nothing else allowed
    dtypes: dict                # field -> pandas dtype (str or CategoricalDtype)

    @property
    def fields(self) -> list[str]:
        return list(self.dtypes)

    def output_format(self) -> dict:
        return {"type": "json_schema", "schema": self.json_schema}


def _bad(message: str) -> ClaudeError:
    return ClaudeError(message, status=400, type="invalid_request_error")


def _categorical(values) -> tuple[dict, object]:
    import pandas as pd
    values = list(values)
    if not values:
        raise _bad("A list of allowed values must not be empty.")
    if len(set(map(repr, values))) != len(values):
        raise _bad(f"The allowed values {values!r} repeat themselves.")
    kinds = {type(v) for v in values}
    if kinds <= {str}:
        schema = {"type": "string", "enum": values}
    elif kinds <= {int} or kinds <= {int, float}:
        schema = {"type": "number" if float in kinds else "integer", "enum": values}
    else:
        schema = {"enum": values}
    return schema, pd.CategoricalDtype(values)


def _from_python_type(name: str, kind) -> tuple[dict, object]:
    if isinstance(kind, (list, tuple)):
        return _categorical(kind)
    if isinstance(kind, type) and kind in _SCALARS:
        json_type, dtype = _SCALARS[kind]
        return {"type": json_type}, dtype
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin is typing.Literal:
        return _categorical(args)
    if origin is typing.Union or type(kind).__name__ == "UnionType":
        present = [a for a in args if a is not type(None)]
        if len(present) == 1:
            schema, dtype = _from_python_type(name, present[0])
            return {"anyOf": [schema, {"type": "null"}]}, dtype
    if origin in (list, tuple) or kind in (list, dict):
        return ({"type": "array"} if (origin or kind) in (list, tuple) else {"type": "object"}), "object"
    raise _bad(f"Field {name!r}: {kind!r} is not a type extract() can make a column of. Use str, "
               "int, float, bool, a list of allowed values or typing.Literal[...].")


def _from_json_property(prop: dict) -> object:
    """The dtype of one JSON schema property."""
    import pandas as pd
    if not isinstance(prop, dict):
        return "object"
    if "enum" in prop:
        return pd.CategoricalDtype([v for v in prop["enum"] if v is not None])
    if "const" in prop:
        return pd.CategoricalDtype([prop["const"]])
    kinds = prop.get("type")
    for option in prop.get("anyOf") or prop.get("oneOf") or []:
        if isinstance(option, dict) and option.get("type") != "null":
            return _from_json_property(option)
    if isinstance(kinds, list):
        kinds = next((k for k in kinds if k != "null"), None)
    return _JSON_DTYPES.get(kinds, "object")


def _strict(properties: dict) -> dict:
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


def _inline_refs(schema: dict) -> dict:
    """pydantic puts nested models and enums under $defs; give the CLI one flat schema."""
    defs = schema.get("$defs") or schema.get("definitions") or {}

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in defs:
                return walk({**defs[ref.rsplit("/", 1)[-1]],
                             **{k: v for k, v in node.items() if k != "$ref"}})
            return {k: walk(v) for k, v in node.items() if k not in ("$defs", "definitions")}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node
    return walk(schema)


def output_schema(schema) -> OutputSchema:
    """Any accepted schema (see the module doc) -> OutputSchema."""
    if isinstance(schema, type) and hasattr(schema, "model_json_schema"):        # pydantic
        return from_json_schema(_inline_refs(schema.model_json_schema()))
    if isinstance(schema, type) and issubclass(schema, dict) and hasattr(schema, "__annotations__"):
        hints = typing.get_type_hints(schema)                                    # TypedDict
        return output_schema(dict(hints))
    if not isinstance(schema, dict) or not schema:
        raise _bad("schema must be a dict of field -> type (str, int, float, bool, or a list of "
                   "allowed values), a JSON schema of an object, or a pydantic model / TypedDict.")
    if schema.get("type") == "object" and isinstance(schema.get("properties"), dict):
        return from_json_schema(_inline_refs(schema))
    properties, dtypes = {}, {}
    for name, kind in schema.items():
        if not isinstance(name, str) or not name:
            raise _bad(f"Field names must be non-empty strings, not {name!r}.")
        properties[name], dtypes[name] = _from_python_type(name, kind)
    return OutputSchema(_strict(properties), dtypes)


def from_json_schema(schema: dict) -> OutputSchema:
    properties = schema.get("properties") or {}
    if not properties:
        raise _bad("The JSON schema has no properties: extract() makes one column per property.")
    out = {k: v for k, v in schema.items() if k not in ("title", "description")}
    out.setdefault("required", list(properties))
    out.setdefault("additionalProperties", False)
    return OutputSchema(out, {name: _from_json_property(prop) for name, prop in properties.items()})


def typed_columns(values: list[dict | None], spec: OutputSchema, index):
    """Answers (one dict per row, None for a failed row) -> a DataFrame with the schema's dtypes."""
    import pandas as pd
    columns = {}
    for name, dtype in spec.dtypes.items():
        raw = [None if v is None else v.get(name) for v in values]
        if isinstance(dtype, pd.CategoricalDtype):
            raw = [v if v in dtype.categories else None for v in raw]
            columns[name] = pd.Series(pd.Categorical(raw, dtype=dtype), index=index)
        elif dtype == "object":
            columns[name] = pd.Series(raw, index=index, dtype="object")
        else:
            columns[name] = pd.Series(pd.array(raw, dtype=dtype if dtype != "float64" else "Float64"),
                                      index=index)
            if dtype == "float64":
                columns[name] = columns[name].astype("float64")
    return pd.DataFrame(columns, index=index)
