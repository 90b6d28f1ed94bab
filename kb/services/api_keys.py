"""Creating and revoking API keys; the secret is returned once and never stored."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from kb.models import Account, ApiKey, AuditEvent
from kb.selectors.accounts import AnyUser
from kb.services.audit import audit_record

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
    """A new key for ``account``: (the row, the full key to show once).

    Audited (``apikey.created``, by ``created_by_id``) in the same transaction.
    """
    if expires_at is not None and expires_at <= timezone.now():
        raise ApiKeyError("the expiry date is in the past")
    prefix = secrets.token_hex(4)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        row = ApiKey.objects.create(
            account=account, name=name.strip() or "API key", prefix=prefix,
            digest=key_digest(key), scopes=scopes_clean(scopes), expires_at=expires_at,
            created_by_id=created_by_id,
        )  # fmt: skip
        audit_record(
            action=AuditEvent.Action.APIKEY_CREATED, actor=row.created_by, target=row,
            detail={"scopes": sorted(row.scope_set), "expires": expires_at is not None},
        )  # fmt: skip
    return row, key


def api_key_revoke(*, api_key: ApiKey, revoked_by: AnyUser | None = None) -> bool:
    """Revoke ``api_key`` now; False if it already was (then nothing is audited).

    Audited (``apikey.revoked``, by ``revoked_by``; nobody: a management command) in
    the same transaction.
    """
    with transaction.atomic():
        revoked = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if revoked:
            audit_record(action=AuditEvent.Action.APIKEY_REVOKED, actor=revoked_by, target=api_key)
    return bool(revoked)
