"""Schema: what the API agents' structured answers are checked with: a JSON-schema subset
(`conforms`) and a dict read from a reply, text or tool input (`as_json`)."""

from __future__ import annotations

import json


def conforms(obj, schema: dict) -> bool:
    """Whether obj satisfies the JSON-schema subset used here (type, properties, required,
    additionalProperties, items, minItems, maxItems, enum, const, anyOf, maxLength)."""
    if "anyOf" in schema:
        return any(conforms(obj, s) for s in schema["anyOf"])
    if "const" in schema and obj != schema["const"]:
        return False
    if "enum" in schema and obj not in schema["enum"]:
        return False
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(obj, dict) or any(k not in obj for k in schema.get("required", ())):
            return False
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is False and set(obj) - set(props):
            return False
        return all(conforms(obj[k], s) for k, s in props.items() if k in obj)
    if kind == "array":
        return (isinstance(obj, list) and schema.get("minItems", 0) <= len(obj) <= schema.get("maxItems", 10 ** 9)
                and all(conforms(o, schema.get("items", {})) for o in obj))
    if kind == "string":
        return isinstance(obj, str) and len(obj) <= schema.get("maxLength", 10 ** 9)
    if kind == "integer":
        return isinstance(obj, int) and not isinstance(obj, bool)
    if kind == "number":
        return isinstance(obj, (int, float)) and not isinstance(obj, bool)
    return True


def as_json(answer):
    """A dict from a reply: itself, or the JSON object in its text (control characters allowed)."""
    if isinstance(answer, dict):
        return answer
    text = str(answer or "").strip()
    for cand in (text, text[text.find("{"): text.rfind("}") + 1]):
        try:
            return json.loads(cand, strict=False)
        except ValueError:
            continue
    return None
