"""Retrieval metrics over ranked chunks: hit@k, MRR@k, nDCG@k (source level), latency.

A retrieved chunk is a *hit* for a question when its text contains one of the
expected answer strings (case-insensitive, whitespace-normalised) or it comes
from one of the expected source documents. That document-level hit is lenient (any
chunk of an eight-document set's right document counts), so for questions that list
``answers`` the report also gives **answer hit@k**: the share whose top k chunks
contain a gold answer string itself.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from kb.evaluation.golden import GoldenQuestion


@dataclass(frozen=True)
class RetrievedChunk:
    text: str
    source: str  # the document's source (file name or path)


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def _source_matches(source: str, expected: Sequence[str]) -> bool:
    name = source.rsplit("/", 1)[-1]
    return source in expected or name in expected


def contains_answer(chunk: RetrievedChunk, question: GoldenQuestion) -> bool:
    text = _norm(chunk.text)
    return any(_norm(answer) in text for answer in question.answers)


def is_hit(chunk: RetrievedChunk, question: GoldenQuestion) -> bool:
    return contains_answer(chunk, question) or _source_matches(chunk.source, question.sources)


def first_answer_rank(
    chunks: Sequence[RetrievedChunk], question: GoldenQuestion, k: int
) -> int | None:
    for rank, chunk in enumerate(chunks[:k], start=1):
        if contains_answer(chunk, question):
            return rank
    return None


def first_hit_rank(
    chunks: Sequence[RetrievedChunk], question: GoldenQuestion, k: int
) -> int | None:
    for rank, chunk in enumerate(chunks[:k], start=1):
        if is_hit(chunk, question):
            return rank
    return None


def ndcg_at_k(chunks: Sequence[RetrievedChunk], question: GoldenQuestion, k: int) -> float | None:
    """Source-level nDCG: each expected source counts once, at its first rank."""
    if not question.sources:
        return None
    seen: set[str] = set()
    dcg = 0.0
    for rank, chunk in enumerate(chunks[:k], start=1):
        name = chunk.source.rsplit("/", 1)[-1]
        key = chunk.source if chunk.source in question.sources else name
        if key in question.sources and key not in seen:
            seen.add(key)
            dcg += 1.0 / math.log2(rank + 1)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(question.sources), k) + 1))
    return dcg / ideal


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


@dataclass
class ModeReport:
    mode: str
    questions: int = 0
    hit_at_1: float = 0.0
    hit_at_5: float = 0.0
    hit_at_10: float = 0.0
    mrr_at_10: float = 0.0
    ndcg_at_10: float | None = None
    answer_questions: int = 0  # answerable questions that list answer strings
    answer_hit_at_1: float | None = None
    answer_hit_at_5: float | None = None
    answer_hit_at_10: float | None = None
    latency_p50_ms: float = 0.0
    latency_p95_ms: float = 0.0
    unanswerable: int = 0
    unanswerable_nothing_relevant: float | None = None  # share flagged "nothing relevant"
    misses: list[str] = field(default_factory=list)  # answerable questions not hit in 10

    def as_dict(self) -> dict[str, object]:
        return {key: value for key, value in self.__dict__.items()}


@dataclass
class _Accumulator:
    ranks: list[int | None] = field(default_factory=list)
    answer_ranks: list[int | None] = field(default_factory=list)
    ndcgs: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    unanswerable_flags: list[bool] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)

    def add_answerable(
        self, question: GoldenQuestion, chunks: Sequence[RetrievedChunk], latency_ms: float
    ) -> None:
        rank = first_hit_rank(chunks, question, 10)
        self.ranks.append(rank)
        if rank is None:
            self.misses.append(question.question)
        if question.answers:
            self.answer_ranks.append(first_answer_rank(chunks, question, 10))
        ndcg = ndcg_at_k(chunks, question, 10)
        if ndcg is not None:
            self.ndcgs.append(ndcg)
        self.latencies.append(latency_ms)

    def add_unanswerable(self, nothing_relevant: bool, latency_ms: float) -> None:
        self.unanswerable_flags.append(nothing_relevant)
        self.latencies.append(latency_ms)

    def report(self, mode: str) -> ModeReport:
        n = len(self.ranks)

        def share(k: int) -> float:
            return sum(1 for r in self.ranks if r is not None and r <= k) / n if n else 0.0

        def answer_share(k: int) -> float | None:
            ranks = self.answer_ranks
            if not ranks:
                return None
            return sum(1 for r in ranks if r is not None and r <= k) / len(ranks)

        flags = self.unanswerable_flags
        return ModeReport(
            mode=mode,
            questions=n,
            hit_at_1=share(1),
            hit_at_5=share(5),
            hit_at_10=share(10),
            mrr_at_10=sum(1 / r for r in self.ranks if r is not None) / n if n else 0.0,
            ndcg_at_10=statistics.fmean(self.ndcgs) if self.ndcgs else None,
            answer_questions=len(self.answer_ranks),
            answer_hit_at_1=answer_share(1),
            answer_hit_at_5=answer_share(5),
            answer_hit_at_10=answer_share(10),
            latency_p50_ms=percentile(self.latencies, 50),
            latency_p95_ms=percentile(self.latencies, 95),
            unanswerable=len(flags),
            unanswerable_nothing_relevant=sum(flags) / len(flags) if flags else None,
            misses=self.misses,
        )


class MetricsCollector:
    """Accumulates per-mode results as questions are asked."""

    def __init__(self, modes: Sequence[str]) -> None:
        self._by_mode = {mode: _Accumulator() for mode in modes}

    def add(
        self,
        mode: str,
        question: GoldenQuestion,
        chunks: Sequence[RetrievedChunk],
        *,
        nothing_relevant: bool,
        latency_ms: float,
    ) -> None:
        accumulator = self._by_mode[mode]
        if question.answerable:
            accumulator.add_answerable(question, chunks, latency_ms)
        else:
            accumulator.add_unanswerable(nothing_relevant, latency_ms)

    def reports(self) -> list[ModeReport]:
        return [acc.report(mode) for mode, acc in self._by_mode.items()]
