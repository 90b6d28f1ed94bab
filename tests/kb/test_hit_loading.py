"""chunk_search loads each hit's chunk and document in one query, with only the fields
that readers of hits use: never the document's whole parsed text (52-89 ms p50 for 300
hits when it was loaded), the re-embedding vector or the keyword columns."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.answering.context import passages_select
from ingest.services.pipeline import document_ingest
from kb.api.views import SearchHitSerializer, _hit
from kb.selectors.search import SearchResult, chunk_search, hit_text
from tests.factories import upload

pytestmark = pytest.mark.django_db

SECTIONS = "\n\n".join(
    f"# Shelf {i}\n\nThe courier collects parcels from warehouse shelf {i} on weekday {i % 5}."
    for i in range(14)
).encode()
READ_FIELDS = (  # besides those the calls below read
    "pk", "document_id", "account_id", "ordinal", "page", "char_start", "char_end",
    "document_version", "injection_score",
)  # fmt: skip
NOT_LOADED = ("parsed_text", "embedding_next", "keyword_terms", "keyword_tfs", "previous_file")


@pytest.fixture
def shelves(kb):
    for name in ("shelves.md", "more-shelves.md"):
        document = upload(kb, name, SECTIONS.replace(b"courier", name.encode())).document
        document_ingest(document_id=document.pk)
    return kb


def _search(kb, k: int, rerank: bool | None = None) -> tuple[SearchResult, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        result = chunk_search(
            account=kb.account, knowledge_bases=[kb], query="courier parcels shelf", k=k,
            rerank=rerank,
        )  # fmt: skip
    return result, [query["sql"] for query in queries.captured_queries]


def _hit_load(statements: list[str]) -> str:
    loads = [sql for sql in statements if 'FROM "kb_chunk" INNER JOIN "kb_document"' in sql]
    assert len(loads) == 1, statements
    return loads[0]


def test_hits_are_loaded_without_the_documents_parsed_text(shelves) -> None:
    result, statements = _search(shelves, k=10)

    load = _hit_load(statements)
    assert len(result.hits) == 10
    for column in NOT_LOADED:
        assert f'."{column}"' not in load, column
    # ...but with what the reranker reads: the chunk's vector
    assert '"kb_chunk"."embedding"' in load


def test_what_readers_of_hits_use_is_loaded_no_query_per_hit(shelves) -> None:
    result, _ = _search(shelves, k=10)

    with CaptureQueriesContext(connection) as queries:
        # The chat's context, the API's hit, the reranker's texts, citations and evaluation
        passages_select(result.hits, max_passages=10, max_tokens=10_000, embedding_model="m")
        kbs = {shelves.pk: shelves}
        api_hits = [_hit(i, hit, kbs) for i, hit in enumerate(result.hits)]
        assert len(SearchHitSerializer(api_hits, many=True).data) == len(result.hits)
        for hit in result.hits:
            hit_text(hit)
            for name in READ_FIELDS:
                getattr(hit.chunk, name)
            for name in ("pk", "title", "source", "knowledge_base_id"):
                getattr(hit.chunk.document, name)

    assert queries.captured_queries == []


def test_the_number_of_queries_does_not_grow_with_the_hits(shelves) -> None:
    # (the reranker off: it reads sentence vectors, which is not loading hits; a first
    # search warms the process's caches)
    _search(shelves, k=1, rerank=False)
    few, few_statements = _search(shelves, k=2, rerank=False)
    many, many_statements = _search(shelves, k=20, rerank=False)

    assert len(few.hits) == 2 and len(many.hits) == 20
    assert len(many_statements) == len(few_statements)
