"""HNSW cosine search over chunks, filtered by account in SQL."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection
from django.test import override_settings

from kb.models import EMBEDDING_DIMENSION, Account, Chunk, KnowledgeBase
from kb.selectors.chunks import chunk_vector_search, chunk_vector_search_plan
from tests.factories import make_account, make_document, make_knowledge_base

pytestmark = pytest.mark.django_db

CHUNKS_PER_ACCOUNT = 3000


def _unit(vector: np.ndarray) -> list[float]:
    return (vector / np.linalg.norm(vector)).tolist()


def _insert_chunks(account: Account, kb: KnowledgeBase, vectors: np.ndarray) -> None:
    document = make_document(kb, title=f"{account.name} handbook")
    Chunk.objects.bulk_create(
        Chunk(
            document=document,
            account=account,
            knowledge_base=kb,
            document_version=1,
            ordinal=i,
            text=f"{account.name} passage {i}",
            char_start=0,
            char_end=10,
            token_count=3,
            embedding=_unit(vector),
        )
        for i, vector in enumerate(vectors)
    )


@pytest.fixture(scope="module")
def two_tenants(django_db_setup, django_db_blocker, tmp_path_factory):
    """Two accounts with 3,000 chunks each: enough that PostgreSQL's planner,
    left to itself, prefers the HNSW index to sorting a tenant's rows."""
    rng = np.random.default_rng(7)
    media = override_settings(MEDIA_ROOT=tmp_path_factory.mktemp("media"))
    with django_db_blocker.unblock(), media:
        a, b = make_account("Alpha"), make_account("Beta")
        kb_a, kb_b = make_knowledge_base(a), make_knowledge_base(b)
        vectors_b = rng.normal(size=(CHUNKS_PER_ACCOUNT, EMBEDDING_DIMENSION))
        _insert_chunks(a, kb_a, rng.normal(size=(CHUNKS_PER_ACCOUNT, EMBEDDING_DIMENSION)))
        _insert_chunks(b, kb_b, vectors_b)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE kb_chunk")
    yield (a, kb_a), (b, kb_b), vectors_b
    with django_db_blocker.unblock():
        Account.objects.filter(id__in=[a.id, b.id]).delete()


def test_hnsw_index_serves_the_account_filtered_cosine_query(two_tenants) -> None:
    (account_a, kb_a), _, vectors_b = two_tenants

    plan = chunk_vector_search_plan(
        account=account_a, knowledge_bases=[kb_a], embedding=_unit(vectors_b[0]), k=10
    )

    assert "kb_chunk_embedding_hnsw" in plan, plan
    assert "account_id" in plan, "the tenant filter must be applied in SQL"


def test_search_never_returns_another_accounts_chunks_even_when_nearest(two_tenants) -> None:
    (account_a, kb_a), (account_b, kb_b), vectors_b = two_tenants
    # Given a query that is exactly one of account B's chunks
    query = _unit(vectors_b[0])

    # When account A searches
    results = chunk_vector_search(account=account_a, knowledge_bases=[kb_a], embedding=query, k=10)

    # Then A gets k of its own chunks, ordered by distance, and none of B's
    assert len(results) == 10
    assert {chunk.account_id for chunk in results} == {account_a.id}
    distances = [chunk.distance for chunk in results]  # type: ignore[attr-defined]
    assert distances == sorted(distances)
    # ...while B, asking the same, finds that very chunk first
    own = chunk_vector_search(account=account_b, knowledge_bases=[kb_b], embedding=query, k=1)
    assert own[0].ordinal == 0 and own[0].distance == pytest.approx(0, abs=1e-6)  # type: ignore[attr-defined]
