"""The audit log: admin writes, document reads, sign-ins and API keys are recorded with
who, which account, which object and from where; the log itself is read-only and each
account's admins see only that account's events."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import DatabaseError
from django.forms.models import model_to_dict
from django.urls import reverse

from kb.admin.audit import AuditedAdmin
from kb.models import ApiKey, AuditEvent, Document
from kb.services.api_keys import api_key_create, api_key_revoke
from kb.services.audit import audit_record
from kb.services.documents import accounts_delete
from tests.factories import make_account, make_document, make_knowledge_base, make_user
from tests.support.api import api_client

pytestmark = pytest.mark.django_db

Action = AuditEvent.Action
PASSWORD = "correct horse battery"  # what tests.factories.make_user sets


@pytest.fixture
def tenants():
    account_a, account_b = make_account("Acme"), make_account("Bolt")
    kb_a, kb_b = make_knowledge_base(account_a, "Acme help"), make_knowledge_base(account_b)
    return {
        "a": account_a,
        "b": account_b,
        "kb_a": kb_a,
        "kb_b": kb_b,
        "doc_a": make_document(kb_a, "Acme refund policy"),
        "doc_b": make_document(kb_b, "Bolt secret roadmap"),
        "admin_a": make_user(account=account_a, role="admin"),
    }


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def everything_recorded() -> str:
    """Every column of every audit row, as text: for "this never reached the log"."""
    return repr([model_to_dict(event) for event in AuditEvent.objects.all()])


# --- Admin writes -------------------------------------------------------------------


def test_an_admin_change_records_the_changed_field_names_and_the_actor(client, tenants) -> None:
    client.force_login(tenants["admin_a"])
    document = tenants["doc_a"]

    response = client.post(
        reverse("admin:kb_document_change", args=[document.pk]),
        {"title": "Acme refunds (2026)"},
        REMOTE_ADDR="198.51.100.20",
    )

    assert response.status_code == 302
    [event] = events(Action.ADMIN_CHANGE)
    assert event.actor == tenants["admin_a"]
    assert event.actor_label == tenants["admin_a"].get_username()
    assert event.account == tenants["a"]
    assert (event.target_type, event.target_id) == ("kb.document", str(document.pk))
    assert event.target_repr == "Acme refunds (2026)"
    assert event.detail == {"fields": ["title"]}, "names of the changed fields, not values"
    assert event.ip == "198.51.100.20"


def test_an_admin_addition_records_the_fields_that_were_set(client, tenants) -> None:
    client.force_login(make_user(account=tenants["a"], role="admin"))

    client.post(
        reverse("admin:kb_knowledgebase_add"),
        {
            "account": tenants["a"].pk,
            "name": "Onboarding",
            "slug": "onboarding",
            "description": "Private plans",
            "embedding_model": "sentence-transformers/all-MiniLM-L6-v2",
        },
    )

    [event] = events(Action.ADMIN_ADD)
    assert event.target_type == "kb.knowledgebase" and event.account == tenants["a"]
    assert {"account", "name", "slug", "description"} <= set(event.detail["fields"])
    assert "Private plans" not in everything_recorded()


def test_a_bulk_admin_action_records_one_event_with_the_count(client, tenants) -> None:
    keys = [
        api_key_create(account=tenants["a"], name=name, scopes=["read"])[0]
        for name in ("zapier", "crm")
    ]
    client.force_login(tenants["admin_a"])

    client.post(
        reverse("admin:kb_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": [key.pk for key in keys]},
    )

    [event] = events(Action.ADMIN_BULK_ACTION)
    assert event.detail == {"action": "revoke_selected", "model": "kb.apikey", "count": 2}
    assert event.account == tenants["a"] and event.actor == tenants["admin_a"]
    revoked = events(Action.APIKEY_REVOKED)
    assert {e.target_id for e in revoked} == {str(key.pk) for key in keys}
    assert all(e.actor == tenants["admin_a"] for e in revoked)


def test_a_deletion_records_an_event_that_outlives_the_deleted_object(client, tenants) -> None:
    client.force_login(tenants["admin_a"])
    document = tenants["doc_a"]

    client.post(reverse("admin:kb_document_delete", args=[document.pk]), {"post": "yes"})

    assert not Document.objects.filter(pk=document.pk).exists()
    [event] = events(Action.ADMIN_DELETE)
    assert (event.target_type, event.target_id) == ("kb.document", str(document.pk))
    assert event.target_repr == "Acme refund policy"
    assert event.account == tenants["a"] and event.actor == tenants["admin_a"]


def test_deleting_a_selection_records_each_object_and_no_second_bulk_event(client, tenants) -> None:
    # A second knowledge base: the factory's documents have no source, unique per one.
    second = make_document(make_knowledge_base(tenants["a"]), "Acme billing")
    client.force_login(tenants["admin_a"])

    client.post(
        reverse("admin:kb_document_changelist"),
        {
            "action": "delete_selected",
            "_selected_action": [tenants["doc_a"].pk, second.pk],
            "post": "yes",
        },
    )

    assert {e.target_repr for e in events(Action.ADMIN_DELETE)} == {
        "Acme refund policy",
        "Acme billing",
    }
    assert events(Action.ADMIN_BULK_ACTION) == []


def test_the_confirmation_page_of_a_selection_deletion_records_nothing(client, tenants) -> None:
    client.force_login(tenants["admin_a"])

    page = client.post(
        reverse("admin:kb_document_changelist"),
        {"action": "delete_selected", "_selected_action": [tenants["doc_a"].pk]},
    )

    assert page.status_code == 200
    assert not AuditEvent.objects.filter(action__startswith="admin.").exists()


def test_an_admin_change_that_cannot_be_audited_is_not_made(client, tenants, monkeypatch) -> None:
    client.force_login(tenants["admin_a"])
    document = tenants["doc_a"]

    def broken_insert(*args, **kwargs):
        raise DatabaseError("audit table unwritable")

    monkeypatch.setattr("kb.services.audit._insert", broken_insert)

    with pytest.raises(DatabaseError):
        client.post(reverse("admin:kb_document_change", args=[document.pk]), {"title": "x"})

    document.refresh_from_db()
    assert document.title == "Acme refund policy"


def test_every_cairn_model_admin_is_audited() -> None:
    unaudited = [
        type(model_admin).__name__
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label in {"kb", "ingest", "chat"}
        and model is not AuditEvent
        and not isinstance(model_admin, AuditedAdmin)
    ]

    assert unaudited == [], "put kb.admin.audit.AuditedAdmin first in these admins' bases"


# --- Document reads ----------------------------------------------------------------


def test_viewing_a_document_page_records_a_view_with_its_account(client, tenants) -> None:
    reader = make_user(staff=False, account=tenants["a"], role="staff")
    client.force_login(reader)
    document = tenants["doc_a"]

    response = client.get(reverse("kb:document_detail", args=[document.pk]))

    assert response.status_code == 200
    [event] = events(Action.DOCUMENT_VIEW)
    assert event.account == tenants["a"] and event.actor == reader
    assert (event.target_type, event.target_id) == ("kb.document", str(document.pk))


def test_a_refused_document_page_records_no_view(client, tenants) -> None:
    client.force_login(tenants["admin_a"])

    response = client.get(reverse("kb:document_detail", args=[tenants["doc_b"].pk]))

    assert response.status_code == 404
    assert events(Action.DOCUMENT_VIEW) == []


def test_a_document_page_is_shown_even_when_its_view_cannot_be_recorded(
    client, tenants, monkeypatch
) -> None:
    client.force_login(tenants["admin_a"])

    def broken_insert(*args, **kwargs):
        raise DatabaseError("audit table unwritable")

    monkeypatch.setattr("kb.services.audit._insert", broken_insert)

    response = client.get(reverse("kb:document_detail", args=[tenants["doc_a"].pk]))

    assert response.status_code == 200


def test_a_rest_document_read_with_an_api_key_records_the_key(tenants) -> None:
    client, key, _ = api_client(tenants["a"], ["read"])
    document = tenants["doc_a"]

    response = client.get(f"/api/v1/documents/{document.pk}")

    assert response.status_code == 200
    [event] = events(Action.DOCUMENT_READ_API)
    assert event.api_key == key and event.actor is None
    assert event.actor_label == f"api key {key.prefix}"
    assert event.account == tenants["a"]
    assert event.target_id == str(document.pk)


def test_an_api_key_read_survives_the_keys_deletion(tenants) -> None:
    client, key, _ = api_client(tenants["a"], ["read"])
    client.get(f"/api/v1/documents/{tenants['doc_a'].pk}")

    ApiKey.objects.filter(pk=key.pk).delete()

    [event] = events(Action.DOCUMENT_READ_API)
    assert event.api_key is None and event.actor_label == f"api key {key.prefix}"


# --- Sign-ins -----------------------------------------------------------------------


def test_a_failed_login_records_the_username_but_not_the_password(client) -> None:
    user = make_user()

    response = client.post(
        "/accounts/login/",
        {"username": user.get_username(), "password": "hunter2-not-it"},
        REMOTE_ADDR="203.0.113.7",
    )

    assert response.status_code == 200  # the form again, with its error
    [event] = events(Action.LOGIN_FAILED)
    assert event.actor_label == user.get_username() and event.actor is None
    assert event.ip == "203.0.113.7" and event.account is None
    assert "hunter2" not in everything_recorded()


def test_a_successful_login_records_the_user(client) -> None:
    user = make_user()

    client.post(
        "/accounts/login/",
        {"username": user.get_username(), "password": PASSWORD},
        REMOTE_ADDR="203.0.113.8",
    )

    [event] = events(Action.LOGIN_SUCCEEDED)
    assert event.actor == user and event.ip == "203.0.113.8"
    assert PASSWORD not in everything_recorded()


def test_the_client_address_is_read_behind_trusted_proxies_only(client, settings) -> None:
    settings.CAIRN_TRUSTED_PROXIES = 1
    user = make_user()

    client.post(
        "/accounts/login/",
        {"username": user.get_username(), "password": "wrong"},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.9",
    )

    [event] = events(Action.LOGIN_FAILED)
    assert event.ip == "198.51.100.9", "the entry the one trusted proxy wrote"


# --- API keys -----------------------------------------------------------------------


def test_api_keys_created_and_revoked_are_recorded_without_their_secret(tenants) -> None:
    owner = tenants["admin_a"]

    row, key = api_key_create(
        account=tenants["a"], name="Zapier", scopes=["read"], created_by_id=owner.pk
    )
    api_key_revoke(api_key=row, revoked_by=owner)
    api_key_revoke(api_key=row, revoked_by=owner)  # already revoked: nothing happens

    [created] = events(Action.APIKEY_CREATED)
    [revoked] = events(Action.APIKEY_REVOKED)
    assert created.actor == owner and created.account == tenants["a"]
    assert created.detail == {"scopes": ["read"], "expires": False}
    assert (revoked.target_type, revoked.target_id) == ("kb.apikey", str(row.pk))
    assert key not in everything_recorded() and row.digest not in everything_recorded()


# --- The audit log in the admin ------------------------------------------------------


def test_the_audit_admin_is_read_only(admin_client, tenants) -> None:
    event = audit_record(action=Action.DOCUMENT_VIEW, target=tenants["doc_a"])
    assert event is not None
    change_url = reverse("admin:kb_auditevent_change", args=[event.pk])

    listing = admin_client.get(reverse("admin:kb_auditevent_changelist"))
    detail = admin_client.get(change_url)
    changed = admin_client.post(change_url, {"action": "login.failed"})
    added = admin_client.get(reverse("admin:kb_auditevent_add"))
    deleted = admin_client.post(
        reverse("admin:kb_auditevent_delete", args=[event.pk]), {"post": "yes"}
    )

    assert listing.status_code == 200 and "delete_selected" not in listing.content.decode()
    assert detail.status_code == 200
    assert changed.status_code == 403 and added.status_code == 403
    assert deleted.status_code == 403
    event.refresh_from_db()
    assert event.action == Action.DOCUMENT_VIEW


def test_an_account_admin_sees_only_their_own_accounts_events(client, tenants) -> None:
    audit_record(action=Action.DOCUMENT_VIEW, target=tenants["doc_a"])
    other = audit_record(action=Action.DOCUMENT_VIEW, target=tenants["doc_b"])
    audit_record(action=Action.LOGIN_FAILED, actor_label="somebody")
    assert other is not None
    client.force_login(tenants["admin_a"])

    listing = client.get(reverse("admin:kb_auditevent_changelist"))
    other_page = client.get(reverse("admin:kb_auditevent_change", args=[other.pk]))

    page = listing.content.decode()
    assert "Acme refund policy" in page
    assert "Bolt secret roadmap" not in page
    assert "somebody" not in page, "events of no account are for superusers only"
    assert other_page.status_code == 302  # Django's "does not exist" redirect


def test_an_accounts_staff_do_not_see_its_audit_log(client, tenants) -> None:
    audit_record(action=Action.DOCUMENT_VIEW, target=tenants["doc_a"])
    client.force_login(make_user(account=tenants["a"], role="staff"))

    listing = client.get(reverse("admin:kb_auditevent_changelist"))

    assert listing.status_code == 403


def test_a_superuser_sees_every_event(client, tenants) -> None:
    audit_record(action=Action.DOCUMENT_VIEW, target=tenants["doc_a"])
    audit_record(action=Action.DOCUMENT_VIEW, target=tenants["doc_b"])
    audit_record(action=Action.LOGIN_FAILED, actor_label="somebody")
    client.force_login(
        get_user_model().objects.create_superuser("root", password="correct horse battery")
    )

    page = client.get(reverse("admin:kb_auditevent_changelist")).content.decode()

    assert "Acme refund policy" in page and "Bolt secret roadmap" in page
    assert "somebody" in page


def test_events_outlive_their_account(tenants) -> None:
    event = audit_record(action=Action.DOCUMENT_VIEW, target=tenants["doc_b"])
    assert event is not None

    accounts_delete(accounts=type(tenants["b"]).objects.filter(pk=tenants["b"].pk))

    event.refresh_from_db()
    assert event.account is None and event.target_repr == "Bolt secret roadmap"
