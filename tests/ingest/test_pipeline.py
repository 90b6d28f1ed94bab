"""From an uploaded file to searchable chunks: the ingestion service, in process."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from ingest.services.pipeline import IngestOutcome, TransientIngestError, document_ingest
from ingest.services.recovery import documents_reap, documents_retry
from ingest.services.uploads import UploadResult
from kb.embeddings.local import MINILM_MODEL_ID
from kb.embeddings.registry import get_embedder
from kb.models import Chunk, Document, KnowledgeBase
from kb.services.documents import documents_delete, knowledge_bases_delete
from tests.factories import upload
from tests.support.documents import (
    docx_bytes,
    encrypted_pdf_bytes,
    pdf_bytes,
    zip_bomb_docx_bytes,
)
from tests.support.fake_openai import fake_vector

pytestmark = pytest.mark.django_db

BILLING = b"""# Billing

Invoices are sent on the first day of each month.

## Refunds

Refunds are issued to the original payment method within 14 days.

### Enterprise plans

Enterprise customers get a prorated refund for unused months after the first year.
"""


def _chunks(document: Document) -> list[Chunk]:
    return list(Chunk.objects.filter(document=document).order_by("ordinal"))


def test_a_markdown_document_becomes_ready_with_embedded_chunks(kb) -> None:
    document = upload(kb, "billing.md", BILLING).document

    outcome = document_ingest(document_id=document.pk)

    document.refresh_from_db()
    kb.refresh_from_db()
    chunks = _chunks(document)
    assert outcome is IngestOutcome.READY
    assert document.status == Document.Status.READY and document.error == ""
    assert document.attempts == 1
    assert document.chunks_total == document.chunks_embedded == len(chunks) > 0
    assert kb.content_version == 1
    assert "Billing > Refunds > Enterprise plans" in {chunk.heading_path for chunk in chunks}
    for chunk in chunks:
        assert document.parsed_text[chunk.char_start : chunk.char_end] == chunk.text
        assert chunk.account_id == kb.account_id and chunk.knowledge_base_id == kb.pk
        assert np.linalg.norm(chunk.embedding) == pytest.approx(1.0, abs=1e-4)
        assert chunk.document_version == 1


def test_embeddings_are_real_the_refund_question_is_nearest_the_refund_passage(kb) -> None:
    document = upload(kb, "billing.md", BILLING).document
    document_ingest(document_id=document.pk)
    question = get_embedder(MINILM_MODEL_ID).embed(["How long until I get my money back?"])[0]

    best = max(_chunks(document), key=lambda chunk: float(np.dot(chunk.embedding, question)))

    assert "Refunds are issued" in best.text


def test_processing_a_document_twice_is_a_no_op(kb) -> None:
    document = upload(kb, "billing.md", BILLING).document
    document_ingest(document_id=document.pk)
    ids = [chunk.pk for chunk in _chunks(document)]

    again = document_ingest(document_id=document.pk)

    assert again is IngestOutcome.SKIPPED
    assert [chunk.pk for chunk in _chunks(document)] == ids


def test_the_same_file_uploaded_twice_yields_one_set_of_chunks(kb) -> None:
    first = upload(kb, "billing.md", BILLING)
    document_ingest(document_id=first.document.pk)

    second = upload(kb, "billing-copy.md", BILLING)

    assert second.result is UploadResult.DUPLICATE
    assert second.document.pk == first.document.pk
    assert Document.objects.filter(knowledge_base=kb).count() == 1
    assert Chunk.objects.filter(knowledge_base=kb).count() == len(_chunks(first.document))


def test_a_changed_file_from_the_same_source_becomes_a_new_version(
    kb, django_capture_on_commit_callbacks
) -> None:
    document = upload(kb, "billing.md", BILLING).document
    document_ingest(document_id=document.pk)
    old_file = document.file.name or ""

    with django_capture_on_commit_callbacks(execute=True):
        changed = upload(kb, "billing.md", BILLING.replace(b"14 days", b"30 days"))

    # The old chunks and file stay until the new version is in.
    assert changed.result is UploadResult.UPDATED and changed.document.pk == document.pk
    assert changed.document.version == 2 and changed.document.status == Document.Status.PENDING
    assert {chunk.document_version for chunk in _chunks(document)} == {1}
    assert default_storage.exists(old_file)
    with django_capture_on_commit_callbacks(execute=True):
        document_ingest(document_id=document.pk)
    chunks = _chunks(document)
    assert {chunk.document_version for chunk in chunks} == {2}
    assert any("30 days" in chunk.text for chunk in chunks)
    assert not any("14 days" in chunk.text for chunk in chunks)
    assert not default_storage.exists(old_file)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("damaged.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog", "damaged"),
        ("locked.pdf", encrypted_pdf_bytes(), "encrypted"),
        ("blank.txt", b"   \n\n \t \n", "no text found"),
        ("bomb.docx", zip_bomb_docx_bytes(), "zip bomb"),
        ("scan.pdf", pdf_bytes([[]]), "no text found"),
    ],
)
def test_bad_documents_fail_with_a_readable_reason_and_others_are_unaffected(
    kb, name, content, reason
) -> None:
    bad = upload(kb, name, content).document
    good = upload(kb, "billing.md", BILLING).document

    bad_outcome = document_ingest(document_id=bad.pk)
    good_outcome = document_ingest(document_id=good.pk)

    bad.refresh_from_db()
    assert bad_outcome is IngestOutcome.FAILED
    assert bad.status == Document.Status.FAILED
    assert reason in bad.error.lower()
    assert bad.error[0].isupper() or bad.error[0].islower()  # a sentence, not a repr
    assert "Traceback" not in bad.error
    assert not Chunk.objects.filter(document=bad).exists()
    assert good_outcome is IngestOutcome.READY


def test_page_and_character_caps_fail_the_document_with_the_limit(kb, settings) -> None:
    settings.CAIRN_MAX_PDF_PAGES = 2
    document = upload(kb, "long.pdf", pdf_bytes([["page"]] * 3)).document

    document_ingest(document_id=document.pk)

    document.refresh_from_db()
    assert document.status == Document.Status.FAILED
    assert "3" in document.error and "2" in document.error


def test_text_that_is_not_utf8_is_decoded_not_crashed(kb) -> None:
    content = "# Remboursement\n\nCafé crème : 10 € remboursés sous 14 jours.".encode("cp1252")
    document = upload(kb, "fr.md", content).document

    assert document_ingest(document_id=document.pk) is IngestOutcome.READY
    document.refresh_from_db()
    assert "Café crème : 10 € remboursés" in document.parsed_text


def test_a_word_document_keeps_its_headings(kb) -> None:
    content = docx_bytes(
        [
            ("Heading 1", "Security"),
            ("Heading 2", "Single sign-on"),
            ("Normal", "SAML 2.0 is supported."),
        ]
    )
    document = upload(kb, "security.docx", content).document

    document_ingest(document_id=document.pk)

    assert [chunk.heading_path for chunk in _chunks(document)][-1] == "Security > Single sign-on"


class TestEmbeddingProviderFailures:
    """With an OpenAI-compatible embeddings API (the real SDK, a fake server)."""

    @pytest.fixture
    def openai_kb(self, kb, fake_openai) -> KnowledgeBase:
        kb.embedding_model = "openai:text-embedding-3-small"
        kb.save()
        return kb

    def test_vectors_come_from_the_api(self, openai_kb, fake_openai) -> None:
        document = upload(openai_kb, "billing.md", BILLING).document

        assert document_ingest(document_id=document.pk) is IngestOutcome.READY

        request = fake_openai.requests[-1]["body"]
        assert request["model"] == "text-embedding-3-small" and request["dimensions"] == 384
        chunk = _chunks(document)[0]
        expected = fake_vector(request["input"][0], 384)
        assert any(np.allclose(c.embedding, expected, atol=1e-5) for c in _chunks(document))
        assert chunk.embedding is not None

    def test_transient_errors_release_the_document_for_a_retry(
        self, openai_kb, fake_openai
    ) -> None:
        document = upload(openai_kb, "billing.md", BILLING).document
        fake_openai.fail_next(503)

        with pytest.raises(TransientIngestError):
            document_ingest(document_id=document.pk)

        document.refresh_from_db()
        assert document.status == Document.Status.PENDING
        assert "temporary problem" in document.error and "attempt 1 of 3" in document.error
        assert document_ingest(document_id=document.pk) is IngestOutcome.READY

    def test_after_the_attempt_cap_the_document_fails_with_the_last_reason(
        self, openai_kb, fake_openai
    ) -> None:
        document = upload(openai_kb, "billing.md", BILLING).document
        fake_openai.fail_next(429, 500, 503)

        for _ in range(2):
            with pytest.raises(TransientIngestError):
                document_ingest(document_id=document.pk)
        document_ingest_last = pytest.raises(TransientIngestError)
        with document_ingest_last:
            document_ingest(document_id=document.pk)

        document.refresh_from_db()
        assert document.status == Document.Status.FAILED
        assert document.error.startswith("gave up after 3 attempts")
        assert document_ingest(document_id=document.pk) is IngestOutcome.SKIPPED

    def test_permanent_errors_fail_at_once(self, openai_kb, fake_openai) -> None:
        document = upload(openai_kb, "billing.md", BILLING).document
        fake_openai.fail_next(400)

        assert document_ingest(document_id=document.pk) is IngestOutcome.FAILED
        document.refresh_from_db()
        assert "embedding failed" in document.error and "400" in document.error


class TestRecovery:
    def _stuck(self, document: Document, *, attempts: int, minutes_ago: int = 30) -> None:
        Document.objects.filter(pk=document.pk).update(
            status=Document.Status.PROCESSING,
            attempts=attempts,
            updated_at=timezone.now() - timedelta(minutes=minutes_ago),
        )

    def test_the_reaper_requeues_a_document_whose_worker_died(self, kb) -> None:
        document = upload(kb, "billing.md", BILLING).document
        self._stuck(document, attempts=1)

        result = documents_reap()

        document.refresh_from_db()
        assert result.requeued == [document.pk]
        assert document.status == Document.Status.PENDING
        assert "worker stopped" in document.error
        assert document_ingest(document_id=document.pk) is IngestOutcome.READY

    def test_a_stale_processing_document_can_be_claimed_by_a_redelivered_task(self, kb) -> None:
        document = upload(kb, "billing.md", BILLING).document
        self._stuck(document, attempts=1)

        assert document_ingest(document_id=document.pk) is IngestOutcome.READY
        document.refresh_from_db()
        assert document.attempts == 2

    def test_a_fresh_processing_document_is_left_to_its_worker(self, kb) -> None:
        document = upload(kb, "billing.md", BILLING).document
        self._stuck(document, attempts=1, minutes_ago=0)

        assert documents_reap().requeued == []
        assert document_ingest(document_id=document.pk) is IngestOutcome.SKIPPED

    def test_the_reaper_fails_documents_out_of_attempts_and_retry_revives_them(self, kb) -> None:
        document = upload(kb, "billing.md", BILLING).document
        self._stuck(document, attempts=3)

        result = documents_reap()
        document.refresh_from_db()
        assert result.failed == [document.pk]
        assert document.status == Document.Status.FAILED
        assert "gave up after 3 attempts" in document.error

        assert documents_retry(documents=[document]) == [document.pk]
        document.refresh_from_db()
        assert (document.status, document.attempts, document.error) == ("pending", 0, "")
        assert document_ingest(document_id=document.pk) is IngestOutcome.READY


def test_a_new_version_arriving_mid_processing_supersedes_the_old_run(kb, monkeypatch) -> None:
    from ingest.services import pipeline

    document = upload(kb, "billing.md", BILLING).document
    real_embed = pipeline._embed

    def embed_then_new_upload(*args, **kwargs):
        vectors = real_embed(*args, **kwargs)
        upload(kb, "billing.md", BILLING + b"\nNew paragraph.\n")  # an admin re-uploads meanwhile
        return vectors

    monkeypatch.setattr(pipeline, "_embed", embed_then_new_upload)
    assert document_ingest(document_id=document.pk) is IngestOutcome.SUPERSEDED
    monkeypatch.setattr(pipeline, "_embed", real_embed)

    document.refresh_from_db()
    assert document.status == Document.Status.PENDING and document.version == 2
    assert not Chunk.objects.filter(document=document).exists()
    assert document_ingest(document_id=document.pk) is IngestOutcome.READY


def test_deleting_a_document_removes_its_chunks_and_file(
    kb, django_capture_on_commit_callbacks
) -> None:
    document = upload(kb, "billing.md", BILLING).document
    document_ingest(document_id=document.pk)
    stored = document.file.name or ""

    with django_capture_on_commit_callbacks(execute=True):
        documents_delete(documents=Document.objects.filter(pk=document.pk))

    assert not Chunk.objects.filter(knowledge_base=kb).exists()
    assert not default_storage.exists(stored)


def test_deleting_a_knowledge_base_removes_everything_in_it(
    kb, django_capture_on_commit_callbacks
) -> None:
    documents = [upload(kb, f"doc{i}.md", BILLING + str(i).encode()).document for i in range(2)]
    for document in documents:
        document_ingest(document_id=document.pk)
    files = [document.file.name or "" for document in documents]

    with django_capture_on_commit_callbacks(execute=True):
        knowledge_bases_delete(knowledge_bases=KnowledgeBase.objects.filter(pk=kb.pk))

    assert not Document.objects.filter(pk__in=[d.pk for d in documents]).exists()
    assert not Chunk.objects.exists()
    assert not any(default_storage.exists(name) for name in files)
