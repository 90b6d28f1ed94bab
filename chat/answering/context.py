"""Context assembly: which passages and which earlier turns go into a prompt.

Passages are taken in retrieval order until the token budget or the passage
cap is reached. History has a token budget of its own, CAIRN_HISTORY_MAX_TOKENS,
that the verbatim turns and the summary share, so a conversation of any length
costs at most that many tokens: the newest turns, up to CAIRN_HISTORY_TURNS of
them, go in verbatim (as real user/assistant messages, citation markers removed
since their numbers referred to other passages) while they fit; the turns before
them, up to CAIRN_HISTORY_SUMMARY_TURNS, become a line each while those fit; the
rest is left out. A turn too long to go in verbatim is summarised instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings

from chat.answering.prompts import neutralise_delimiters
from kb.embeddings.tokens import count_tokens
from kb.search.tokenize import tokenize
from kb.selectors.search import SearchHit
from kb.sentences import sentence_spans
from llm.events import ContextPassage, Message

CITATION_MARKERS = re.compile(r"\s*\[(?:\d{1,3}|\?)(?:\s*[,;]\s*\d{1,3})*\]")
_FOLLOW_UP_OPENERS = frozenset(
    "and also but so then it its that this those these they them there same".split()
)
_FOLLOW_UP_PHRASES = ("what about", "how about", "and what", "and how", "what if")
_SUMMARY_CHARS = 160
# A summary line reads only the start of a turn: no need to split a long answer whole.
_SUMMARY_SCAN_CHARS = 2000
# Role markers and separators a chat API adds around each message, in tokens.
MESSAGE_OVERHEAD_TOKENS = 4


@dataclass(frozen=True)
class Turn:
    """One earlier exchange of the conversation."""

    question: str
    answer: str


@dataclass(frozen=True)
class AssembledContext:
    passages: tuple[ContextPassage, ...]
    hits: tuple[SearchHit, ...]  # the hit behind each passage, same order
    history: tuple[Message, ...]
    history_summary: str


def passages_select(
    hits: Sequence[SearchHit], *, max_passages: int, max_tokens: int, embedding_model: str
) -> tuple[tuple[ContextPassage, ...], tuple[SearchHit, ...]]:
    """The best hits that fit the budget, numbered from 1 in retrieval order.

    The first passage is always kept, even if alone it exceeds the budget: an
    answer from one long passage beats no answer.
    """
    chosen: list[SearchHit] = []
    used = 0
    for hit in hits:
        if len(chosen) >= max_passages:
            break
        cost = hit.chunk.token_count
        if chosen and used + cost > max_tokens:
            continue  # a shorter passage further down may still fit
        chosen.append(hit)
        used += cost
    passages = tuple(
        ContextPassage(
            number=index,
            text=hit.chunk.text,
            title=hit.chunk.document.title,
            heading_path=hit.chunk.heading_path,
            embedding_model=embedding_model,
            flags=tuple(hit.chunk.safety_flags),
            knowledge_base_id=hit.chunk.knowledge_base_id,
        )
        for index, hit in enumerate(chosen, start=1)
    )
    return passages, tuple(chosen)


def strip_citations(text: str) -> str:
    return CITATION_MARKERS.sub("", text)


def _first_sentence(text: str) -> str:
    text = " ".join(strip_citations(text[:_SUMMARY_SCAN_CHARS]).split())
    spans = sentence_spans(text)
    sentence = text[spans[0][0] : spans[0][1]] if spans else text
    return sentence if len(sentence) <= _SUMMARY_CHARS else sentence[: _SUMMARY_CHARS - 1] + "…"


def summary_line(turn: Turn) -> str:
    """One older turn as the prompt's summary shows it. It sits inside the user prompt,
    next to the passages, so it may not imitate a passage tag."""
    line = f"- Asked: {_first_sentence(turn.question)} Answered: {_first_sentence(turn.answer)}"
    return neutralise_delimiters(line)


def verbatim_texts(turn: Turn) -> tuple[str, str]:
    """A recent turn's (question, answer) as they are sent."""
    return turn.question, strip_citations(turn.answer).strip()


@dataclass(frozen=True)
class HistorySelection:
    """Which earlier turns reach the prompt, and in what form (both oldest first)."""

    verbatim: tuple[Turn, ...]
    summarised: tuple[Turn, ...]
    tokens: int  # what they cost in the prompt, at most the budget


def history_select(
    turns: Sequence[Turn],
    *,
    keep: int | None = None,
    summary_turns: int | None = None,
    max_tokens: int | None = None,
) -> HistorySelection:
    """The newest turns that fit the history budget: verbatim first, then summarised.

    Walks back from the newest turn and stops at the first that does not fit, so what
    the model reads is always an unbroken run of the latest turns. Work is bounded by
    ``keep + summary_turns`` turns, however long the conversation.
    """
    keep = settings.CAIRN_HISTORY_TURNS if keep is None else keep
    summary_turns = settings.CAIRN_HISTORY_SUMMARY_TURNS if summary_turns is None else summary_turns
    budget = settings.CAIRN_HISTORY_MAX_TOKENS if max_tokens is None else max_tokens
    left = budget
    index = len(turns) - 1
    verbatim: list[Turn] = []
    while index >= 0 and len(verbatim) < keep:
        question, answer = verbatim_texts(turns[index])
        cost = count_tokens(question) + count_tokens(answer) + 2 * MESSAGE_OVERHEAD_TOKENS
        if cost > left:
            break  # too long to send whole: it can still be summarised
        verbatim.append(turns[index])
        left -= cost
        index -= 1
    summarised: list[Turn] = []
    while index >= 0 and len(summarised) < summary_turns:
        cost = count_tokens(summary_line(turns[index])) + 1  # and its line break
        if cost > left:
            break
        summarised.append(turns[index])
        left -= cost
        index -= 1
    return HistorySelection(tuple(reversed(verbatim)), tuple(reversed(summarised)), budget - left)


def history_messages(
    turns: Sequence[Turn], *, keep: int, max_tokens: int | None = None
) -> tuple[tuple[Message, ...], str]:
    """(recent turns as messages, a summary of the older ones), within the history budget."""
    selection = history_select(turns, keep=keep, max_tokens=max_tokens)
    summary = "\n".join(summary_line(turn) for turn in selection.summarised)
    messages: list[Message] = []
    for turn in selection.verbatim:
        question, answer = verbatim_texts(turn)
        messages.append(Message("user", question))
        messages.append(Message("assistant", answer))
    return tuple(messages), summary


def retrieval_query(question: str, turns: Sequence[Turn]) -> str:
    """What to search for: the question, plus the previous one for a follow-up.

    "And how much is it per year?" retrieves nothing useful alone; with the
    question before it, it finds the pricing passage. A rule, not a model, so it
    costs nothing and never invents a question.
    """
    if not turns:
        return question
    terms = tokenize(question)
    opening = " ".join(terms[:2])
    follow_up = (
        len(terms) <= 5
        or (bool(terms) and terms[0] in _FOLLOW_UP_OPENERS)
        or opening.startswith(_FOLLOW_UP_PHRASES)
    )
    return f"{turns[-1].question}\n{question}" if follow_up else question
