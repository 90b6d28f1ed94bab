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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from chat.answering.abstention import (
    abstention_features,
    abstention_model,
    answerable_probability,
)
from chat.answering.sentence_scoring import (
    CONFIDENCE,
    SELECTION,
    Blend,
    ScoredCandidate,
    content_terms,
    score_candidates,
    unmentioned_names,
)
from chat.answering.texts import ABSTENTION_TEXT
from kb.embeddings.base import EmbeddingError
from kb.embeddings.queries import query_embedding
from kb.embeddings.tokens import count_tokens
from kb.linear import LinearModel
from kb.units import full_stop, is_identifier, unit_quote
from llm.errors import ProviderError
from llm.events import CompletionRequest, ContextPassage, End, Event, Start, TextDelta, Usage
from llm.providers.base import CallTimeouts

# A further sentence joins the answer only if it scores at least this share of the
# best one: the answer stays short and on the point.
RELATIVE_FLOOR = 0.6
# Two units sharing this share of their words say the same thing; quote one.
REDUNDANT_OVERLAP = 0.6
# Confidence is multiplied by this when the question names something (a product, a
# standard, a company) that no passage mentions.
UNMENTIONED_NAME_FACTOR = 0.5
# Without fitted abstention weights: the hand-set blend's threshold of the first version.
UNFITTED_MIN_CONFIDENCE = 0.48

# At most this share of the call's time limit goes to pausing between words.
PACING_SHARE = 0.25

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
    local = True  # runs in this process: nothing leaves (llm.privacy)

    def __init__(
        self,
        *,
        token_delay: float | None = None,
        min_confidence: float | None = None,
        max_sentences: int | None = None,
        selection: Blend = SELECTION,
        confidence: Blend = CONFIDENCE,
        abstention: LinearModel | None | bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``abstention``: True for the shipped model (abstention_weights.json), a model
        of its own (fitting, evaluation), or False/None for the unfitted blend."""
        self._sleep = sleep
        self.token_delay = token_delay
        self.min_confidence = min_confidence
        self.max_sentences = max_sentences
        self.selection = selection
        self.confidence = confidence
        self._abstention = abstention

    def stream(
        self, request: CompletionRequest, *, model: str, timeouts: CallTimeouts
    ) -> Iterator[Event]:
        """Start, the answer word by word, Usage (estimated), End.

        A generator: when the consumer stops iterating, it stops at the next word.
        """
        answer = self.answer(request.question, request.passages)
        yield Start("local", model)
        words = _WORD_WITH_SPACE.findall(answer.text)
        # Pacing is for the eye; it must never be what makes the call time out.
        delay = min(self._token_delay(), timeouts.total * PACING_SHARE / max(1, len(words)))
        for index, word in enumerate(words):
            if index and delay > 0:
                self._sleep(delay)
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
                selection=self.selection,
                confidence=self.confidence,
            )
        except EmbeddingError as exc:
            raise ProviderError(
                f"could not embed the passages' sentences: {exc}",
                error_class="embedding_error",
                retryable=exc.transient,
            ) from exc
        if not scored:
            return ExtractiveAnswer(ABSTENTION_TEXT, 0.0)
        model = self.abstention_model()
        relevance = answer_confidence(scored, question, passages)
        if model is None:
            confidence = relevance
        else:
            confidence = answerable_probability(
                model, abstention_features(question, scored, passages)
            )
            # The model learnt from questions written against the very article they ask
            # about; one about something the documents never mention is outside what it
            # saw. The first version's relevance blend still catches those.
            if relevance < self._min_relevance():
                return ExtractiveAnswer(ABSTENTION_TEXT, min(confidence, relevance))
        if confidence < self._min_confidence(model):
            return ExtractiveAnswer(ABSTENTION_TEXT, confidence)
        chosen = select_sentences(scored, question, max_sentences=self._max_sentences())
        return ExtractiveAnswer(compose_answer(chosen, question), confidence, tuple(chosen))

    def _token_delay(self) -> float:
        if self.token_delay is not None:
            return self.token_delay
        return max(0, settings.CAIRN_EXTRACTIVE_TOKEN_DELAY_MS) / 1000

    def abstention_model(self) -> LinearModel | None:
        if self._abstention is True:
            return abstention_model()
        return self._abstention or None

    def _min_confidence(self, model: LinearModel | None) -> float:
        """The threshold given, else the setting, else the one fitted with the model."""
        if self.min_confidence is not None:
            return self.min_confidence
        configured = float(settings.CAIRN_EXTRACTIVE_MIN_CONFIDENCE)
        if configured > 0:
            return configured
        if model is not None:
            return float(model.meta["threshold"])
        return UNFITTED_MIN_CONFIDENCE

    def _min_relevance(self) -> float:
        if self.min_confidence is not None:  # a threshold given outright decides alone
            return 0.0
        return float(settings.CAIRN_EXTRACTIVE_MIN_RELEVANCE)

    def _max_sentences(self) -> int:
        return max(1, self.max_sentences or settings.CAIRN_EXTRACTIVE_MAX_SENTENCES)


def _question_vector(model_id: str, question: str) -> np.ndarray:
    # Retrieval has just embedded the same question; this cache hands it back.

    return np.asarray(query_embedding(model_id, question), dtype=np.float32)


def answer_confidence(
    scored: Sequence[ScoredCandidate], question: str, passages: Sequence[ContextPassage]
) -> float:
    """How sure the answerer is that the passages answer the question (0-1).

    The highest unit confidence, halved when the question names something the
    passages never mention: then they are at best about a neighbouring topic.
    """
    best = max(s.confidence for s in scored)
    if unmentioned_names(question, passages):
        return best * UNMENTIONED_NAME_FACTOR
    return best


def select_sentences(
    scored: Sequence[ScoredCandidate], question: str, *, max_sentences: int
) -> list[ScoredCandidate]:
    """The best unit, plus up to ``max_sentences - 1`` others nearly as good that add
    something new, in reading order (passage number, then position).

    A further unit must name the same numbers and codes of the question as the best
    one: for "LDG-409", the rows of LDG-401 and LDG-404 are neighbours, not answers.
    """
    best = scored[0]
    identifiers = {term for term in content_terms(question) if is_identifier(term)}
    required = identifiers & (best.terms | best.heading_terms)
    chosen = [best]
    for candidate in scored[1:]:
        if len(chosen) >= max_sentences or candidate.score < best.score * RELATIVE_FLOOR:
            break
        if not required <= candidate.terms | candidate.heading_terms:
            continue
        if not any(_redundant(candidate, other) for other in chosen):
            chosen.append(candidate)
    return sorted(chosen, key=lambda s: (s.candidate.passage_number, s.candidate.position))


def _redundant(one: ScoredCandidate, other: ScoredCandidate) -> bool:
    if not one.terms or not other.terms:
        return one.candidate.text == other.candidate.text
    overlap = len(one.terms & other.terms) / min(len(one.terms), len(other.terms))
    return overlap >= REDUNDANT_OVERLAP


def compose_answer(chosen: Sequence[ScoredCandidate], question: str) -> str:
    """Each quoted unit followed by its citation: "Text of the sentence. [2]".

    Every unit ends in a full stop, so that it reads as a sentence of its own and
    the citation check, which splits answers into sentences, checks each quote
    against its own passage ("Storage — Growth: 50 GB [2] Exports…" would be one).
    """
    asked = frozenset(content_terms(question))
    return " ".join(f"{full_stop(quote(s, asked))} [{s.candidate.passage_number}]" for s in chosen)


def quote(scored: ScoredCandidate, asked: frozenset[str]) -> str:
    """A unit as it reads in an answer.

    Whitespace (column gaps too) is collapsed; a table row names its columns; and a
    unit whose heading holds a number the question asks about ("Released April 21,
    2026" under "Version 4.3") is introduced by that heading. (kb.units.Unit.quoted_texts
    lists both forms, so that ingestion stores their vectors for the citation check.)
    """
    candidate = scored.candidate
    text = unit_quote(candidate.text, context=candidate.context, is_row=candidate.is_row)
    # Only numbers and codes are worth a prefix: "Version 4.3", not "Payment methods".
    needed = {term for term in asked & scored.heading_terms if is_identifier(term)}
    if needed and needed <= frozenset(content_terms(candidate.section)):
        text = f"{candidate.section} — {text}"
    return text
