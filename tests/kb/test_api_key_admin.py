"""API keys in the admin: the key is shown once, only its digest is kept, and an
admin of one account never sees or revokes another account's keys."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from kb.models import ApiKey, Membership
from kb.services.api_keys import api_key_create, api_key_revoke
from tests.factories import make_account, make_user

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:kb_apikey_changelist")
ADD = reverse("admin:kb_apikey_add")


@pytest.fixture
def tenants():
    account_a, account_b = make_account("Acme"), make_account("Bolt")
    key_a, _ = api_key_create(account=account_a, name="Acme zapier", scopes=["read"])
    key_b, _ = api_key_create(account=account_b, name="Bolt crm", scopes=["read"])
    return {
        "a": account_a,
        "b": account_b,
        "key_a": key_a,
        "key_b": key_b,
        "admin_a": make_user(account=account_a, role="admin"),
    }


def _messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_adding_a_key_shows_it_once_and_stores_only_its_digest(client, tenants) -> None:
    client.force_login(tenants["admin_a"])

    response = client.post(
        ADD,
        {"name": "Helpdesk bot", "account": tenants["a"].pk, "scopes": ["answer", "read"]},
        follow=True,
    )

    assert response.status_code == 200
    page = response.content.decode()
    shown = re.findall(r"cairn_[0-9a-f]+_[A-Za-z0-9_-]{40,}", page)
    assert len(shown) == 1, "the full key is on the page after saving"
    key = shown[0]
    assert "copy it now: it will not be shown again" in page
    row = ApiKey.objects.get(name="Helpdesk bot")
    assert row.account == tenants["a"]
    assert row.scopes == "read,answer"
    assert row.created_by == tenants["admin_a"]
    assert key.startswith(f"cairn_{row.prefix}_")
    assert row.digest == hashlib.sha256(key.encode()).hexdigest()
    secret = key.split("_", 2)[2]
    assert not any(
        secret in str(v) for v in ApiKey.objects.filter(pk=row.pk).values().get().values()
    )

    again = client.get(reverse("admin:kb_apikey_change", args=[row.pk])).content.decode()
    listing = client.get(CHANGELIST).content.decode()
    assert secret not in again and secret not in listing
    assert f"cairn_{row.prefix}_…" in listing


def test_the_add_form_offers_only_accounts_the_user_administers(client, tenants) -> None:
    viewer_of = make_account("Corvid")
    admin_a = tenants["admin_a"]
    Membership.objects.create(user=admin_a, account=viewer_of, role="staff")
    client.force_login(admin_a)

    form = client.get(ADD).content.decode()
    forged = client.post(ADD, {"name": "sneaky", "account": tenants["b"].pk, "scopes": ["read"]})

    assert "Acme" in form and "Bolt" not in form and "Corvid" not in form
    assert 'type="checkbox" name="scopes"' in form
    assert forged.status_code == 200 and "Select a valid choice" in forged.content.decode()
    assert not ApiKey.objects.filter(name="sneaky").exists()


def test_a_past_expiry_is_refused_by_the_form(client, tenants) -> None:
    client.force_login(tenants["admin_a"])
    yesterday = timezone.localtime() - timedelta(days=1)

    response = client.post(
        ADD,
        {
            "name": "late",
            "account": tenants["a"].pk,
            "scopes": ["read"],
            "expires_at_0": yesterday.strftime("%Y-%m-%d"),
            "expires_at_1": yesterday.strftime("%H:%M:%S"),
        },
    )

    assert response.status_code == 200
    assert "The expiry must be in the future" in response.content.decode()
    assert not ApiKey.objects.filter(name="late").exists()


def test_an_admin_of_one_account_never_sees_another_accounts_keys(client, tenants) -> None:
    client.force_login(tenants["admin_a"])
    key_b = tenants["key_b"]

    listing = client.get(CHANGELIST).content.decode()
    searched = client.get(CHANGELIST, {"q": f"cairn_{key_b.prefix}_"}).content.decode()
    opened = client.get(reverse("admin:kb_apikey_change", args=[key_b.pk]))

    assert "Acme zapier" in listing
    assert "Bolt crm" not in listing and key_b.prefix not in listing
    assert "Bolt" not in listing, "the account filter must not leak other accounts"
    assert "Bolt crm" not in searched
    assert opened.status_code == 302 and opened.url == reverse("admin:index")


def test_an_admin_cannot_revoke_another_accounts_key(client, tenants) -> None:
    client.force_login(tenants["admin_a"])
    key_b = tenants["key_b"]

    client.post(
        CHANGELIST,
        {"action": "revoke_selected", "_selected_action": [key_b.pk, tenants["key_a"].pk]},
    )

    key_b.refresh_from_db()
    tenants["key_a"].refresh_from_db()
    assert key_b.revoked_at is None
    assert tenants["key_a"].revoked_at is not None


def test_the_revoke_action_revokes_the_selected_keys(client, tenants) -> None:
    spare, _ = api_key_create(account=tenants["a"], name="Spare", scopes=["read"])
    client.force_login(tenants["admin_a"])

    response = client.post(
        CHANGELIST,
        {"action": "revoke_selected", "_selected_action": [tenants["key_a"].pk]},
        follow=True,
    )

    tenants["key_a"].refresh_from_db()
    spare.refresh_from_db()
    assert tenants["key_a"].revoked_at is not None
    assert spare.revoked_at is None
    assert "Revoked 1 key(s)." in _messages(response)
    revoked_list = client.get(CHANGELIST, {"status": "revoked"}).content.decode()
    active_list = client.get(CHANGELIST, {"status": "active"}).content.decode()
    assert "Acme zapier" in revoked_list and "Spare" not in revoked_list
    assert "Spare" in active_list and "Acme zapier" not in active_list


def test_revoking_an_already_revoked_key_keeps_its_time(client, tenants) -> None:
    key_a = tenants["key_a"]
    api_key_revoke(api_key=key_a)
    key_a.refresh_from_db()
    first = key_a.revoked_at
    client.force_login(tenants["admin_a"])

    response = client.post(
        CHANGELIST, {"action": "revoke_selected", "_selected_action": [key_a.pk]}, follow=True
    )

    key_a.refresh_from_db()
    assert key_a.revoked_at == first
    assert "Revoked 0 key(s)." in _messages(response)


def test_status_shows_active_expired_and_revoked(client, tenants) -> None:
    expired, _ = api_key_create(account=tenants["a"], name="Old", scopes=["read"])
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(days=1))
    api_key_revoke(api_key=tenants["key_a"])
    api_key_create(account=tenants["a"], name="Fresh", scopes=["read"])
    client.force_login(tenants["admin_a"])

    listing = client.get(CHANGELIST).content.decode()
    expired_list = client.get(CHANGELIST, {"status": "expired"}).content.decode()

    for status in ("active", "expired", "revoked"):
        assert f'<td class="field-status">{status}</td>' in listing
    assert "Old" in expired_list and "Fresh" not in expired_list


def test_only_name_and_expiry_can_change(client, tenants) -> None:
    key_a = tenants["key_a"]
    client.force_login(tenants["admin_a"])
    url = reverse("admin:kb_apikey_change", args=[key_a.pk])
    digest, scopes = key_a.digest, key_a.scopes

    response = client.post(
        url,
        {
            "name": "Acme zapier (prod)",
            "expires_at_0": "",
            "expires_at_1": "",
            "scopes": "read,answer,ingest",
            "account": tenants["b"].pk,
            "digest": "0" * 64,
        },
    )

    assert response.status_code == 302
    key_a.refresh_from_db()
    assert key_a.name == "Acme zapier (prod)"
    assert (key_a.scopes, key_a.account, key_a.digest) == (scopes, tenants["a"], digest)


def test_staff_may_view_keys_but_not_add_change_or_revoke(client, tenants) -> None:
    viewer = make_user(account=tenants["a"], role="staff")
    client.force_login(viewer)
    key_a = tenants["key_a"]

    listing = client.get(CHANGELIST)
    add_page = client.get(ADD)
    added = client.post(ADD, {"name": "mine", "account": tenants["a"].pk, "scopes": ["read"]})
    changed = client.post(reverse("admin:kb_apikey_change", args=[key_a.pk]), {"name": "x"})
    client.post(CHANGELIST, {"action": "revoke_selected", "_selected_action": [key_a.pk]})

    assert listing.status_code == 200 and "Acme zapier" in listing.content.decode()
    assert "revoke_selected" not in listing.content.decode()
    assert add_page.status_code == 403 and added.status_code == 403
    assert changed.status_code == 403
    assert not ApiKey.objects.filter(name="mine").exists()
    key_a.refresh_from_db()
    assert key_a.name == "Acme zapier" and key_a.revoked_at is None


def test_a_superuser_sees_every_accounts_keys(admin_client, tenants) -> None:
    listing = admin_client.get(CHANGELIST).content.decode()

    assert "Acme zapier" in listing and "Bolt crm" in listing
