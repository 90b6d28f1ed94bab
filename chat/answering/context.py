"""Context assembly: which passages and which earlier turns go into a prompt.

Passages are taken in retrieval order until the token budget or the passage
cap is reached. The last CAIRN_HISTORY_TURNS turns go in verbatim (as real
user/assistant messages, citation markers removed since their numbers referred
to other passages); older turns are summarised into a line each, so a long
conversation costs a bounded number of tokens.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from chat.llm.events import ContextPassage, Message
from kb.search.tokenize import tokenize
from kb.selectors.search import SearchHit
from kb.sentences import sentence_spans

CITATION_MARKERS = re.compile(r"\s*\[(?:\d{1,3}|\?)(?:\s*[,;]\s*\d{1,3})*\]")
_FOLLOW_UP_OPENERS = frozenset(
    "and also but so then it its that this those these they them there same".split()
)
_FOLLOW_UP_PHRASES = ("what about", "how about", "and what", "and how", "what if")
_SUMMARY_CHARS = 160


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
        )
        for index, hit in enumerate(chosen, start=1)
    )
    return passages, tuple(chosen)


def strip_citations(text: str) -> str:
    return CITATION_MARKERS.sub("", text)


def _first_sentence(text: str) -> str:
    text = " ".join(strip_citations(text).split())
    spans = sentence_spans(text)
    sentence = text[spans[0][0] : spans[0][1]] if spans else text
    return sentence if len(sentence) <= _SUMMARY_CHARS else sentence[: _SUMMARY_CHARS - 1] + "…"


def history_messages(turns: Sequence[Turn], *, keep: int) -> tuple[tuple[Message, ...], str]:
    """(recent turns as messages, a summary of the older ones)."""
    recent = list(turns[-keep:]) if keep > 0 else []
    older = list(turns[: len(turns) - len(recent)])
    summary = "\n".join(
        f"- Asked: {_first_sentence(t.question)} Answered: {_first_sentence(t.answer)}"
        for t in older
    )
    messages: list[Message] = []
    for turn in recent:
        messages.append(Message("user", turn.question))
        messages.append(Message("assistant", strip_citations(turn.answer).strip()))
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
