"""Creating and revoking API keys; the secret is returned once and never stored."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime

from django.utils import timezone

from kb.models import Account, ApiKey

KEY_PREFIX = "cairn"


class ApiKeyError(ValueError):
    """Bad scopes or expiry; the message says which."""


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def scopes_clean(scopes: Iterable[str]) -> str:
    wanted = [s.strip() for s in scopes if s.strip()]
    unknown = sorted(set(wanted) - set(ApiKey.Scope.values))
    if unknown:
        raise ApiKeyError(
            f"unknown scope {', '.join(unknown)}; use {', '.join(ApiKey.Scope.values)}"
        )
    if not wanted:
        raise ApiKeyError("give at least one scope")
    return ",".join(s for s in ApiKey.Scope.values if s in wanted)


def api_key_create(
    *,
    account: Account,
    name: str,
    scopes: Iterable[str],
    expires_at: datetime | None = None,
    created_by_id: int | None = None,
) -> tuple[ApiKey, str]:
    """A new key for ``account``: (the row, the full key to show once)."""
    if expires_at is not None and expires_at <= timezone.now():
        raise ApiKeyError("the expiry date is in the past")
    prefix = secrets.token_hex(4)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey.objects.create(
        account=account, name=name.strip() or "API key", prefix=prefix, digest=key_digest(key),
        scopes=scopes_clean(scopes), expires_at=expires_at, created_by_id=created_by_id,
    )  # fmt: skip
    return row, key


def api_key_revoke(*, api_key: ApiKey) -> None:
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
