"""Scripted structured output for the recording upstream: when the CLI asks for its
StructuredOutput tool (how it carries `output_config.format`), answer with a tool call whose
input is valid against the tool's schema, chosen from the prompt."""
from __future__ import annotations

from tests.support.fake_upstream import Reply


def structured_schema(rec) -> dict | None:
    for tool in (rec.body or {}).get("tools") or []:
        if tool.get("name") == "StructuredOutput":
            return tool.get("input_schema") or {}
    return None


def value_for(schema: dict, text: str, name: str = ""):
    """A value valid against `schema`: an enum member named in `text` when there is one, true
    for a boolean when the text says "yes". Only the text's first paragraph counts (the
    accessor's hints after it name every label)."""
    text = text.split("\n\n")[0]
    if "enum" in schema:
        mentioned = [v for v in schema["enum"] if str(v).lower() in text.lower()]
        return mentioned[0] if mentioned else schema["enum"][0]
    for option in schema.get("anyOf") or []:
        if option.get("type") != "null":
            return value_for(option, text, name)
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties") or {}
        if not props:
            return {"answer": text[:40]}
        return {key: value_for(prop, text, key) for key, prop in props.items()}
    if kind == "integer":
        return len(text) % 5 + 1
    if kind == "number":
        return round(len(text) / 10, 1)
    if kind == "boolean":
        return "yes" in text.lower()
    if kind == "array":
        return []
    return f"{name} of {text[:30]}".strip()


def structured_reply(rec, choose=None) -> Reply | None:
    """The StructuredOutput call for a request that wants one (None otherwise). choose(text,
    schema) -> the value, defaults to `value_for`."""
    schema = structured_schema(rec)
    if schema is None:
        return None
    texts = rec.user_texts()
    text = texts[-1] if texts else ""
    value = (choose or value_for)(text, schema) if choose else value_for(schema, text)
    return Reply(blocks=[("tool_use", "StructuredOutput", value)], stop_reason="tool_use",
                 input_tokens=40, output_tokens=15)
