"""Uploading one or many documents from the admin."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from kb.models import Document
from tests.factories import make_account, make_knowledge_base, make_user

pytestmark = pytest.mark.django_db


def _file(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content)


@pytest.fixture
def uploader(client):
    account = make_account("Acme")
    kb = make_knowledge_base(account, "Acme help")
    client.force_login(make_user(account=account, role="admin"))
    return client, kb


def test_several_files_become_pending_documents_stored_under_generated_names(uploader) -> None:
    client, kb = uploader

    response = client.post(
        reverse("admin:kb_document_add"),
        {
            "knowledge_base": kb.pk,
            "uploads": [
                _file("refunds.md", b"# Refunds\n\nWithin 30 days."),
                _file("../../etc/passwd.txt", b"Not a path traversal."),
                _file("faq.html", b"<!doctype html><html><body><h1>FAQ</h1></body></html>"),
            ],
        },
        follow=True,
    )

    assert response.status_code == 200
    assert "Uploaded 3 document(s)" in response.content.decode()
    documents = {d.original_filename: d for d in Document.objects.filter(knowledge_base=kb)}
    assert set(documents) == {"refunds.md", "passwd.txt", "faq.html"}
    for document in documents.values():
        assert document.status == Document.Status.PENDING
        assert document.account_id == kb.account_id
        stored_name = document.file.name or ""
        assert stored_name.startswith(f"documents/{kb.account_id}/")
        assert ".." not in stored_name and "passwd" not in stored_name
    assert documents["faq.html"].mime_type == "text/html"
    assert documents["refunds.md"].title == "Refunds"


def test_the_same_file_twice_is_stored_once(uploader) -> None:
    client, kb = uploader
    url = reverse("admin:kb_document_add")
    content = b"Shipping takes 3 days."

    client.post(url, {"knowledge_base": kb.pk, "uploads": [_file("shipping.txt", content)]})
    again = client.post(
        url,
        {"knowledge_base": kb.pk, "uploads": [_file("shipping-copy.txt", content)]},
        follow=True,
    )

    assert Document.objects.filter(knowledge_base=kb).count() == 1
    assert "Already in this knowledge base" in again.content.decode()


def test_rejected_files_say_why_and_the_others_are_kept(uploader) -> None:
    client, kb = uploader

    response = client.post(
        reverse("admin:kb_document_add"),
        {
            "knowledge_base": kb.pk,
            "uploads": [
                _file("fine.txt", b"A fine document."),
                _file("report.pdf", b"<html><body>not a pdf</body></html>"),
                _file("tool.exe", b"MZ\x90\x00"),
            ],
        },
        follow=True,
    )

    page = response.content.decode()
    assert "report.pdf: the file is named .pdf but its content is HTML" in page
    assert "tool.exe: unsupported file type (.exe)" in page
    assert list(Document.objects.values_list("original_filename", flat=True)) == ["fine.txt"]


def test_too_many_files_at_once_is_refused_with_the_limit(uploader, settings) -> None:
    client, kb = uploader
    limit = settings.CAIRN_MAX_UPLOAD_FILES  # the real default, and Django's real ceiling

    response = client.post(
        reverse("admin:kb_document_add"),
        {
            "knowledge_base": kb.pk,
            "uploads": [_file(f"f{i}.txt", f"doc {i}".encode()) for i in range(limit + 1)],
        },
    )

    assert response.status_code == 200
    assert (
        f"{limit + 1} files selected; at most {limit} can be uploaded at once."
        in response.content.decode()
    )
    assert Document.objects.count() == 0


def test_a_file_over_the_size_limit_is_refused(uploader, settings) -> None:
    client, kb = uploader
    settings.CAIRN_MAX_UPLOAD_MB = 1

    response = client.post(
        reverse("admin:kb_document_add"),
        {"knowledge_base": kb.pk, "uploads": [_file("big.txt", b"a" * (1024 * 1024 + 1))]},
    )

    assert "big.txt: the file is 1.0 MB; the limit is 1 MB" in response.content.decode()
    assert Document.objects.count() == 0


def test_an_empty_file_is_refused_by_name_and_the_rest_of_the_batch_is_stored(uploader) -> None:
    # Given a batch of three files, the middle one 0 bytes long
    client, kb = uploader

    # When it is uploaded from the admin
    response = client.post(
        reverse("admin:kb_document_add"),
        {
            "knowledge_base": kb.pk,
            "uploads": [
                _file("refunds.md", b"# Refunds\n\nWithin 30 days."),
                _file("empty-notes.txt", b""),
                _file("shipping.txt", b"Shipping takes 3 days."),
            ],
        },
        follow=True,
    )

    # Then only the empty file is refused, by name, and the other two are stored
    page = response.content.decode()
    assert response.redirect_chain, "the batch went through to the document list"
    assert "Not uploaded: empty-notes.txt: the file is empty" in page
    assert "Uploaded 2 document(s)" in page
    stored = set(Document.objects.values_list("original_filename", flat=True))
    assert stored == {"refunds.md", "shipping.txt"}


def test_a_batch_of_only_empty_files_stays_on_the_form_naming_each(uploader) -> None:
    client, kb = uploader

    response = client.post(
        reverse("admin:kb_document_add"),
        {"knowledge_base": kb.pk, "uploads": [_file("a.txt", b""), _file("b.txt", b"")]},
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "a.txt: the file is empty" in page and "b.txt: the file is empty" in page
    assert Document.objects.count() == 0
