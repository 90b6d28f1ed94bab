"""API keys: created with a visible prefix and a secret stored only as a digest, and
accepted (or refused) by the API's authentication, scopes and account scoping."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from kb.models import ApiKey, Membership
from kb.services.api_keys import ApiKeyError, api_key_create, api_key_revoke, scopes_clean
from tests.factories import make_account, make_knowledge_base, make_user
from tests.support.api import api_client, error_of

pytestmark = pytest.mark.django_db

READ_URL = "/probe/read"
INGEST_URL = "/probe/ingest"
probe_urls = pytest.mark.urls("tests.kb.api_key_test_urls")


# --- the service ------------------------------------------------------------------


def test_the_key_shows_its_prefix_and_only_its_digest_is_stored() -> None:
    account = make_account("Acme")

    row, key = api_key_create(account=account, name="Zapier", scopes=["read"])

    assert key.startswith(f"cairn_{row.prefix}_")
    secret = key.removeprefix(f"cairn_{row.prefix}_")
    assert len(secret) >= 40, "256 random bits"
    assert row.digest == hashlib.sha256(key.encode()).hexdigest()
    stored = ApiKey.objects.filter(pk=row.pk).values().get()
    assert not any(secret in str(value) for value in stored.values())
    assert str(row) == f"Zapier (cairn_{row.prefix}_…)"


def test_two_keys_never_share_a_prefix_or_a_secret() -> None:
    account = make_account()

    (first, key1), (second, key2) = (
        api_key_create(account=account, name="a", scopes=["read"]),
        api_key_create(account=account, name="b", scopes=["read"]),
    )

    assert first.prefix != second.prefix and key1 != key2


def test_scopes_are_validated_and_kept_in_a_fixed_order() -> None:
    assert scopes_clean([" answer", "read ", "answer"]) == "read,answer"
    with pytest.raises(ApiKeyError, match="unknown scope admin"):
        scopes_clean(["read", "admin"])
    with pytest.raises(ApiKeyError, match="at least one scope"):
        scopes_clean(["", " "])


def test_a_key_cannot_be_born_expired() -> None:
    with pytest.raises(ApiKeyError, match="in the past"):
        api_key_create(
            account=make_account(),
            name="late",
            scopes=["read"],
            expires_at=timezone.now() - timedelta(seconds=1),
        )

    assert not ApiKey.objects.exists()


def test_revoking_twice_keeps_the_first_revocation_time() -> None:
    row, _ = api_key_create(account=make_account(), name="old", scopes=["read"])
    api_key_revoke(api_key=row)
    row.refresh_from_db()
    first = row.revoked_at

    api_key_revoke(api_key=row)

    row.refresh_from_db()
    assert first is not None and row.revoked_at == first


# --- authentication through an API view --------------------------------------------


@probe_urls
def test_a_bearer_key_acts_for_its_account_only() -> None:
    account, other = make_account("Acme"), make_account("Bolt")
    client, row, _ = api_client(account, scopes=["read"])

    response = client.get(READ_URL)

    assert response.status_code == 200, response.content
    assert response.json() == {"account_ids": [account.pk]}
    assert other.pk not in response.json()["account_ids"]


@probe_urls
def test_the_x_api_key_header_works_too() -> None:
    account = make_account()
    _, _, key = api_client(account, scopes=["read"])

    response = APIClient().get(READ_URL, HTTP_X_API_KEY=key)

    assert response.status_code == 200
    assert response.json() == {"account_ids": [account.pk]}


@probe_urls
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"HTTP_AUTHORIZATION": "Bearer cairn_00000000_not-a-real-key"},
        {"HTTP_X_API_KEY": "cairn_00000000_not-a-real-key"},
    ],
    ids=["no key", "wrong bearer", "wrong x-api-key"],
)
def test_a_missing_or_wrong_key_is_401_with_the_error_shape(headers) -> None:
    api_client(make_account(), scopes=["read"])  # a real key exists, but is not sent

    response = APIClient().get(READ_URL, **headers)

    assert response.status_code == 401
    assert error_of(response)["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@probe_urls
def test_a_wrong_key_says_why() -> None:
    response = APIClient().get(READ_URL, HTTP_AUTHORIZATION="Bearer cairn_0_wrong")

    assert error_of(response)["message"] == "This API key is not valid, expired or revoked."


@probe_urls
def test_a_revoked_key_is_refused() -> None:
    client, row, _ = api_client(make_account(), scopes=["read"])
    assert client.get(READ_URL).status_code == 200

    api_key_revoke(api_key=row)

    response = client.get(READ_URL)
    assert response.status_code == 401
    assert error_of(response)["message"] == "This API key is not valid, expired or revoked."


@probe_urls
def test_an_expired_key_is_refused() -> None:
    client, row, _ = api_client(make_account(), scopes=["read"])
    ApiKey.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = client.get(READ_URL)

    assert response.status_code == 401
    assert response.has_header("WWW-Authenticate")


@probe_urls
def test_a_key_with_a_future_expiry_works() -> None:
    client, row, _ = api_client(make_account(), scopes=["read"])
    ApiKey.objects.filter(pk=row.pk).update(expires_at=timezone.now() + timedelta(minutes=5))

    assert client.get(READ_URL).status_code == 200


@probe_urls
def test_last_used_is_recorded_at_most_once_a_minute() -> None:
    client, row, _ = api_client(make_account(), scopes=["read"])
    assert row.last_used_at is None

    client.get(READ_URL)
    row.refresh_from_db()
    first_use = row.last_used_at
    client.get(READ_URL)
    row.refresh_from_db()

    assert first_use is not None and timezone.now() - first_use < timedelta(seconds=30)
    assert row.last_used_at == first_use, "not rewritten within the minute"

    a_while_ago = timezone.now() - timedelta(minutes=2)
    ApiKey.objects.filter(pk=row.pk).update(last_used_at=a_while_ago)
    client.get(READ_URL)
    row.refresh_from_db()
    assert row.last_used_at is not None and row.last_used_at > a_while_ago


@probe_urls
def test_a_refused_key_does_not_record_a_use() -> None:
    client, row, _ = api_client(make_account(), scopes=["read"])
    api_key_revoke(api_key=row)

    client.get(READ_URL)

    row.refresh_from_db()
    assert row.last_used_at is None


@probe_urls
def test_a_key_without_the_ingest_scope_gets_403_from_an_ingest_view() -> None:
    client, _, _ = api_client(make_account(), scopes=["read", "answer"])

    response = client.post(INGEST_URL)

    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "permission_denied"
    assert error["message"] == "This API key does not have the scope this endpoint needs."


@probe_urls
def test_a_key_with_the_ingest_scope_may_ingest_but_not_read_without_read() -> None:
    account = make_account()
    client, _, _ = api_client(account, scopes=["ingest"])

    assert client.post(INGEST_URL).json() == {"account_ids": [account.pk]}
    assert client.get(READ_URL).status_code == 403


@probe_urls
def test_the_browser_session_acts_for_the_users_memberships() -> None:
    mine, theirs = make_account("Acme"), make_account("Bolt")
    make_account("Unrelated")
    user: Any = make_user(account=mine, role="staff")  # the stubs want User, not AbstractUser
    Membership.objects.create(user=user, account=theirs, role="admin")
    client = APIClient()
    client.force_login(user)

    read = client.get(READ_URL)
    ingest = client.post(INGEST_URL)

    assert read.json() == {"account_ids": sorted([mine.pk, theirs.pk])}
    assert ingest.json() == {"account_ids": [theirs.pk]}, "ingest needs the admin role"


@probe_urls
def test_a_session_without_membership_is_refused() -> None:
    outsider: Any = make_user(account=None)
    client = APIClient()
    client.force_login(outsider)

    response = client.get(READ_URL)

    assert response.status_code == 403


# --- a real endpoint ------------------------------------------------------------------


def test_the_knowledge_bases_endpoint_lists_only_the_keys_account() -> None:
    mine, theirs = make_account("Acme"), make_account("Bolt")
    make_knowledge_base(mine, "Acme help")
    make_knowledge_base(theirs, "Bolt secrets")
    client, row, key = api_client(mine, scopes=["read"])

    listed = client.get("/api/v1/knowledge-bases")
    with_header = APIClient().get("/api/v1/knowledge-bases", HTTP_X_API_KEY=key)
    api_key_revoke(api_key=row)
    revoked = client.get("/api/v1/knowledge-bases")

    assert listed.status_code == 200 and with_header.status_code == 200
    assert "Acme help" in listed.content.decode()
    assert "Bolt secrets" not in listed.content.decode()
    assert revoked.status_code == 401 and error_of(revoked)["code"] == "not_authenticated"
