"""Reading chunks: nearest neighbours by embedding, always within one tenant."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, transaction
from django.db.models import QuerySet
from pgvector.django import CosineDistance

from kb.models import Account, Chunk, KnowledgeBase

DEFAULT_EF_SEARCH = 64


def _vector_queryset(
    *, account: Account, knowledge_bases: Sequence[KnowledgeBase], embedding: Sequence[float]
) -> QuerySet[Chunk]:
    # The tenant filter is part of the SQL, never applied after the fact.
    return (
        Chunk.objects.filter(account=account, knowledge_base__in=list(knowledge_bases))
        .annotate(distance=CosineDistance("embedding", list(embedding)))
        .order_by("distance")
    )


def chunk_vector_search(
    *,
    account: Account,
    knowledge_bases: Sequence[KnowledgeBase],
    embedding: Sequence[float],
    k: int = 10,
    ef_search: int = DEFAULT_EF_SEARCH,
) -> list[Chunk]:
    """The ``k`` chunks of ``account``'s ``knowledge_bases`` nearest to ``embedding`` (cosine).

    Uses the HNSW index with pgvector's iterative scan, so a selective tenant
    filter still yields ``k`` rows when that many exist. Each chunk carries
    ``distance`` (cosine distance, 0 = same direction).
    """
    with transaction.atomic(), connection.cursor() as cursor:
        # SET LOCAL: the settings end with this transaction, whatever happens.
        cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(ef_search)])
        cursor.execute("SELECT set_config('hnsw.iterative_scan', 'strict_order', true)")
        return list(
            _vector_queryset(account=account, knowledge_bases=knowledge_bases, embedding=embedding)[
                :k
            ]
        )


def chunk_vector_neighbours(
    *,
    account: Account,
    knowledge_bases: Sequence[KnowledgeBase],
    embedding: Sequence[float],
    k: int = 10,
    ef_search: int = DEFAULT_EF_SEARCH,
) -> list[tuple[int, float]]:
    """(chunk id, cosine distance) of the ``k`` nearest chunks: the same query as
    ``chunk_vector_search`` without loading rows (texts and vectors stay in the database)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(ef_search)])
        cursor.execute("SELECT set_config('hnsw.iterative_scan', 'strict_order', true)")
        rows = _vector_queryset(  # type: ignore[misc]
            account=account, knowledge_bases=knowledge_bases, embedding=embedding
        ).values_list("pk", "distance")[:k]
        return [(int(pk), float(distance)) for pk, distance in rows]


def chunk_vector_search_plan(
    *,
    account: Account,
    knowledge_bases: Sequence[KnowledgeBase],
    embedding: Sequence[float],
    k: int,
) -> str:
    """EXPLAIN output of the query ``chunk_vector_search`` runs (for tests and diagnostics)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('hnsw.iterative_scan', 'strict_order', true)")
        queryset = _vector_queryset(
            account=account, knowledge_bases=knowledge_bases, embedding=embedding
        )[:k]
        return queryset.explain()
