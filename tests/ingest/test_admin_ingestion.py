"""The admin's ingestion workflow: live progress, retries, dead letters, deletion."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse

from ingest.services.pipeline import document_ingest
from kb.models import Chunk, Document
from tests.factories import make_account, make_knowledge_base, make_user, upload

pytestmark = pytest.mark.django_db

GUIDE = b"# Guide\n\nShipping takes two days.\n"


@pytest.fixture
def admin_of_kb(client, kb):
    client.force_login(make_user(account=kb.account, role="admin"))
    return client


def _set(document: Document, **fields) -> None:
    Document.objects.filter(pk=document.pk).update(**fields)


def test_progress_cell_polls_while_processing_and_stops_when_settled(admin_of_kb, kb) -> None:
    document = upload(kb, "guide.md", GUIDE).document
    _set(document, status="processing", chunks_total=40, chunks_embedded=10)
    url = reverse("admin:kb_document_progress", args=[document.pk])

    processing = admin_of_kb.get(url).content.decode()
    _set(document, status="ready", chunks_embedded=40)
    ready = admin_of_kb.get(url).content.decode()

    assert 'hx-trigger="every 2s"' in processing and 'value="25"' in processing
    assert "10/40" in processing
    assert "hx-trigger" not in ready and 'value="100"' in ready


def test_the_document_list_loads_htmx_and_renders_progress(admin_of_kb, kb) -> None:
    upload(kb, "guide.md", GUIDE)

    page = admin_of_kb.get(reverse("admin:kb_document_changelist")).content.decode()

    assert "vendor/htmx-2.0.11.min.js" in page
    assert 'class="cairn-progress"' in page and "hx-get=" in page


def test_progress_of_another_accounts_document_is_not_found(admin_of_kb) -> None:
    other = upload(make_knowledge_base(make_account("Other")), "x.md", b"# X\n\nSecret.").document

    response = admin_of_kb.get(reverse("admin:kb_document_progress", args=[other.pk]))

    assert response.status_code == 404


def test_retry_action_requeues_failed_documents_with_fresh_attempts(admin_of_kb, kb) -> None:
    failed = upload(kb, "a.md", b"# A\n\nAlpha.").document
    ready = upload(kb, "b.md", b"# B\n\nBeta.").document
    _set(failed, status="failed", attempts=3, error="gave up after 3 attempts")
    _set(ready, status="ready")

    response = admin_of_kb.post(
        reverse("admin:kb_document_changelist"),
        {"action": "retry_ingestion", "_selected_action": [failed.pk, ready.pk]},
        follow=True,
    )

    failed.refresh_from_db()
    ready.refresh_from_db()
    assert "Queued 1 document(s) for ingestion again." in response.content.decode()
    assert (failed.status, failed.attempts, failed.error) == ("pending", 0, "")
    assert ready.status == "ready"


def test_staff_members_cannot_retry(client, kb) -> None:
    failed = upload(kb, "a.md", b"# A\n\nAlpha.").document
    _set(failed, status="failed", error="broken")
    client.force_login(make_user(account=kb.account, role="staff"))

    client.post(
        reverse("admin:kb_document_changelist"),
        {"action": "retry_ingestion", "_selected_action": [failed.pk]},
    )

    failed.refresh_from_db()
    assert failed.status == "failed"


def test_dead_letter_list_shows_only_failed_documents_of_ones_accounts(admin_of_kb, kb) -> None:
    failed = upload(kb, "a.md", b"# A\n\nAlpha.").document
    upload(kb, "b.md", b"# B\n\nBeta.")
    _set(failed, status="failed", error="the PDF is encrypted; remove the password")
    other = upload(make_knowledge_base(make_account("Other")), "c.md", b"# C\n\nGamma.").document
    _set(other, status="failed", error="other account's failure")

    page = admin_of_kb.get(reverse("admin:ingest_faileddocument_changelist")).content.decode()

    assert "the PDF is encrypted; remove the password" in page
    assert "B</a>" not in page and "other account&#x27;s failure" not in page


def test_deleting_in_the_admin_removes_chunks_and_the_stored_file(
    admin_of_kb, kb, django_capture_on_commit_callbacks
) -> None:
    document = upload(kb, "guide.md", GUIDE).document
    document_ingest(document_id=document.pk)
    stored = document.file.name or ""

    with django_capture_on_commit_callbacks(execute=True):
        admin_of_kb.post(reverse("admin:kb_document_delete", args=[document.pk]), {"post": "yes"})

    assert not Document.objects.filter(pk=document.pk).exists()
    assert not Chunk.objects.filter(knowledge_base=kb).exists()
    assert not default_storage.exists(stored)


def test_changing_the_embedding_model_starts_reembedding_instead(
    admin_of_kb, kb, fake_openai
) -> None:
    url = reverse("admin:kb_knowledgebase_change", args=[kb.pk])
    form = {"name": kb.name, "slug": kb.slug, "description": "",
            "embedding_model": "openai:text-embedding-3-small"}  # fmt: skip

    response = admin_of_kb.post(url, form, follow=True)

    kb.refresh_from_db()
    assert "Re-embedding with openai:text-embedding-3-small in the background" in (
        response.content.decode()
    )
    assert kb.embedding_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert kb.reembedding_model == "openai:text-embedding-3-small"


def test_an_unknown_embedding_model_is_a_form_error(admin_of_kb, kb) -> None:
    url = reverse("admin:kb_knowledgebase_change", args=[kb.pk])
    form = {"name": kb.name, "slug": kb.slug, "description": "", "embedding_model": "word2vec"}

    response = admin_of_kb.post(url, form)

    assert "Use sentence-transformers/all-MiniLM-L6-v2 or openai:&lt;model name&gt;." in (
        response.content.decode()
    )
