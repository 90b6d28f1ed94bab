"""chunk_search: the one retrieval entry point for the chat, the API and evaluation.

Hybrid by default: the vector channel (HNSW cosine in PostgreSQL) and the
keyword channel (exact BM25 over the shared index in PostgreSQL) each propose
candidates within the asker's account and knowledge bases, and reciprocal rank fusion orders them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from django.conf import settings

from kb.embeddings.queries import query_embedding
from kb.embeddings.usage import embedding_context
from kb.linear import LinearModel
from kb.models import Account, Chunk, KnowledgeBase
from kb.search.fusion import RankedHit, reciprocal_rank_fusion
from kb.search.keyword import keyword_search
from kb.search.rerank import (
    CandidateText,
    rerank_features,
    rerank_model,
    rerank_order,
)
from kb.selectors.chunks import chunk_vector_neighbours

SearchMode = Literal["hybrid", "vector", "keyword"]
MODES: tuple[SearchMode, ...] = ("hybrid", "vector", "keyword")


@dataclass(frozen=True)
class SearchHit:
    chunk: Chunk  # with .document loaded
    fused_score: float
    vector_rank: int | None = None
    vector_similarity: float | None = None  # cosine similarity, 1 = same direction
    keyword_rank: int | None = None
    keyword_score: float | None = None  # BM25


@dataclass(frozen=True)
class SearchResult:
    hits: list[SearchHit]
    nothing_relevant: bool  # no hit clears the relevance floor
    timings_ms: dict[str, float] = field(default_factory=dict)


def _vector_channel(
    account: Account, knowledge_bases: Sequence[KnowledgeBase], query: str, depth: int
) -> list[RankedHit]:
    with embedding_context(account_id=account.pk, feature="query"):
        return _vector_hits(account, knowledge_bases, query, depth)


def _vector_hits(
    account: Account, knowledge_bases: Sequence[KnowledgeBase], query: str, depth: int
) -> list[RankedHit]:
    by_model: dict[str, list[KnowledgeBase]] = {}
    for knowledge_base in knowledge_bases:
        by_model.setdefault(knowledge_base.embedding_model, []).append(knowledge_base)
    hits: list[RankedHit] = []
    for model_id, group in by_model.items():
        neighbours = chunk_vector_neighbours(
            account=account,
            knowledge_bases=group,
            embedding=query_embedding(model_id, query),
            k=depth,
            ef_search=max(settings.CAIRN_HNSW_EF_SEARCH, depth),
        )
        hits.extend(RankedHit(pk, 1.0 - distance) for pk, distance in neighbours)
    hits.sort(key=lambda hit: (-hit.score, hit.chunk_id))
    return hits[:depth]


def _reranker(
    mode: SearchMode, knowledge_bases: Sequence[KnowledgeBase], wanted: bool | None
) -> LinearModel | None:
    """The reranker for this search, if it applies: hybrid mode, switched on, fitted,
    and one embedding model across the knowledge bases (unit vectors must compare)."""
    if mode != "hybrid" or not (settings.CAIRN_SEARCH_RERANK if wanted is None else wanted):
        return None
    if len({kb.embedding_model for kb in knowledge_bases}) != 1:
        return None
    return rerank_model()


def _reranked(
    model: LinearModel, query: str, embedding_model: str, hits: list[SearchHit]
) -> list[SearchHit]:
    rows = rerank_features(
        question=query,
        question_vector=np.asarray(query_embedding(embedding_model, query), dtype=np.float32),
        hits=hits,
        texts=[hit_text(hit) for hit in hits],
        embedding_model=embedding_model,
    )
    return [hits[i] for i in rerank_order(model, rows)]


# The fields chunk_search loads for each hit (SearchHit.chunk and its .document).
HIT_CHUNK_FIELDS = (
    "id", "document", "account", "knowledge_base", "document_version", "ordinal", "text",
    "heading_path", "char_start", "char_end", "page", "token_count", "embedding",
    "safety_flags", "injection_score",
)  # fmt: skip
HIT_DOCUMENT_FIELDS = ("id", "account", "knowledge_base", "title", "source", "version")


def hit_text(hit: SearchHit) -> CandidateText:
    chunk = hit.chunk
    return CandidateText(
        chunk.text,
        chunk.document.title,
        chunk.heading_path,
        None if chunk.embedding is None else np.asarray(chunk.embedding, dtype=np.float32),
        chunk.knowledge_base_id,
    )


def chunk_search(
    *,
    account: Account,
    knowledge_bases: Sequence[KnowledgeBase],
    query: str,
    k: int = 10,
    mode: SearchMode = "hybrid",
    candidates: int | None = None,
    rrf_k: int | None = None,
    weights: dict[str, float] | None = None,
    min_similarity: float | None = None,
    rerank: bool | None = None,
) -> SearchResult:
    """The ``k`` chunks of ``account``'s ``knowledge_bases`` that best answer ``query``.

    Knowledge bases of other accounts are ignored, whatever the caller passes.
    ``nothing_relevant`` is true when no hit's cosine similarity reaches
    ``min_similarity`` (keyword mode: when nothing matched at all). Hybrid results are
    reranked sentence by sentence (kb.search.rerank) unless ``rerank`` (default:
    CAIRN_SEARCH_RERANK) is off.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    scoped = [kb for kb in knowledge_bases if kb.account_id == account.pk]
    if not scoped or not query.strip():
        return SearchResult([], nothing_relevant=True)
    depth = max(candidates or settings.CAIRN_SEARCH_CANDIDATES, k)
    floor = settings.CAIRN_SEARCH_MIN_SIMILARITY if min_similarity is None else min_similarity
    timings: dict[str, float] = {}
    channels: dict[str, list[RankedHit]] = {}
    if mode in ("hybrid", "vector"):
        started = time.perf_counter()
        channels["vector"] = _vector_channel(account, scoped, query, depth)
        timings["vector"] = (time.perf_counter() - started) * 1000
    if mode in ("hybrid", "keyword"):
        started = time.perf_counter()
        bm25 = keyword_search(
            account_id=account.pk,
            knowledge_base_ids=[kb.pk for kb in scoped],
            query=query,
            k=depth,
        )
        channels["keyword"] = [RankedHit(hit.chunk_id, hit.score) for hit in bm25]
        timings["keyword"] = (time.perf_counter() - started) * 1000
    fused = reciprocal_rank_fusion(channels, k=rrf_k or settings.CAIRN_RRF_K, weights=weights)
    model = _reranker(mode, scoped, rerank)
    pool = max(k, settings.CAIRN_RERANK_POOL) if model is not None else k
    started = time.perf_counter()
    wanted = [hit.chunk_id for hit in fused[: pool * 2]]  # spare rows for chunks deleted meanwhile
    # Re-read under the tenant filter: the rows returned are live and the asker's own.
    # Only what hits are read for (chat context and citations, the API, evaluation, the
    # reranker's chunk.embedding): not the document's parsed text, nor the re-embedding
    # vector or keyword columns. A field left out would cost a query per hit.
    rows = (
        Chunk.objects.filter(pk__in=wanted, account=account)
        .select_related("document")
        .only(*HIT_CHUNK_FIELDS, *(f"document__{name}" for name in HIT_DOCUMENT_FIELDS))
    )
    by_id = {chunk.pk: chunk for chunk in rows}
    timings["load"] = (time.perf_counter() - started) * 1000
    hits = [
        SearchHit(
            chunk=by_id[hit.chunk_id],
            fused_score=hit.fused_score,
            vector_rank=hit.ranks.get("vector"),
            vector_similarity=hit.scores.get("vector"),
            keyword_rank=hit.ranks.get("keyword"),
            keyword_score=hit.scores.get("keyword"),
        )
        for hit in fused
        if hit.chunk_id in by_id
    ][:pool]
    if model is not None and len(hits) > 1:
        started = time.perf_counter()
        hits = _reranked(model, query, scoped[0].embedding_model, hits)
        timings["rerank"] = (time.perf_counter() - started) * 1000
    hits = hits[:k]
    if mode == "keyword":
        nothing_relevant = not hits
    else:
        best = max((h.vector_similarity or 0.0 for h in hits), default=0.0)
        nothing_relevant = best < floor
    return SearchResult(hits, nothing_relevant, timings)
