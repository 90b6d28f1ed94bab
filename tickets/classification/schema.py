"""The output contract: the JSON a language model must reply with, and its check."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tickets.classification.outcome import SENTIMENTS, URGENCIES

# Models often wrap JSON in a Markdown fence even when told not to; the fence is not the
# content, so it is taken off before parsing (anything else around the object is not).
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL | re.IGNORECASE)


def classification_schema(categories: Sequence[str]) -> dict[str, Any]:
    """The JSON schema of a reply, with the account's categories as the category enum."""
    return {
        "type": "object",
        "properties": {
            "category": {"type": "string", "enum": list(categories)},
            "urgency": {"type": "string", "enum": list(URGENCIES)},
            "sentiment": {"type": "string", "enum": list(SENTIMENTS)},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["category", "urgency", "sentiment", "confidence"],
        "additionalProperties": False,
    }


@dataclass(frozen=True)
class ReplyCheck:
    value: dict[str, Any] | None  # the reply's object when it matches the schema
    error: str = ""  # why not, in words a model can act on


def reply_check(reply: str, categories: Sequence[str]) -> ReplyCheck:
    """Parse ``reply`` as JSON and validate it against the schema."""
    text = reply.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return ReplyCheck(None, f"the reply is not valid JSON ({exc.msg} at position {exc.pos})")
    error = schema_violation(value, classification_schema(categories))
    return ReplyCheck(None, error) if error else ReplyCheck(value)


def schema_violation(value: object, schema: dict[str, Any]) -> str:
    """The first way ``value`` breaks ``schema`` ("" if none). Checks what
    classification_schema says (an object; required keys, no others; string enums; a
    number within bounds), read from the schema itself so the two cannot drift. Written
    here rather than with a JSON Schema library: the project does not depend on one."""
    if not isinstance(value, dict):
        return f"the reply must be a JSON object, not {type(value).__name__}"
    missing = [key for key in schema["required"] if key not in value]
    if missing:
        return f"missing required properties: {', '.join(missing)}"
    extra = [key for key in value if key not in schema["properties"]]
    if extra and schema.get("additionalProperties") is False:
        return f"properties not allowed: {', '.join(extra)}"
    for key, rule in schema["properties"].items():
        item = value[key]
        if rule["type"] == "string":
            if not isinstance(item, str):
                return f"{key}: must be a string"
            if "enum" in rule and item not in rule["enum"]:
                return f"{key}: {item!r} is not one of {rule['enum']}"
        elif rule["type"] == "number":
            # A bool is not a number here, although Python says it is an int.
            if isinstance(item, bool) or not isinstance(item, int | float):
                return f"{key}: must be a number"
            if not rule.get("minimum", item) <= item <= rule.get("maximum", item):
                return f"{key}: {item} is not between {rule['minimum']} and {rule['maximum']}"
    return ""
