"""Asking every golden question in every mode through chunk_search."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from kb.evaluation.golden import GoldenQuestion
from kb.evaluation.metrics import MetricsCollector, ModeReport, RetrievedChunk
from kb.models import Account, KnowledgeBase
from kb.selectors.search import SearchMode, chunk_search, query_embedding


def retrieval_evaluate(
    *,
    account: Account,
    knowledge_bases: Sequence[KnowledgeBase],
    questions: Sequence[GoldenQuestion],
    modes: Sequence[SearchMode],
    k: int = 10,
    on_progress: Callable[[], None] | None = None,
) -> list[ModeReport]:
    """Per-mode retrieval metrics.

    Question embeddings are computed first, so latencies are the search itself
    (both channels, fusion, loading rows), comparable across modes.
    """
    for model_id in {kb.embedding_model for kb in knowledge_bases}:
        for question in questions:
            query_embedding(model_id, question.question)
    collector = MetricsCollector(modes)
    for question in questions:
        for mode in modes:
            started = time.perf_counter()
            result = chunk_search(
                account=account, knowledge_bases=knowledge_bases, query=question.question,
                k=k, mode=mode,
            )  # fmt: skip
            latency_ms = (time.perf_counter() - started) * 1000
            chunks = [RetrievedChunk(h.chunk.text, h.chunk.document.source) for h in result.hits]
            collector.add(
                mode, question, chunks, nothing_relevant=result.nothing_relevant,
                latency_ms=latency_ms,
            )  # fmt: skip
        if on_progress:
            on_progress()
    return collector.reports()
