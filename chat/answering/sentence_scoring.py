"""Which sentences of the retrieved passages answer the question, and how surely.

The extractive answerer has no language model: it can only quote. So the work is
(1) cutting passages into quotable units — sentences, list items, table rows —
(2) scoring each against the question, and (3) deciding whether the best one is
an answer at all. The signals, because each fails alone:

- **meaning**: cosine similarity of question and unit embeddings finds paraphrases
  that share no words ("auditors" for "Viewer seats");
- **lift**: how far a unit's similarity stands out from the median unit of the
  passages. Every passage retrieved for a question is similar to it, answerable or
  not; an answer is the unit that stands out from its neighbours. This is the
  signal that best tells "answered" from "merely on the topic";
- **words**: IDF-weighted coverage of the question's content words catches exact
  facts the embedding blurs (error codes, plan names, numbers);
- **answer type**: "how many / when" wants a number, and a unit without one is
  rarely the answer;
- **retrieval rank** of the unit's passage, a small prior.

Two blends of them: ``SELECTION`` orders units for quoting, ``CONFIDENCE`` decides
whether to quote at all (with ``unmentioned_names``: a question naming something no
passage mentions is not answered by them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from kb.embeddings.texts import texts_embed
from kb.search.terms import QUESTION_STOP_WORDS, content_terms, stem
from kb.search.tokenize import tokenize
from kb.units import chunk_units, text_terms
from llm.events import ContextPassage

# How much more a question term with digits weighs than a word.
NUMBER_WEIGHT = 2.0


@dataclass(frozen=True)
class Candidate:
    """A quotable unit of one passage.

    ``text`` is what the answer quotes; ``context`` is what the unit needs to be
    understood but does not say itself (a table's header row, the lead-in sentence
    of a list); ``section`` is the innermost heading it sits under.
    """

    passage_number: int
    passage_rank: int  # 0 for the passage retrieval ranked first
    position: int  # order within the passage
    text: str
    context: str = ""
    is_row: bool = False
    section: str = ""

    @property
    def scoring_text(self) -> str:
        return f"{self.context}\n{self.text}" if self.context else self.text


# --- cutting passages into units ----------------------------------------------------


def candidate_sentences(passages: Sequence[ContextPassage]) -> list[Candidate]:
    """Every quotable unit of every passage, in passage order, headings left out."""
    return [
        Candidate(
            passage.number,
            rank,
            unit.position,
            unit.text,
            unit.context,
            unit.is_row,
            unit.section,
        )  # fmt: skip
        for rank, passage in enumerate(passages)
        for unit in chunk_units(
            passage.text, title=passage.title, heading_path=passage.heading_path
        )
    ]


# --- words --------------------------------------------------------------------------


def term_weights(question: Sequence[str], units: Sequence[frozenset[str]]) -> dict[str, float]:
    """Inverse document frequency of each question term over the candidate units.

    A term in every unit ("ledgerly") tells nothing; a term in none of them keeps the
    highest weight, so a question whose key word the passages never mention cannot
    be well covered. Numbers and codes ("503", "v1", "4") weigh double: embeddings
    barely tell "LDG-503" from "LDG-500", so words must.
    """
    count = len(units)
    return {
        term: math.log(1.0 + (count + 1) / (1 + sum(term in unit for unit in units)))
        * (NUMBER_WEIGHT if any(char.isdigit() for char in term) else 1.0)
        for term in set(question)
    }


def keyword_coverage(weights: dict[str, float], unit: frozenset[str]) -> float:
    """Share of the question's term weight that the unit contains (0-1)."""
    total = sum(weights.values())
    if total == 0:
        return 0.0
    return sum(weight for term, weight in weights.items() if term in unit) / total


# --- meaning ------------------------------------------------------------------------


def embed_texts(
    model_id: str, texts: Sequence[str], *, knowledge_base_id: Sequence[int | None] | None = None
) -> npt.NDArray[np.float32]:
    """Unit embeddings, shared with the reranker: from this process's memory, else those
    stored for the passages' knowledge bases (kb.embeddings.texts), else computed."""
    return texts_embed(model_id, texts, knowledge_base_id=knowledge_base_id)


def semantic_text(candidate: Candidate) -> str:
    """What is embedded for a unit (kb.units.Unit.semantic_text)."""
    if candidate.section:
        return f"{candidate.section}: {candidate.scoring_text}"
    return candidate.scoring_text


# --- answer type --------------------------------------------------------------------

# Questions asking for an amount, a duration, a date or a count.
_QUANTITY_QUESTION = re.compile(
    r"\b(?:how (?:many|much|long|often|far|soon|quickly|big|large|old)|when|what time"
    r"|(?:what|which) (?:day|date|year|month|percentage|price|size))\b",
    re.IGNORECASE,
)
_QUANTITY = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty"
    r"|thirty|hundred|thousand|once|twice|hourly|daily|weekly|monthly|annually|yearly"
    r"|immediately|instantly)\b",
    re.IGNORECASE,
)


def expects_quantity(question: str) -> bool:
    """Whether the question asks for a number, an amount, a time or a date."""
    return bool(_QUANTITY_QUESTION.search(question))


def states_quantity(text: str) -> bool:
    return bool(_QUANTITY.search(text))


# --- names the passages never mention -----------------------------------------------

_NAME = re.compile(r"[^\W_][\w.'’-]*")


def unmentioned_names(question: str, passages: Sequence[ContextPassage]) -> list[str]:
    """Proper names and acronyms of the question ("HIPAA", "QuickBooks") that appear
    nowhere in the passages.

    A question about something the passages never name cannot be answered from them,
    however close the rest of its wording comes; paraphrase, by contrast, changes
    ordinary words and rarely a name. Words at the start of a sentence are skipped
    (their capital is grammar, not a name).
    """
    present: set[str] = set()
    for passage in passages:
        present.update(_stems(f"{passage.title} {passage.heading_path} {passage.text}"))
    names: list[str] = []
    for sentence in re.split(r"(?<=[.?!])\s+", question.strip()):
        for word in _NAME.findall(sentence)[1:]:
            if not any(char.isupper() for char in word):
                continue
            terms = [stem(t) for t in tokenize(word, stop_words=QUESTION_STOP_WORDS)]
            if terms and len(word) > 1 and not all(term in present for term in terms):
                names.append(word)
    return names


@lru_cache(maxsize=2048)
def _stems(text: str) -> frozenset[str]:
    """Every word of a passage, stemmed; remembered, as the same passages come back."""
    return frozenset(stem(term) for term in tokenize(text))


# --- scoring ------------------------------------------------------------------------


@dataclass(frozen=True)
class Signals:
    """What is known about one unit, each on a 0-1 scale."""

    similarity: float  # question-unit cosine similarity, rescaled by SignalScales
    lift: float  # how far the unit stands out from the passages' other units (0: not at all)
    coverage: float  # IDF-weighted share of the question's words in the unit (or its headings)
    rank_prior: float  # 1 / (1 + retrieval rank of the unit's passage)
    quantity_missing: bool  # a "how many / when" question, and the unit states no number


@dataclass(frozen=True)
class Blend:
    """How signals combine into one 0-1 score; weights are shares of the whole."""

    similarity: float
    lift: float
    coverage: float
    rank_prior: float
    missing_quantity: float  # subtracted when ``quantity_missing``

    def score(self, signals: Signals) -> float:
        value = (
            self.similarity * signals.similarity
            + self.lift * signals.lift
            + self.coverage * signals.coverage
            + self.rank_prior * signals.rank_prior
        )
        if signals.quantity_missing:
            value -= self.missing_quantity
        return min(1.0, max(0.0, value))


# Choosing what to quote: a unit that is close in meaning *and* holds the question's
# words is the answer; similarity alone prefers fluent neighbours, words alone prefer
# sentences that merely repeat the question. Tuned on the demo golden set.
SELECTION = Blend(similarity=0.3, lift=0.3, coverage=0.3, rank_prior=0.1, missing_quantity=0.15)
# Deciding whether to answer at all: only how far the best unit stands out from the rest
# tells an answer from text that is merely on the topic (every passage retrieved for a
# question is similar to it, answerable or not). Tuned on the demo golden set.
CONFIDENCE = Blend(similarity=0.0, lift=0.7, coverage=0.2, rank_prior=0.1, missing_quantity=0.15)


@dataclass(frozen=True)
class SignalScales:
    """Where the raw measurements sit for MiniLM on short sentences."""

    similarity_floor: float = 0.15  # cosine similarity of unrelated English text: 0
    similarity_ceiling: float = 0.85  # of a paraphrase: 1
    lift_ceiling: float = 0.4  # a unit this far above the background: 1
    background_prior: float = 0.25  # similarity of an off-topic unit, when units are few
    background_weight: float = 5.0  # how many units that prior counts as
    heading_words: float = 0.5  # a question word only in the unit's headings counts this much


SCALES = SignalScales()


@dataclass(frozen=True)
class ScoredCandidate:
    candidate: Candidate
    score: float  # SELECTION blend: how well this unit answers the question
    confidence: float  # CONFIDENCE blend: how surely it is an answer at all
    signals: Signals
    terms: frozenset[str]  # the unit's content terms (stemmed)
    heading_terms: frozenset[str]  # its passage's heading and title terms, less ``terms``


def background_similarity(similarities: npt.NDArray[np.float64], scales: SignalScales) -> float:
    """What a unit of these passages that does not answer the question scores.

    The median unit of six retrieved passages is on the topic but not the answer, so
    an answer has to stand out from it: a question the passages do not answer finds
    many units about as similar as its best one. Few units make a poor median, so it
    is pulled towards a fixed prior, as if ``background_weight`` more units scored that.
    """
    count = len(similarities)
    median = float(np.median(similarities)) if count else scales.background_prior
    return (count * median + scales.background_weight * scales.background_prior) / (
        count + scales.background_weight
    )


def _unit_scale(value: float, low: float, high: float) -> float:
    return min(1.0, max(0.0, (value - low) / (high - low)))


def score_candidates(
    question: str,
    passages: Sequence[ContextPassage],
    *,
    model_id: str,
    question_vector: npt.NDArray[np.floating],
    selection: Blend = SELECTION,
    confidence: Blend = CONFIDENCE,
    scales: SignalScales = SCALES,
) -> list[ScoredCandidate]:
    """Every unit of the passages with its scores, the best answer first."""
    candidates = candidate_sentences(passages)
    if not candidates:
        return []
    heading_of = {
        passage.number: text_terms(f"{passage.title} {passage.heading_path}")
        for passage in passages
    }
    own = [text_terms(c.scoring_text) for c in candidates]
    headings = [heading_of[c.passage_number] for c in candidates]
    idf = term_weights(content_terms(question), own)
    owner_of = {passage.number: passage.knowledge_base_id for passage in passages}
    vectors = embed_texts(
        model_id,
        [semantic_text(c) for c in candidates],
        knowledge_base_id=[owner_of[c.passage_number] for c in candidates],
    )
    similarities = cosine_similarities(question_vector, vectors)
    background = background_similarity(similarities, scales)
    wants_quantity = expects_quantity(question)
    scored = []
    for candidate, terms, heading, similarity in zip(
        candidates, own, headings, similarities, strict=True
    ):
        signals = Signals(
            similarity=_unit_scale(
                float(similarity), scales.similarity_floor, scales.similarity_ceiling
            ),
            lift=_unit_scale(float(similarity) - background, 0.0, scales.lift_ceiling),
            coverage=min(
                1.0,
                keyword_coverage(idf, terms)
                + scales.heading_words * keyword_coverage(idf, heading - terms),
            ),
            rank_prior=1.0 / (1 + candidate.passage_rank),
            quantity_missing=wants_quantity and not states_quantity(candidate.text),
        )
        scored.append(
            ScoredCandidate(
                candidate,
                selection.score(signals),
                confidence.score(signals),
                signals,
                terms,
                heading - terms,
            )
        )
    scored.sort(key=lambda s: (-s.score, s.candidate.passage_rank, s.candidate.position))
    return scored


def cosine_similarities(
    question_vector: npt.NDArray[np.floating], unit_vectors: npt.NDArray[np.floating]
) -> npt.NDArray[np.float64]:
    """Cosine similarity of each unit with the question (vectors are L2-normalised)."""
    if len(unit_vectors) == 0:
        return np.zeros(0)
    return np.asarray(unit_vectors @ np.asarray(question_vector), dtype=np.float64)
