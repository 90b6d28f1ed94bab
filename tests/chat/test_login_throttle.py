"""Sign-in is throttled on both sign-in pages, the site's and the admin's, by one limiter:
per address and user name (tight), per address, and per user name (with more headroom, so
that one address cannot lock an account out everywhere). 429 with Retry-After, not a lockout.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from tests.factories import make_user

pytestmark = pytest.mark.django_db

SITE = "/accounts/login/"
ADMIN = "/admin/login/"
PASSWORD = "correct horse battery"  # noqa: S105 — the factories' password
BOTH_PAGES = pytest.mark.parametrize("page", [SITE, ADMIN], ids=["site", "admin"])


@pytest.fixture(autouse=True)
def _roomy_defaults(settings):
    """Each test tightens the one limit it is about; the others stay out of its way."""
    settings.CAIRN_LOGIN_RATE_LIMIT = "100/m"
    settings.CAIRN_LOGIN_IP_RATE_LIMIT = "100/m"
    settings.CAIRN_LOGIN_USER_RATE_LIMIT = "100/m"


def attempt(client, username: str, password: str = "wrong", address: str = "203.0.113.7",  # noqa: S107
            page: str = SITE):  # fmt: skip
    """What the page's form posts: the admin's carries next=/admin/ in a hidden field."""
    form = {"username": username, "password": password, "next": "/admin/" if page == ADMIN else ""}
    return client.post(page, form, REMOTE_ADDR=address)


def superuser():
    return get_user_model().objects.create_superuser(username="root", password=PASSWORD)


@BOTH_PAGES
def test_wrong_passwords_for_the_superuser_get_429_on_either_page(client, settings, page) -> None:
    settings.CAIRN_LOGIN_RATE_LIMIT = "3/m"
    root = superuser()

    statuses = [attempt(client, "root", page=page).status_code for _ in range(3)]
    refused = attempt(client, "root", PASSWORD, page=page)

    assert statuses == [200, 200, 200]  # the form again, with its error
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert "Too many sign-in attempts. Try again in" in refused.content.decode()
    assert "_auth_user_id" not in client.session  # even the right password waits
    assert root.last_login is None


def test_the_two_sign_in_pages_share_one_count(client, settings) -> None:
    settings.CAIRN_LOGIN_RATE_LIMIT = "4/m"
    superuser()

    statuses = [attempt(client, "root", page=page).status_code for page in [SITE, ADMIN] * 2]
    on_admin = attempt(client, "root", PASSWORD, page=ADMIN)
    on_site = attempt(client, "root", PASSWORD, page=SITE)

    assert statuses == [200, 200, 200, 200]
    assert on_admin.status_code == 429 and on_site.status_code == 429


def test_the_admin_refusal_is_the_admins_own_page(client, settings) -> None:
    settings.CAIRN_LOGIN_RATE_LIMIT = "1/m"
    superuser()
    attempt(client, "root", page=ADMIN)

    refused = attempt(client, "root", page=ADMIN)

    html = refused.content.decode()
    assert refused.status_code == 429
    assert "Cairn administration" in html and 'id="login-form"' in html
    assert 'value="root"' in html  # the user name is kept, the password is not checked
    assert "Please enter the correct username and password" not in html


def test_an_account_locked_from_one_address_still_signs_in_from_another(client, settings) -> None:
    settings.CAIRN_LOGIN_RATE_LIMIT = "3/m"
    settings.CAIRN_LOGIN_USER_RATE_LIMIT = "10/m"
    root = superuser()

    hammering = [attempt(client, "root", page=ADMIN).status_code for _ in range(50)]
    from_home = attempt(client, "root", PASSWORD, address="198.51.100.20", page=ADMIN)

    assert hammering == [200] * 3 + [429] * 47
    assert from_home.status_code == 302 and client.session["_auth_user_id"] == str(root.pk)


def test_one_account_attacked_from_many_addresses_is_throttled_too(client, settings) -> None:
    settings.CAIRN_LOGIN_USER_RATE_LIMIT = "3/m"
    user = make_user()

    statuses = [
        attempt(client, user.get_username(), address=f"198.51.100.{i}").status_code
        for i in range(4)
    ]

    assert statuses == [200, 200, 200, 429]


def test_one_address_trying_many_user_names_is_throttled(client, settings) -> None:
    settings.CAIRN_LOGIN_IP_RATE_LIMIT = "3/m"
    user = make_user()

    statuses = [attempt(client, f"guess{i}").status_code for i in range(3)]
    refused = attempt(client, user.get_username(), PASSWORD)
    elsewhere = attempt(client, user.get_username(), PASSWORD, address="198.51.100.20")

    assert statuses == [200, 200, 200] and refused.status_code == 429
    assert elsewhere.status_code == 302


def test_user_names_are_counted_without_case_or_surrounding_spaces(client, settings) -> None:
    settings.CAIRN_LOGIN_RATE_LIMIT = "2/m"
    superuser()

    statuses = [attempt(client, name).status_code for name in ["root", " ROOT ", "Root"]]

    assert statuses == [200, 200, 429]


@BOTH_PAGES
def test_a_normal_sign_in_works(client, page) -> None:
    root = superuser()

    response = attempt(client, "root", PASSWORD, page=page)

    assert response.status_code == 302 and client.session["_auth_user_id"] == str(root.pk)
    assert response["Location"] == ("/admin/" if page == ADMIN else reverse("chat:home"))


def test_the_admin_sign_in_page_still_shows_and_redirects_staff_already_in(client) -> None:
    root = superuser()

    page = client.get(ADMIN)
    client.force_login(root)
    again = client.get(ADMIN)

    assert page.status_code == 200 and 'id="login-form"' in page.content.decode()
    assert again.status_code == 302 and again["Location"] == "/admin/"
