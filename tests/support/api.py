"""API clients for tests: DRF's APIClient carrying a real API key of an account."""

from __future__ import annotations

from collections.abc import Iterable

from rest_framework.test import APIClient

from kb.models import Account, ApiKey
from kb.services.api_keys import api_key_create


def api_client(
    account: Account, scopes: Iterable[str] = ("read", "answer", "ingest")
) -> tuple[APIClient, ApiKey, str]:
    """(a client sending ``Authorization: Bearer <key>``, the key's row, the key)."""
    row, key = api_key_create(account=account, name="tests", scopes=scopes)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client, row, key


def error_of(response) -> dict:
    """The error object of the API's one error shape (asserting the shape)."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message"} <= set(body["error"]), body
    return body["error"]
