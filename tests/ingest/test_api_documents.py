"""/api/v1/documents: multipart upload, list, get, delete and retry, scoped to the caller's
account, with the one error shape for 400/401/403/404/409/413/415."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from ingest.services.pipeline import document_ingest
from kb.models import Chunk, Document, Membership
from tests.factories import make_account, make_knowledge_base, make_user, upload
from tests.support.api import api_client, error_of

pytestmark = pytest.mark.django_db

DOCUMENTS = "/api/v1/documents"
BILLING = b"""# Billing

Invoices are sent on the first day of each month.

## Refunds

Refunds are issued to the original payment method within 14 days.
"""
BLANK = b"   \n\n \t \n"  # fails ingestion: no text found


def document_url(document_id: int) -> str:
    return f"{DOCUMENTS}/{document_id}"


def post_file(client: APIClient, knowledge_base, name: str, content: bytes, **fields):
    data = {"file": SimpleUploadedFile(name, content), "knowledge_base": knowledge_base, **fields}
    return client.post(DOCUMENTS, data, format="multipart")


def failed_document(kb) -> Document:
    document = upload(kb, "blank.txt", BLANK).document
    document_ingest(document_id=document.pk)
    document.refresh_from_db()
    assert document.status == Document.Status.FAILED
    return document


def session_client(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


# --- Upload -------------------------------------------------------------------------


def test_an_upload_is_created_pending_and_ready_with_full_progress_once_ingested(kb) -> None:
    client, _, _ = api_client(kb.account, ["read", "ingest"])

    response = post_file(client, kb.slug, "billing.md", BILLING)

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["result"] == "created"
    assert body["status"] == "pending" and body["progress"] == 0.0 and body["error"] is None
    assert body["title"] == "Billing" and body["filename"] == "billing.md"
    assert body["source"] == "billing.md" and body["mime_type"] == "text/markdown"
    assert body["size_bytes"] == len(BILLING) and body["version"] == 1
    assert body["knowledge_base"] == {"id": kb.pk, "slug": kb.slug, "name": kb.name}
    assert response["Location"] == document_url(body["id"])

    document_ingest(document_id=body["id"])
    ready = client.get(response["Location"])

    assert ready.status_code == 200
    document = ready.json()
    assert document["status"] == "ready" and document["progress"] == 1.0
    assert document["chunks_total"] == document["chunks_embedded"] > 0
    assert document["ingested_at"] is not None and document["error"] is None


def test_the_same_bytes_again_are_a_duplicate_and_new_bytes_from_the_source_a_new_version(
    kb,
) -> None:
    client, _, _ = api_client(kb.account, ["ingest", "read"])
    first = post_file(client, kb.pk, "billing.md", BILLING).json()

    again = post_file(client, kb.pk, "copy.md", BILLING)
    changed = post_file(client, kb.pk, "billing.md", BILLING + b"\nLate fees apply.\n")

    assert again.status_code == 200
    assert again.json()["result"] == "duplicate" and again.json()["id"] == first["id"]
    assert changed.status_code == 201
    assert changed.json()["result"] == "updated" and changed.json()["id"] == first["id"]
    assert changed.json()["version"] == 2
    assert Document.objects.filter(knowledge_base=kb).count() == 1


def test_an_upload_can_name_its_source(kb) -> None:
    client, _, _ = api_client(kb.account, ["ingest"])

    response = post_file(client, kb.slug, "billing.md", BILLING, source="wiki/billing")

    assert response.status_code == 201 and response.json()["source"] == "wiki/billing"


def test_a_60_mb_upload_is_413_with_the_error_shape_and_stores_nothing(kb) -> None:
    client, _, _ = api_client(kb.account, ["ingest"])

    response = post_file(client, kb.slug, "huge.txt", b"a" * (60 * 1024 * 1024))

    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "payload_too_large" and "50 MB" in error["message"]
    assert not Document.objects.exists()


def test_a_declared_oversize_body_is_refused_without_being_read(kb) -> None:
    # Content-Length says 60 MB while only a few bytes follow: parsing would fail or
    # block, so a 413 shows the length alone decided.
    client, _, _ = api_client(kb.account, ["ingest"])

    response = client.generic(
        "POST",
        DOCUMENTS,
        "--x\r\n",
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(60 * 1024 * 1024),
    )

    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


def test_a_file_over_the_limit_within_the_declared_slack_is_refused_by_its_size(
    kb, settings
) -> None:
    settings.CAIRN_MAX_UPLOAD_MB = 1
    client, _, _ = api_client(kb.account, ["ingest"])

    response = post_file(client, kb.slug, "big.txt", b"a" * (1024 * 1024 + 10))

    assert response.status_code == 413
    assert "the limit is 1 MB" in error_of(response)["message"]
    assert not Document.objects.exists()


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("setup.exe", b"MZ\x90\x00" + b"\x00" * 64, "unsupported file type (.exe)"),
        ("photo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "unsupported file type (.png)"),
        ("photo.txt", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "its content is a PNG image"),
    ],
)
def test_an_unsupported_type_is_415_with_the_error_shape(kb, name, content, says) -> None:
    client, _, _ = api_client(kb.account, ["ingest"])

    response = post_file(client, kb.slug, name, content)

    assert response.status_code == 415
    error = error_of(response)
    assert error["code"] == "unsupported_media_type" and says in error["message"]
    assert not Document.objects.exists()


def test_an_upload_needs_a_file_and_a_knowledge_base(kb) -> None:
    client, _, _ = api_client(kb.account, ["ingest"])

    no_file = client.post(DOCUMENTS, {"knowledge_base": kb.slug}, format="multipart")
    no_kb = client.post(
        DOCUMENTS, {"file": SimpleUploadedFile("a.txt", b"hello")}, format="multipart"
    )
    empty = post_file(client, kb.slug, "empty.txt", b"")

    assert no_file.status_code == no_kb.status_code == empty.status_code == 400
    assert error_of(no_file)["message"].startswith("file:")
    assert error_of(no_kb)["message"].startswith("knowledge_base:")
    assert error_of(empty)["message"].startswith("file:")


def test_one_file_per_request(kb) -> None:
    client, _, _ = api_client(kb.account, ["ingest"])

    response = client.post(
        DOCUMENTS,
        {
            "file": [SimpleUploadedFile("a.txt", b"one"), SimpleUploadedFile("b.txt", b"two")],
            "knowledge_base": kb.slug,
        },
        format="multipart",
    )

    assert response.status_code == 400 and "one file" in error_of(response)["message"]
    assert not Document.objects.exists()


def test_a_json_body_is_415(kb) -> None:
    client, _, _ = api_client(kb.account, ["ingest"])

    response = client.post(DOCUMENTS, {"knowledge_base": kb.slug}, format="json")

    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


def test_a_read_only_key_cannot_upload(kb) -> None:
    client, _, _ = api_client(kb.account, ["read"])

    response = post_file(client, kb.slug, "billing.md", BILLING)

    assert response.status_code == 403
    assert error_of(response)["code"] == "permission_denied"
    assert not Document.objects.exists()


def test_without_a_key_an_upload_is_401(kb) -> None:
    response = post_file(APIClient(), kb.slug, "billing.md", BILLING)

    assert response.status_code == 401 and response["WWW-Authenticate"]
    error_of(response)


def test_a_key_cannot_upload_into_another_accounts_knowledge_base(kb) -> None:
    client, _, _ = api_client(make_account("Other"), ["ingest"])

    by_slug = post_file(client, kb.slug, "billing.md", BILLING)
    by_id = post_file(client, kb.pk, "billing.md", BILLING)

    assert by_slug.status_code == by_id.status_code == 404
    assert error_of(by_id)["code"] == "not_found"
    assert not Document.objects.exists()


def test_a_session_admin_uploads_and_staff_cannot(kb) -> None:
    admin = make_user(staff=False, account=kb.account, role="admin")
    staff = make_user(staff=False, account=kb.account, role="staff")

    by_admin = post_file(session_client(admin), kb.slug, "billing.md", BILLING)
    by_staff = post_file(session_client(staff), kb.slug, "other.md", b"# Other\n\nText.\n")

    assert by_admin.status_code == 201
    assert by_staff.status_code == 403
    error_of(by_staff)


# --- List and get -------------------------------------------------------------------


def test_the_list_shows_the_callers_documents_filtered_and_paginated(kb) -> None:
    second = make_knowledge_base(kb.account, "Second")
    other = make_knowledge_base(make_account("Other"), "Other help")
    ready = upload(kb, "billing.md", BILLING).document
    document_ingest(document_id=ready.pk)
    failed = failed_document(kb)
    elsewhere = upload(second, "notes.txt", b"Some notes.").document
    upload(other, "secret.txt", b"Their secret.")
    client, _, _ = api_client(kb.account, ["read"])

    everything = client.get(DOCUMENTS).json()
    in_kb = client.get(DOCUMENTS, {"knowledge_base": kb.slug}).json()
    failures = client.get(DOCUMENTS, {"status": "failed"}).json()
    page = client.get(DOCUMENTS, {"limit": 2, "offset": 2}).json()

    assert everything["count"] == 3
    assert [d["id"] for d in everything["results"]] == [elsewhere.pk, failed.pk, ready.pk]
    assert {d["id"] for d in in_kb["results"]} == {ready.pk, failed.pk}
    assert [d["id"] for d in failures["results"]] == [failed.pk]
    assert failures["results"][0]["error"] and failures["results"][0]["progress"] == 0.0
    assert [d["id"] for d in page["results"]] == [ready.pk] and page["previous"]


def test_bad_list_filters_are_400_and_another_accounts_knowledge_base_404(kb) -> None:
    other = make_knowledge_base(make_account("Other"), "Other help")
    client, _, _ = api_client(kb.account, ["read"])

    bad_status = client.get(DOCUMENTS, {"status": "lost"})
    foreign = client.get(DOCUMENTS, {"knowledge_base": other.pk})

    assert bad_status.status_code == 400 and error_of(bad_status)["message"].startswith("status:")
    assert foreign.status_code == 404
    error_of(foreign)


def test_listing_documents_takes_the_same_queries_for_one_or_many(kb) -> None:
    client, _, _ = api_client(kb.account, ["read"])
    upload(kb, "one.txt", b"One.")
    client.get(DOCUMENTS)  # the key's last_used_at is written once
    with CaptureQueriesContext(connection) as one:
        client.get(DOCUMENTS)
    for n in range(5):
        upload(make_knowledge_base(kb.account, f"KB {n}"), f"{n}.txt", f"Text {n}.".encode())

    with CaptureQueriesContext(connection) as six:
        response = client.get(DOCUMENTS)

    assert response.json()["count"] == 6
    assert len(six) == len(one)


def test_another_account_sees_none_of_the_documents_and_gets_404_by_id(kb) -> None:
    document = upload(kb, "billing.md", BILLING).document
    client, _, _ = api_client(make_account("Other"), ["read", "ingest"])

    listing = client.get(DOCUMENTS)
    by_id = client.get(document_url(document.pk))
    retry = client.post(f"{document_url(document.pk)}/retry")
    delete = client.delete(document_url(document.pk))

    assert listing.status_code == 200 and listing.json()["count"] == 0
    assert by_id.status_code == retry.status_code == delete.status_code == 404
    for response in (by_id, retry, delete):
        assert error_of(response)["code"] == "not_found"
    assert Document.objects.filter(pk=document.pk).exists()


def test_an_unknown_or_absurd_id_is_404(kb) -> None:
    client, _, _ = api_client(kb.account, ["read"])

    assert client.get(document_url(987654)).status_code == 404
    assert client.get(document_url(10**30)).status_code == 404


def test_a_session_member_reads_documents_of_their_account(kb) -> None:
    document = upload(kb, "billing.md", BILLING).document
    staff = make_user(staff=False, account=kb.account, role="staff")

    response = session_client(staff).get(document_url(document.pk))

    assert response.status_code == 200 and response.json()["id"] == document.pk


# --- Delete -------------------------------------------------------------------------


def test_delete_removes_the_document_and_its_chunks(kb) -> None:
    document = upload(kb, "billing.md", BILLING).document
    document_ingest(document_id=document.pk)
    assert Chunk.objects.filter(document_id=document.pk).exists()
    client, _, _ = api_client(kb.account, ["read", "ingest"])

    response = client.delete(document_url(document.pk))

    assert response.status_code == 204 and not response.content
    assert not Chunk.objects.filter(document_id=document.pk).exists()
    assert client.get(document_url(document.pk)).status_code == 404


def test_a_read_only_key_cannot_delete(kb) -> None:
    document = upload(kb, "billing.md", BILLING).document
    client, _, _ = api_client(kb.account, ["read"])

    response = client.delete(document_url(document.pk))

    assert response.status_code == 403
    error_of(response)
    assert Document.objects.filter(pk=document.pk).exists()


def test_staff_in_the_documents_account_is_403_even_if_admin_elsewhere(kb) -> None:
    document = upload(kb, "billing.md", BILLING).document
    user = make_user(staff=False, account=kb.account, role="staff")
    Membership.objects.create(user_id=user.pk, account=make_account("Theirs"), role="admin")

    response = session_client(user).delete(document_url(document.pk))

    assert response.status_code == 403
    assert "admin role" in error_of(response)["message"]
    assert Document.objects.filter(pk=document.pk).exists()


# --- Retry --------------------------------------------------------------------------


def test_retrying_a_failed_document_queues_it_again(kb) -> None:
    document = failed_document(kb)
    client, _, _ = api_client(kb.account, ["ingest"])

    response = client.post(f"{document_url(document.pk)}/retry")

    assert response.status_code == 202, response.json()
    assert response.json()["status"] == "pending" and response.json()["error"] is None
    document.refresh_from_db()
    assert document.status == Document.Status.PENDING and document.attempts == 0


def test_retrying_a_document_that_has_not_failed_is_409(kb) -> None:
    document = upload(kb, "billing.md", BILLING).document
    document_ingest(document_id=document.pk)
    client, _, _ = api_client(kb.account, ["ingest"])

    response = client.post(f"{document_url(document.pk)}/retry")

    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "conflict" and "ready" in error["message"]


def test_the_schema_describes_the_upload_and_its_errors(kb) -> None:
    schema = APIClient().get("/api/schema/", {"format": "json"}).json()

    upload_operation = schema["paths"]["/api/v1/documents"]["post"]
    assert list(upload_operation["requestBody"]["content"]) == ["multipart/form-data"]
    assert {"200", "201", "400", "401", "403", "404", "413", "415"} <= set(
        upload_operation["responses"]
    )
    retry = schema["paths"]["/api/v1/documents/{document_id}/retry"]["post"]
    assert {"202", "404", "409"} <= set(retry["responses"])
    delete = schema["paths"]["/api/v1/documents/{document_id}"]["delete"]
    assert {"204", "403", "404"} <= set(delete["responses"])
