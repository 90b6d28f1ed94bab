"""Input checks on a question before any work is done for it."""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass

from django.conf import settings

from kb.embeddings.tokens import count_tokens
from kb.embeddings.usage import embedding_context
from kb.guard.injection import injection_scan

logger = logging.getLogger("cairn.guard")


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
    tokens, token_limit = count_tokens(text), settings.CAIRN_MAX_QUESTION_TOKENS
    if tokens > token_limit:
        raise QuestionRejected(
            f"That question is {tokens:,} tokens long; the limit is {token_limit:,}. "
            "Please shorten it to the part you need answered."
        )
    return text


@dataclass(frozen=True)
class QuestionGuard:
    injection_score: float | None  # None: the account does not check
    flagged: bool


INJECTION_REFUSAL = (
    "This question reads like an attempt to change how Cairn answers, so it was not sent. "
    "Please ask about the documents themselves."
)


def question_guard(text: str, *, action: str, account_id: int | None = None) -> QuestionGuard:
    """Run the prompt-injection detector as the account wants: ``block`` refuses a flagged
    question (QuestionRejected), ``flag`` lets it through marked for review, ``allow``
    does not check."""
    if action == "allow":
        return QuestionGuard(None, flagged=False)
    with embedding_context(account_id=account_id, feature="guard"):
        verdict = injection_scan(text)
    if verdict.injection:
        logger.warning(
            "question flagged as prompt injection (score %.2f: %s); action %s",
            verdict.score, ", ".join(verdict.reasons) or "model", action,
        )  # fmt: skip
        if action == "block":
            raise QuestionRejected(INJECTION_REFUSAL)
    return QuestionGuard(verdict.score, flagged=verdict.injection)
