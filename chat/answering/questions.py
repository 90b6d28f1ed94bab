"""Input checks on a question before any work is done for it."""

from __future__ import annotations

import unicodedata

from django.conf import settings


class QuestionRejected(Exception):
    """The question cannot be answered as asked; the message says why, for people."""


def question_clean(text: str) -> str:
    """The question, normalised and checked: non-empty, not too long, no control characters.

    Raises QuestionRejected with a message fit to show the asker.
    """
    text = unicodedata.normalize("NFC", text or "")
    # Control characters (but not newlines and tabs) only ever come from pasted junk
    # or attempts to confuse the prompt; they carry no meaning in a question.
    text = "".join(
        ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs")
    ).strip()
    if not text:
        raise QuestionRejected("Please type a question.")
    limit = settings.CAIRN_MAX_QUESTION_CHARS
    if len(text) > limit:
        raise QuestionRejected(
            f"That question is {len(text):,} characters long; the limit is {limit:,}. "
            "Please shorten it to the part you need answered."
        )
    return text
