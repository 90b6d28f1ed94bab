"""chunk_search: hybrid retrieval within one tenant, fresh after ingestion and deletion."""

from __future__ import annotations

import pytest
from django.db import transaction

from ingest.services.pipeline import document_ingest
from kb.models import Document
from kb.selectors.search import chunk_search
from kb.services.documents import documents_delete
from tests.factories import make_account, make_knowledge_base, upload

pytestmark = pytest.mark.django_db

REFUNDS = b"""# Refunds

Refunds for annual plans are prorated by the unused months and paid within 14 days.

# Exports

Invoices can be exported as CSV or PDF from the Reports page.
"""
SECRET = b"""# Refunds

Refunds for annual plans are prorated by the unused months and paid within 14 days.
Project Nightingale refunds are confidential.
"""


def ingest(kb, name: str, content: bytes) -> Document:
    document = upload(kb, name, content).document
    document_ingest(document_id=document.pk)
    return document


FILLER = "\n\n".join(
    f"# Topic {i}\n\nNotes on warehouse shelf {i} and the courier schedule." for i in range(8)
).encode()


def test_hybrid_hits_carry_both_channels_ranks_and_scores(kb) -> None:
    ingest(kb, "billing.md", REFUNDS)
    ingest(kb, "warehouse.md", FILLER)  # BM25 needs a corpus where "refund" is rare

    result = chunk_search(account=kb.account, knowledge_bases=[kb], query="refund for annual plans")

    top = result.hits[0]
    assert "prorated" in top.chunk.text
    assert top.vector_rank == 1 and top.keyword_rank == 1
    assert top.vector_similarity is not None and 0 < top.vector_similarity <= 1
    assert top.keyword_score is not None and top.keyword_score > 0
    assert top.fused_score == pytest.approx(2 / 61)
    assert not result.nothing_relevant
    assert set(result.timings_ms) == {"vector", "keyword", "load", "rerank"}


@pytest.mark.parametrize("mode", ["hybrid", "vector", "keyword"])
def test_another_accounts_chunks_never_come_back_even_when_nearest(kb, mode) -> None:
    # Given account B holding the exact text of the question
    other_kb = make_knowledge_base(make_account("Other"), "Other help")
    ingest(other_kb, "secret.md", SECRET)
    ingest(kb, "billing.md", REFUNDS)
    question = "Project Nightingale refunds are confidential."

    # When account A searches, even passing B's knowledge base along
    result = chunk_search(
        account=kb.account, knowledge_bases=[kb, other_kb], query=question, mode=mode
    )

    # Then only A's chunks come back
    assert result.hits
    assert {hit.chunk.account_id for hit in result.hits} == {kb.account_id}
    assert all("Nightingale" not in hit.chunk.text for hit in result.hits)


def test_a_newly_ingested_document_is_found_by_both_channels_at_once(kb) -> None:
    ingest(kb, "billing.md", REFUNDS)
    chunk_search(account=kb.account, knowledge_bases=[kb], query="refunds")

    ingest(kb, "sso.md", b"# Single sign-on\n\nOkta and Azure AD connect over SAML 2.0.\n")
    result = chunk_search(account=kb.account, knowledge_bases=[kb], query="Okta SAML")

    found = next((h for h in result.hits if "Okta" in h.chunk.text), None)
    assert found is not None and found.vector_rank == 1 and found.keyword_rank == 1


def test_a_deleted_document_disappears_from_both_channels(
    kb, django_capture_on_commit_callbacks
) -> None:
    keep = ingest(kb, "billing.md", REFUNDS)
    gone = ingest(kb, "sso.md", b"# Single sign-on\n\nOkta and Azure AD connect over SAML 2.0.\n")
    assert any(
        h.chunk.document_id == gone.pk
        for h in chunk_search(account=kb.account, knowledge_bases=[kb], query="Okta").hits
    )

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        documents_delete(documents=Document.objects.filter(pk=gone.pk))

    for mode in ("hybrid", "vector", "keyword"):
        result = chunk_search(account=kb.account, knowledge_bases=[kb], query="Okta", mode=mode)
        assert all(h.chunk.document_id == keep.pk for h in result.hits), mode


def test_a_question_far_from_everything_reports_nothing_relevant(kb) -> None:
    ingest(kb, "billing.md", REFUNDS)

    result = chunk_search(
        account=kb.account, knowledge_bases=[kb], query="What is the boiling point of tungsten?"
    )

    assert result.nothing_relevant


def test_empty_scope_or_query_returns_nothing(kb) -> None:
    other_kb = make_knowledge_base(make_account("Other"), "Other help")

    assert chunk_search(account=kb.account, knowledge_bases=[other_kb], query="x").hits == []
    assert chunk_search(account=kb.account, knowledge_bases=[kb], query="   ").hits == []
