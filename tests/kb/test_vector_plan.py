"""The vector channel's plan: the HNSW index for knowledge bases of thousands of chunks,
an exact scan for small ones, and never fewer rows than asked when they exist.

PostgreSQL's planner, left to itself, chose a sequential scan over every chunk on a
knowledge base of about 10k (SciFact's 10,880: 35-50 ms against 1-9 ms through the index):
it does not count reading the TOASTed vectors of chunks of real length, and the larger
``hnsw.ef_search`` the sooner it gives up the index. The chunks here are of that kind.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from django.db import connection
from django.test import override_settings

from benchmarks.retrieval import copy_into_table
from kb.models import EMBEDDING_DIMENSION, Account, Chunk, Document, KnowledgeBase
from kb.selectors import chunks as chunk_selectors
from kb.selectors.chunks import chunk_vector_neighbours, chunk_vector_neighbours_plan
from tests.factories import make_account, make_knowledge_base

pytestmark = pytest.mark.django_db

LARGE = 4000  # chunks: above EXACT_SCAN_MAX_CHUNKS, where the planner used to scan them all
SMALL = 20


def _texts(rng: np.random.Generator, n: int) -> list[str]:
    """About 1,000 characters each of words that hardly compress, like real chunks: row
    and vector do not fit PostgreSQL's 2 kB together, so it moves the vectors to TOAST and
    the table looks small to the planner."""
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return [
        " ".join("".join(rng.choice(letters, size=7)) for _ in range(125)) + f" #{i}"
        for i in range(n)
    ]


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.normal(size=(n, EMBEDDING_DIMENSION)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _load(account: Account, kb: KnowledgeBase, vectors: np.ndarray, texts: list[str]) -> None:
    document = Document.objects.create(
        account=account, knowledge_base=kb, title="Handbook", source=f"handbook-{kb.pk}",
        original_filename="handbook.txt", file="x/handbook.txt", mime_type="text/plain",
        status="ready", content_hash=hashlib.sha256(f"{kb.pk}".encode()).hexdigest(),
    )  # fmt: skip
    copy_into_table(Chunk, (
        Chunk(
            document_id=document.pk, account_id=account.pk, knowledge_base_id=kb.pk,
            document_version=1, ordinal=i, text=text, char_start=0, char_end=len(text),
            token_count=200, embedding=vector,
        )
        for i, (vector, text) in enumerate(zip(vectors, texts, strict=True))
    ))  # fmt: skip


@pytest.fixture(scope="module")
def tenants(django_db_setup, django_db_blocker, tmp_path_factory):
    """One account with a large and a small knowledge base; another account's chunks
    beside them."""
    rng = np.random.default_rng(3)
    media = override_settings(MEDIA_ROOT=tmp_path_factory.mktemp("media"))
    with django_db_blocker.unblock(), media:
        account, other = make_account("Large"), make_account("Other")
        large, small = make_knowledge_base(account), make_knowledge_base(account, "Small")
        elsewhere = make_knowledge_base(other)
        small_vectors = _unit(rng, SMALL)
        _load(account, large, _unit(rng, LARGE), _texts(rng, LARGE))
        _load(account, small, small_vectors, _texts(rng, SMALL))
        _load(other, elsewhere, _unit(rng, 500), _texts(rng, 500))
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE kb_chunk")
    yield account, large, small, small_vectors
    with django_db_blocker.unblock():
        Account.objects.filter(id__in=[account.id, other.id]).delete()


def _query(seed: int) -> list[float]:
    return _unit(np.random.default_rng(seed), 1)[0].tolist()


def _exact(account: Account, kb: KnowledgeBase, query: list[float], k: int) -> list[int]:
    """The ``k`` nearest chunks by a full sort, as the reference."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM kb_chunk WHERE account_id = %s AND knowledge_base_id = %s "
            "ORDER BY embedding <=> %s::vector, id LIMIT %s",
            [account.pk, kb.pk, str(query), k],
        )
        return [row[0] for row in cursor.fetchall()]


def test_a_knowledge_base_of_thousands_of_chunks_is_searched_through_the_hnsw_index(
    tenants,
) -> None:
    account, large, _, _ = tenants

    # The very statement chunk_vector_neighbours runs, at the default settings
    # (CAIRN_HNSW_EF_SEARCH) and the search's depth (CAIRN_SEARCH_CANDIDATES).
    plan = chunk_vector_neighbours_plan(
        account=account, knowledge_bases=[large], embedding=_query(1), k=50
    )

    assert "Index Scan using kb_chunk_embedding_hnsw" in plan, plan
    assert "Seq Scan" not in plan and "Sort" not in plan, plan
    assert "account_id" in plan, "the tenant filter must be applied in SQL"


def test_the_hnsw_search_returns_k_of_the_tenants_own_chunks_nearest_first(tenants) -> None:
    account, large, small, _ = tenants

    found = chunk_vector_neighbours(
        account=account, knowledge_bases=[large], embedding=_query(2), k=50
    )

    assert len(found) == 50
    ids = [pk for pk, _ in found]
    assert set(Chunk.objects.filter(pk__in=ids).values_list("knowledge_base", flat=True)) == {
        large.pk
    }
    distances = [distance for _, distance in found]
    assert distances == sorted(distances)


def test_a_small_knowledge_base_is_scanned_exactly_and_completely(tenants) -> None:
    account, _, small, vectors = tenants
    query = vectors[0].tolist()

    plan = chunk_vector_neighbours_plan(
        account=account, knowledge_bases=[small], embedding=query, k=50
    )
    found = chunk_vector_neighbours(account=account, knowledge_bases=[small], embedding=query, k=50)

    assert "hnsw" not in plan, plan
    # Every one of its 20 chunks, in exact order, the query's own chunk first.
    assert [pk for pk, _ in found] == _exact(account, small, query, 50)
    assert len(found) == SMALL and found[0][1] == pytest.approx(0, abs=1e-6)


def test_when_the_iterative_scan_gives_up_the_exact_scan_answers(tenants, monkeypatch) -> None:
    account, _, small, _ = tenants
    # Given a knowledge base searched through HNSW although it is a sliver of the table,
    # and an iterative scan that stops after a few tuples
    monkeypatch.setattr(chunk_selectors, "EXACT_SCAN_MAX_CHUNKS", 5)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL hnsw.max_scan_tuples = 30")
    query = _query(4)

    found = chunk_vector_neighbours(
        account=account, knowledge_bases=[small], embedding=query, k=SMALL
    )

    # Then the results are still all its chunks in order, not what the index found before
    # it stopped
    assert "kb_chunk_embedding_hnsw" in chunk_vector_neighbours_plan(
        account=account, knowledge_bases=[small], embedding=query, k=SMALL
    )
    assert [pk for pk, _ in found] == _exact(account, small, query, SMALL)


def test_the_plan_settings_do_not_outlive_the_search(tenants) -> None:
    account, large, _, _ = tenants

    chunk_vector_neighbours(account=account, knowledge_bases=[large], embedding=_query(5), k=10)

    # The test's own transaction goes on with PostgreSQL's settings, not the search's.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('enable_seqscan'), current_setting('enable_sort'), "
            "current_setting('hnsw.iterative_scan')"
        )
        assert cursor.fetchone() == ("on", "on", "off")
