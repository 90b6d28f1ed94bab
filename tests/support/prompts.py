"""Reading Cairn's answer prompt the way a fake model does, to cite what it was given."""

from __future__ import annotations

import re
from typing import Any

_PASSAGE = re.compile(r'<passage id="(\d+)"(?:[^>"]|"[^"]*")*>\n(.*?)\n</passage>', re.DOTALL)


def prompt_passages(body: dict[str, Any]) -> dict[int, str]:
    """The numbered passages of a Chat Completions request body's last user message."""
    prompt = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
    return {int(number): text for number, text in _PASSAGE.findall(prompt)}


def passage_number(body: dict[str, Any], phrase: str) -> int:
    """The [n] of the (first) passage given to the model that contains ``phrase``."""
    for number, text in sorted(prompt_passages(body).items()):
        if phrase.lower() in text.lower():
            return number
    raise AssertionError(f"no passage given to the model contains {phrase!r}")
