"""The output contract: which replies pass, and what a correction is told."""

from __future__ import annotations

import json

import pytest

from tickets.classification.schema import reply_check

CATEGORIES = ["billing", "technical", "account", "other"]
GOOD = {"category": "billing", "urgency": "high", "sentiment": "negative", "confidence": 0.9}


def test_a_reply_matching_the_schema_passes_even_in_a_markdown_fence() -> None:
    assert reply_check(json.dumps(GOOD), CATEGORIES).value == GOOD
    assert reply_check(f"```json\n{json.dumps(GOOD)}\n```", CATEGORIES).value == GOOD


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        ("The category is billing.", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({**GOOD, "category": "refunds"}), "'refunds' is not one of"),
        (json.dumps({**GOOD, "urgency": "critical"}), "urgency"),
        (json.dumps({**GOOD, "sentiment": 3}), "sentiment: must be a string"),
        (json.dumps({**GOOD, "confidence": 1.5}), "not between 0 and 1"),
        (json.dumps({**GOOD, "confidence": True}), "confidence: must be a number"),
        (json.dumps({"category": "billing"}), "missing required properties"),
        (json.dumps({**GOOD, "reason": "double charge"}), "not allowed: reason"),
    ],
)
def test_an_off_schema_reply_fails_with_a_reason(reply: str, said: str) -> None:
    check = reply_check(reply, CATEGORIES)

    assert check.value is None and said in check.error


def test_the_category_enum_is_the_accounts() -> None:
    reply = json.dumps({**GOOD, "category": "shipping"})

    assert reply_check(reply, ["shipping", "other"]).value is not None
    assert reply_check(reply, CATEGORIES).value is None
