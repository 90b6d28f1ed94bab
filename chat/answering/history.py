"""Checks on conversation history a client writes itself (the OpenAI-compatible endpoint).

Such a client sends the whole conversation with every call, and every earlier message,
"assistant" ones included, is its own text: nothing Cairn said. So a request is capped
(messages, and tokens of the earlier messages), and what of it reaches the prompt
(chat.answering.context.history_select) goes through the prompt-injection detector as
the question does, with the account's action: ``block`` refuses the request, ``flag``
leaves the turn out of the prompt (logged for the admins), ``allow`` does not check.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from django.conf import settings

from chat.answering.context import Turn, history_select, summary_line, verbatim_texts
from kb.embeddings.tokens import count_tokens_batch
from kb.embeddings.usage import embedding_context
from kb.guard.injection import feature_matrix, injection_threshold, score_features

logger = logging.getLogger("cairn.guard")

# Counting tokens costs about 1.4 µs a character: text far longer than its token cap
# allows is refused on its length alone (English runs at about 4 characters a token).
HISTORY_CHARS_PER_TOKEN = 8
# The detector's embedding reads 256 word pieces: a long message is scanned in windows.
_SCAN_WINDOW_CHARS = 900


class HistoryRejected(Exception):
    """The request's history cannot be used; ``code`` is the API error code."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


def history_limit_check(*, message_count: int, texts: Sequence[str]) -> None:
    """Refuse a request with more messages than CAIRN_API_MAX_MESSAGES, or whose earlier
    user and assistant messages (``texts``) are longer than CAIRN_API_MAX_HISTORY_TOKENS."""
    limit = settings.CAIRN_API_MAX_MESSAGES
    if message_count > limit:
        raise HistoryRejected(
            f"This request sends {message_count:,} messages; the limit is {limit:,}. "
            "Send only the recent part of the conversation.",
            code="too_many_messages",
        )
    token_limit = settings.CAIRN_API_MAX_HISTORY_TOKENS
    chars = sum(len(text) for text in texts)
    if chars > token_limit * HISTORY_CHARS_PER_TOKEN:
        raise HistoryRejected(
            f"The earlier messages are {chars:,} characters long; the limit is "
            f"{token_limit * HISTORY_CHARS_PER_TOKEN:,} ({token_limit:,} tokens). "
            "Send only the recent part of the conversation.",
            code="history_too_long",
        )
    tokens = sum(count_tokens_batch(list(texts))) if texts else 0
    if tokens > token_limit:
        raise HistoryRejected(
            f"The earlier messages are {tokens:,} tokens long; the limit is {token_limit:,}. "
            "Send only the recent part of the conversation.",
            code="history_too_long",
        )


INJECTION_IN_HISTORY = (
    "An earlier message of this conversation reads like an attempt to change how Cairn "
    "answers, so the request was not sent. Leave it out and ask again."
)


def _windows(text: str) -> list[str]:
    """``text`` in pieces the detector's embedding reads whole, cut at spaces."""
    pieces: list[str] = []
    while len(text) > _SCAN_WINDOW_CHARS:
        cut = text.rfind(" ", _SCAN_WINDOW_CHARS // 2, _SCAN_WINDOW_CHARS)
        cut = cut if cut > 0 else _SCAN_WINDOW_CHARS
        pieces.append(text[:cut])
        text = text[cut:]
    if text.strip():
        pieces.append(text)
    return pieces


def _injected(texts: Sequence[str], *, account_id: int | None) -> list[float]:
    """The detector's highest score over each text's windows (one embedding batch)."""
    windows = [_windows(text) for text in texts]
    flat = [piece for pieces in windows for piece in pieces]
    if not flat:
        return [0.0] * len(texts)
    with embedding_context(account_id=account_id, feature="guard"):
        scores = score_features(feature_matrix(flat))
    scores = np.nan_to_num(scores, nan=0.0)
    result, start = [], 0
    for pieces in windows:
        result.append(float(scores[start : start + len(pieces)].max()) if pieces else 0.0)
        start += len(pieces)
    return result


def _prompt_texts(verbatim: Sequence[Turn], summarised: Sequence[Turn]) -> list[tuple[Turn, str]]:
    """Each text of the history as the prompt would carry it, with its turn."""
    texts = [(turn, text) for turn in verbatim for text in verbatim_texts(turn)]
    return texts + [(turn, summary_line(turn)) for turn in summarised]


def history_guard(
    turns: Sequence[Turn], *, action: str, account_id: int | None = None
) -> tuple[Turn, ...]:
    """The turns that may go into the prompt, checked as the account wants.

    Only what would reach the prompt is scanned, in the form it would have there (a
    verbatim turn whole, a summarised one as its summary line). Leaving a turn out can
    let an older one in, or move one from the summary to verbatim: that is scanned in
    turn, until what would be sent has all been checked. Returns those turns (oldest
    first), so later steps (retrieval's follow-up rule) see nothing unchecked either.
    Raises HistoryRejected (``invalid_history``) for a ``block`` account.
    """
    if action == "allow" or not turns:
        return tuple(turns)
    kept = list(turns)
    scores: dict[str, float] = {}
    threshold = injection_threshold()
    while True:
        selection = history_select(kept)
        reaching = _prompt_texts(selection.verbatim, selection.summarised)
        fresh = list(dict.fromkeys(text for _, text in reaching if text not in scores))
        if fresh:
            scores.update(zip(fresh, _injected(fresh, account_id=account_id), strict=True))
        flagged = {id(turn): scores[text] for turn, text in reaching if scores[text] >= threshold}
        if not flagged:  # what reaches the prompt, and only that: nothing unchecked goes on
            return selection.summarised + selection.verbatim
        logger.warning(
            "history turn(s) flagged as prompt injection (highest score %.2f); action %s",
            max(flagged.values()), action,
        )  # fmt: skip
        if action == "block":
            raise HistoryRejected(INJECTION_IN_HISTORY, code="invalid_history")
        # Each round leaves out at least one turn, so this ends.
        kept = [turn for turn in kept if id(turn) not in flagged]
