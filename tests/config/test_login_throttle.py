"""Sign-in is throttled per address and per user name: 429 with Retry-After, not a lockout."""

from __future__ import annotations

import pytest

from tests.factories import make_user

pytestmark = pytest.mark.django_db


def attempt(client, username: str, password: str = "wrong", address: str = "203.0.113.7"):  # noqa: S107
    return client.post(
        "/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address
    )


def test_too_many_attempts_from_one_address_get_429(client, settings) -> None:
    settings.CAIRN_LOGIN_RATE_LIMIT = "3/m"
    user = make_user()

    statuses = [attempt(client, f"guess{i}").status_code for i in range(3)]
    refused = attempt(client, user.get_username(), "correct horse battery")

    assert statuses == [200, 200, 200]  # the form again, with its error
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert "Too many sign-in attempts" in refused.content.decode()
    assert "_auth_user_id" not in client.session  # even the right password waits


def test_one_account_attacked_from_many_addresses_is_throttled_too(client, settings) -> None:
    settings.CAIRN_LOGIN_RATE_LIMIT = "3/m"
    user = make_user()

    statuses = [
        attempt(client, user.get_username(), address=f"198.51.100.{i}").status_code
        for i in range(4)
    ]

    assert statuses == [200, 200, 200, 429]


def test_a_normal_sign_in_works(client) -> None:
    user = make_user()

    response = attempt(client, user.get_username(), "correct horse battery")

    assert response.status_code == 302 and client.session["_auth_user_id"] == str(user.pk)
