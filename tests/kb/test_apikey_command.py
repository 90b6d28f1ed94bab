"""`manage.py apikey create|list|revoke`: the key alone on stdout, never a secret listed."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from kb.models import ApiKey
from kb.services.api_keys import api_key_create, key_digest
from tests.factories import make_account

pytestmark = pytest.mark.django_db


def apikey(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("apikey", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def account():
    return make_account("Acme")


@pytest.mark.urls("tests.kb.api_key_test_urls")
def test_create_prints_only_the_key_and_it_authenticates(account) -> None:
    out, err = apikey("create", "--account", account.slug, "--scopes", "answer,read")

    key = out.removesuffix("\n")
    assert "\n" not in key and " " not in key, "stdout is the key alone"
    row = ApiKey.objects.get()
    assert key.startswith(f"cairn_{row.prefix}_") and row.digest == key_digest(key)
    assert (row.account, row.scopes, row.expires_at) == (account, "read,answer", None)
    assert "will not be shown again" in err and key not in err
    response = APIClient().get("/probe/read", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200
    assert response.json() == {"account_ids": [account.pk]}


def test_create_with_a_name_and_an_expiry(account) -> None:
    apikey(
        "create", "--account", account.slug, "--scopes", "ingest",
        "--name", "Nightly sync", "--expires-in-days", "30",
    )  # fmt: skip

    row = ApiKey.objects.get()
    assert (row.name, row.scopes) == ("Nightly sync", "ingest")
    assert row.expires_at is not None
    assert abs(row.expires_at - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)


def test_list_shows_prefixes_and_status_never_secrets(account) -> None:
    other = make_account("Bolt")
    used, used_key = api_key_create(account=account, name="Zapier", scopes=["read"])
    ApiKey.objects.filter(pk=used.pk).update(last_used_at=timezone.now())
    gone, gone_key = api_key_create(account=account, name="Old CRM", scopes=["answer"])
    ApiKey.objects.filter(pk=gone.pk).update(revoked_at=timezone.now())
    _, bolt_key = api_key_create(account=other, name="Bolt bot", scopes=["read"])

    out, _ = apikey("list")
    only_acme, _ = apikey("list", "--account", account.slug)

    for key in (used_key, gone_key, bolt_key):
        assert key.split("_", 2)[2] not in out
    lines = out.splitlines()
    assert lines[0].split() == ["KEY", "ACCOUNT", "NAME", "SCOPES", "STATUS", "LAST", "USED"]
    zapier = next(line for line in lines if "Zapier" in line)
    assert f"cairn_{used.prefix}_…" in zapier and "active" in zapier and "never" not in zapier
    old = next(line for line in lines if "Old CRM" in line)
    assert "revoked" in old and old.rstrip().endswith("never")
    assert "Bolt bot" in out and "Bolt bot" not in only_acme and "Zapier" in only_acme


def test_list_with_no_keys_says_so_on_stderr(account) -> None:
    out, err = apikey("list")

    assert out == "" and "No API keys." in err


@pytest.mark.parametrize("form", ["{prefix}", "cairn_{prefix}_…", "{key}"])
def test_revoke_by_prefix_or_as_listed_or_by_the_whole_key(account, form) -> None:
    row, key = api_key_create(account=account, name="Zapier", scopes=["read"])

    out, _ = apikey("revoke", form.format(prefix=row.prefix, key=key))

    row.refresh_from_db()
    assert row.revoked_at is not None
    assert f"Revoked cairn_{row.prefix}_…" in out


def test_revoking_twice_keeps_the_first_time(account) -> None:
    row, _ = api_key_create(account=account, name="Zapier", scopes=["read"])
    apikey("revoke", row.prefix)
    row.refresh_from_db()
    first = row.revoked_at

    out, err = apikey("revoke", row.prefix)

    row.refresh_from_db()
    assert row.revoked_at == first
    assert out == "" and "already revoked" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "--account", "nope", "--scopes", "read"], "no account with slug 'nope'"),
        (["create", "--account", "{slug}", "--scopes", "read,admin"], "unknown scope admin"),
        (["create", "--account", "{slug}", "--scopes", ","], "give at least one scope"),
        (["list", "--account", "nope"], "no account with slug 'nope'"),
        (["revoke", "deadbeef"], "no API key with prefix 'deadbeef'"),
    ],
)
def test_errors_are_one_line_command_errors(account, args, message) -> None:
    with pytest.raises(CommandError, match=message) as raised:
        apikey(*(arg.format(slug=account.slug) for arg in args))

    assert "\n" not in str(raised.value)
    assert not ApiKey.objects.exists()


def test_a_non_positive_expiry_is_a_usage_error(account) -> None:
    with pytest.raises(CommandError, match="expires-in-days"):
        apikey("create", "--account", account.slug, "--scopes", "read", "--expires-in-days", "0")


def test_scopes_must_be_given(account) -> None:
    with pytest.raises(CommandError, match="--scopes"):
        apikey("create", "--account", account.slug)
