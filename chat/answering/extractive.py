"""The local extractive answerer: quotes the passages' best sentences, with citations.

The default when no language model is configured and the last fallback of every
chain, so it needs no key, no network and no prompt: it reads the question and the
numbered passages from the request, scores every sentence of them
(``chat.answering.sentence_scoring``), quotes the few best in reading order, each
followed by its passage's ``[n]``, and says ``ABSTENTION_TEXT`` instead when even
the best sentence is not a confident answer. It streams word by word, like the
language models, so the UI and the gateway treat it like any other provider.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from chat.answering.sentence_scoring import (
    DEFAULT_WEIGHTS,
    ScoredCandidate,
    ScoringWeights,
    score_candidates,
    unmentioned_names,
)
from chat.answering.texts import ABSTENTION_TEXT
from chat.llm.errors import ProviderError
from chat.llm.events import CompletionRequest, ContextPassage, End, Event, Start, TextDelta, Usage
from chat.llm.providers.base import CallTimeouts
from kb.embeddings.base import EmbeddingError
from kb.embeddings.tokens import count_tokens

# A further sentence joins the answer only if it scores at least this share of the
# best one: the answer stays short and on the point.
RELATIVE_FLOOR = 0.7
# Two units sharing this share of their words say the same thing; quote one.
REDUNDANT_OVERLAP = 0.6
# Confidence is multiplied by this when the question names something (a product, a
# standard, a company) that no passage mentions.
UNMENTIONED_NAME_FACTOR = 0.5

_LIST_MARKER = re.compile(r"^(?:[-*+•◦▪‣–—]|\d{1,3}[.)]|\(\w{1,3}\))\s+")
_WORD_WITH_SPACE = re.compile(r"\S+\s*")


@dataclass(frozen=True)
class ExtractiveAnswer:
    """What the answerer decided, before streaming: the text and why."""

    text: str
    confidence: float
    sentences: tuple[ScoredCandidate, ...] = ()

    @property
    def abstained(self) -> bool:
        return not self.sentences


class ExtractiveAnswerer:
    """The ``local`` provider. Settings are read at call time, so one instance serves
    for the process; ``token_delay`` (seconds) and ``min_confidence`` override them
    (evaluation streams with no delay)."""

    name = "local"

    def __init__(
        self,
        *,
        token_delay: float | None = None,
        min_confidence: float | None = None,
        max_sentences: int | None = None,
        weights: ScoringWeights = DEFAULT_WEIGHTS,
    ) -> None:
        self.token_delay = token_delay
        self.min_confidence = min_confidence
        self.max_sentences = max_sentences
        self.weights = weights

    def stream(
        self, request: CompletionRequest, *, model: str, timeouts: CallTimeouts
    ) -> Iterator[Event]:
        """Start, the answer word by word, Usage (estimated), End.

        A generator: when the consumer stops iterating, it stops at the next word.
        """
        answer = self.answer(request.question, request.passages)
        yield Start("local", model)
        delay = self._token_delay()
        for index, word in enumerate(_WORD_WITH_SPACE.findall(answer.text)):
            if index and delay > 0:
                time.sleep(delay)
            yield TextDelta(word)
        yield Usage(
            input_tokens=count_tokens(request.question)
            + sum(count_tokens(passage.text) for passage in request.passages),
            output_tokens=count_tokens(answer.text),
            estimated=True,
        )
        yield End()

    def answer(self, question: str, passages: Sequence[ContextPassage]) -> ExtractiveAnswer:
        """Choose the sentences, or abstain. Raises ProviderError if embedding fails."""
        if not question.strip() or not passages:
            return ExtractiveAnswer(ABSTENTION_TEXT, 0.0)
        model_id = next(
            (p.embedding_model for p in passages if p.embedding_model),
            settings.CAIRN_EMBEDDING_MODEL,
        )
        try:
            scored = score_candidates(
                question,
                passages,
                model_id=model_id,
                question_vector=_question_vector(model_id, question),
                weights=self.weights,
            )
        except EmbeddingError as exc:
            raise ProviderError(
                f"could not embed the passages' sentences: {exc}",
                error_class="embedding_error",
                retryable=exc.transient,
            ) from exc
        if not scored:
            return ExtractiveAnswer(ABSTENTION_TEXT, 0.0)
        confidence = answer_confidence(scored[0], question, passages)
        if confidence < self._min_confidence():
            return ExtractiveAnswer(ABSTENTION_TEXT, confidence)
        chosen = select_sentences(scored, max_sentences=self._max_sentences())
        return ExtractiveAnswer(compose_answer(chosen), confidence, tuple(chosen))

    def _token_delay(self) -> float:
        if self.token_delay is not None:
            return self.token_delay
        return max(0, settings.CAIRN_EXTRACTIVE_TOKEN_DELAY_MS) / 1000

    def _min_confidence(self) -> float:
        if self.min_confidence is not None:
            return self.min_confidence
        return float(settings.CAIRN_EXTRACTIVE_MIN_CONFIDENCE)

    def _max_sentences(self) -> int:
        return max(1, self.max_sentences or settings.CAIRN_EXTRACTIVE_MAX_SENTENCES)


def _question_vector(model_id: str, question: str) -> np.ndarray:
    # Retrieval has just embedded the same question; this cache hands it back.
    from kb.selectors.search import query_embedding

    return np.asarray(query_embedding(model_id, question), dtype=np.float32)


def answer_confidence(
    best: ScoredCandidate, question: str, passages: Sequence[ContextPassage]
) -> float:
    """How sure the answerer is that the passages answer the question (0-1).

    The best unit's score, halved when the question names something the passages
    never mention: then they are at best about a neighbouring topic.
    """
    if unmentioned_names(question, passages):
        return best.score * UNMENTIONED_NAME_FACTOR
    return best.score


def select_sentences(
    scored: Sequence[ScoredCandidate], *, max_sentences: int
) -> list[ScoredCandidate]:
    """The best unit, plus up to ``max_sentences - 1`` others nearly as good that add
    something new, in reading order (passage number, then position)."""
    best = scored[0]
    chosen = [best]
    for candidate in scored[1:]:
        if len(chosen) >= max_sentences or candidate.score < best.score * RELATIVE_FLOOR:
            break
        if not any(_redundant(candidate, other) for other in chosen):
            chosen.append(candidate)
    return sorted(chosen, key=lambda s: (s.candidate.passage_number, s.candidate.position))


def _redundant(one: ScoredCandidate, other: ScoredCandidate) -> bool:
    if not one.terms or not other.terms:
        return one.candidate.text == other.candidate.text
    overlap = len(one.terms & other.terms) / min(len(one.terms), len(other.terms))
    return overlap >= REDUNDANT_OVERLAP


def compose_answer(chosen: Sequence[ScoredCandidate]) -> str:
    """Each quoted unit followed by its citation: "Text of the sentence. [2]"."""
    return " ".join(
        f"{quote_text(s.candidate.text)} [{s.candidate.passage_number}]" for s in chosen
    )


def quote_text(text: str) -> str:
    """A unit as it reads in an answer: list marker dropped, whitespace collapsed."""
    return " ".join(_LIST_MARKER.sub("", text).split())
