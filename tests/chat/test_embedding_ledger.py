"""Embedding calls are ledger rows too, attributed to the account they served."""

from __future__ import annotations

import pytest

from ingest.services.pipeline import document_ingest
from kb.embeddings.queries import _query_embedding
from kb.selectors.search import chunk_search
from llm.models import LlmCall
from tests.factories import upload

pytestmark = pytest.mark.django_db


def test_ingestion_and_query_embeddings_are_recorded_per_account(kb) -> None:
    _query_embedding.cache_clear()
    document = upload(kb, "refunds.md", b"# Refunds\n\nRefunds are paid within 14 days.\n").document

    document_ingest(document_id=document.pk)
    chunk_search(account=kb.account, knowledge_bases=[kb], query="How long do refunds take?")

    rows = {row.feature: row for row in LlmCall.objects.filter(account=kb.account)}
    assert set(rows) == {"embedding:ingestion", "embedding:query"}
    ingestion = rows["embedding:ingestion"]
    assert ingestion.provider == "local" and ingestion.model.endswith("all-MiniLM-L6-v2")
    assert ingestion.input_tokens > 5 and not ingestion.tokens_estimated
    assert ingestion.status == "ok"


def test_api_embeddings_record_the_tokens_the_provider_reports(kb, fake_openai) -> None:
    kb.embedding_model = "openai:text-embedding-3-small"
    kb.save()
    document = upload(kb, "refunds.md", b"# Refunds\n\nRefunds are paid within 14 days.\n").document
    fake_openai.fail_next(503)

    with pytest.raises(Exception):  # noqa: B017 (the transient error bubbles up for a retry)
        document_ingest(document_id=document.pk)
    document_ingest(document_id=document.pk)

    calls = LlmCall.objects.filter(account=kb.account, feature="embedding:ingestion")
    failed, ok = calls.get(status="error"), calls.get(status="ok")
    assert (failed.provider, failed.error_class) == ("openai", "http_503")
    assert ok.model == "text-embedding-3-small" and ok.input_tokens > 0
