"""A damaged new version of a good document loses nothing.

Until a new version is ready, the last good version's file, text and chunks stay: search
keeps serving it, its file stays downloadable from the admin, and the admin and the API
say "version 2 failed: …; serving version 1". Real files through the real pipeline:
uploaded from the admin, parsed, chunked and embedded by ``document_ingest``.
"""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from ingest.services.pipeline import IngestOutcome, document_ingest
from kb.models import Chunk, Document
from kb.services.documents import documents_delete
from tests.factories import make_user
from tests.support.api import api_client
from tests.support.documents import pdf_bytes

pytestmark = pytest.mark.django_db

GOOD = pdf_bytes([["Refund policy", "Refunds are issued within 14 days of the request."]])
# The same PDF cut short in transit: the header is right, the body and xref are gone.
DAMAGED = GOOD[: len(GOOD) // 3]
BETTER = pdf_bytes([["Refund policy", "Refunds are issued within 30 days of the request."]])


def _upload(client, kb, content: bytes, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:kb_document_add"),
            {"knowledge_base": kb.pk, "uploads": [SimpleUploadedFile("refunds.pdf", content)]},
        )
    assert response.status_code == 302, response.content.decode()[:2000]


def _chunk_texts(document: Document) -> list[tuple[int, str]]:
    return list(Chunk.objects.filter(document=document).values_list("document_version", "text"))


@pytest.fixture
def editor(client, kb):
    client.force_login(make_user(account=kb.account, role="admin"))
    return client


@pytest.fixture
def good_then_damaged(editor, kb, django_capture_on_commit_callbacks):
    """refunds.pdf uploaded and ingested, then a damaged refunds.pdf uploaded over it."""
    _upload(editor, kb, GOOD, django_capture_on_commit_callbacks)
    document = Document.objects.get(knowledge_base=kb)
    assert document_ingest(document_id=document.pk) is IngestOutcome.READY
    document.refresh_from_db()
    good_file = document.file.name

    _upload(editor, kb, DAMAGED, django_capture_on_commit_callbacks)
    outcome = document_ingest(document_id=document.pk)
    document.refresh_from_db()
    return document, good_file, outcome


def test_a_damaged_new_version_fails_and_the_good_version_keeps_serving(
    good_then_damaged,
) -> None:
    # Given a good document, when a damaged file is uploaded over it and ingested
    document, good_file, outcome = good_then_damaged

    # Then the new version fails with a readable reason
    assert outcome is IngestOutcome.FAILED
    assert document.version == 2 and document.status == Document.Status.FAILED
    assert "damaged" in document.error.lower()
    # And version 1 is still what search serves: its file, its text and its chunks
    assert default_storage.exists(good_file)
    with default_storage.open(good_file, "rb") as stored:
        assert stored.read() == GOOD
    assert "within 14 days" in document.parsed_text
    assert {version for version, _ in _chunk_texts(document)} == {1}
    assert any("within 14 days" in text for _, text in _chunk_texts(document))
    assert document.live_version == 1
    assert document.previous_file.name == good_file
    # And the document says so in one line
    assert document.status_summary.startswith("version 2 failed: ")
    assert document.status_summary.endswith("; serving version 1")


def test_the_admin_says_which_version_serves_and_offers_the_previous_file(
    editor, good_then_damaged
) -> None:
    document, _, _ = good_then_damaged

    listing = editor.get(reverse("admin:kb_document_changelist")).content.decode()
    dead_letters = editor.get(reverse("admin:ingest_faileddocument_changelist")).content.decode()
    page = editor.get(reverse("admin:kb_document_change", args=[document.pk])).content.decode()
    download = editor.get(reverse("admin:kb_document_file", args=[document.pk, "previous"]))
    damaged = editor.get(reverse("admin:kb_document_file", args=[document.pk, "current"]))

    assert "version 2 failed: " in listing and "; serving version 1" in listing
    assert "serving version 1" in dead_letters
    assert "version 2 failed: " in page and "; serving version 1" in page
    assert reverse("admin:kb_document_file", args=[document.pk, "previous"]) in page
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == GOOD
    assert 'attachment; filename="refunds.pdf"' in download["Content-Disposition"]
    assert b"".join(damaged.streaming_content) == DAMAGED


def test_the_api_document_detail_says_which_version_serves(kb, good_then_damaged) -> None:
    document, _, _ = good_then_damaged
    client, _, _ = api_client(kb.account, ["read"])

    body = client.get(f"/api/v1/documents/{document.pk}").json()

    assert body["status"] == "failed" and body["version"] == 2
    assert body["live_version"] == 1
    assert body["status_message"].startswith("version 2 failed: ")
    assert body["status_message"].endswith("; serving version 1")


def test_the_document_page_shows_version_1s_text_and_why_version_2_is_not_there(
    editor, good_then_damaged
) -> None:
    document, _, _ = good_then_damaged

    page = editor.get(reverse("kb:document_detail", args=[document.pk])).content.decode()

    assert "2 (failed; serving version 1)" in page
    assert "could not be processed: the PDF is damaged" in page
    assert "within 14 days" in page


def test_a_good_version_after_the_failed_one_replaces_the_old_file_and_chunks(
    editor, kb, good_then_damaged, django_capture_on_commit_callbacks
) -> None:
    # Given version 2 failed and version 1 serving
    document, good_file, _ = good_then_damaged
    damaged_file = document.file.name

    # When a good version 3 is uploaded and ingested
    _upload(editor, kb, BETTER, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        assert document_ingest(document_id=document.pk) is IngestOutcome.READY

    # Then version 3 serves alone, and the files of versions 1 and 2 are gone
    document.refresh_from_db()
    assert (document.version, document.live_version) == (3, 3)
    assert document.status_summary == "Ready"
    assert {version for version, _ in _chunk_texts(document)} == {3}
    assert "within 30 days" in document.parsed_text
    assert not document.previous_file
    assert not default_storage.exists(good_file)
    assert not default_storage.exists(damaged_file)
    assert default_storage.exists(document.file.name)


def test_deleting_the_document_removes_the_previous_file_too(
    good_then_damaged, django_capture_on_commit_callbacks
) -> None:
    document, good_file, _ = good_then_damaged
    damaged_file = document.file.name

    with django_capture_on_commit_callbacks(execute=True):
        documents_delete(documents=Document.objects.filter(pk=document.pk))

    assert not default_storage.exists(good_file)
    assert not default_storage.exists(damaged_file)
