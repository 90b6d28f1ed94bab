"""Every page carries a strict Content-Security-Policy, and no page needs inline script."""

from __future__ import annotations

import re

import pytest

from tests.factories import make_account, make_knowledge_base, make_user

pytestmark = pytest.mark.django_db

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.IGNORECASE)


def test_pages_forbid_inline_script_third_parties_and_external_images(client) -> None:
    account = make_account("Acme")
    make_knowledge_base(account, "Help")
    client.force_login(make_user(account=account, role="staff"))

    for path in ("/chat/", "/accounts/login/", "/api/v1/knowledge-bases"):
        response = client.get(path)
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy, path
        assert "img-src 'self' data:" in policy and "default-src 'self'" in policy, path
        assert "frame-ancestors 'none'" in policy, path
        if response["Content-Type"].startswith("text/html"):
            assert not INLINE_SCRIPT.search(response.content.decode()), path
            assert " hx-on" not in response.content.decode(), path


def test_the_api_docs_page_runs_without_inline_script(client) -> None:
    response = client.get("/api/docs/")

    assert response.status_code == 200
    assert not INLINE_SCRIPT.search(response.content.decode())
    assert "script-src 'self';" in response["Content-Security-Policy"]
