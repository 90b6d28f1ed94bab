"""Writing the audit log: admin changes, document reads, sign-ins and API keys.

Where each event is recorded:

- admin add, change, delete and bulk actions: ``kb.admin.audit.AuditedAdmin``, the mixin
  of every Cairn ModelAdmin;
- document reads: the document page (``kb.views``) and the REST document detail
  (``ingest.api.views``);
- sign-ins: Django's ``user_logged_in`` / ``user_login_failed`` signals
  (``kb.services.sign_in_audit``, connected in ``KbConfig.ready``);
- API keys created and revoked: ``kb.services.api_keys``, whichever way it is called
  (the admin, ``manage.py apikey``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import DatabaseError, models, transaction
from django.http import HttpRequest

from kb.models import Account, ApiKey, AuditEvent
from kb.selectors.accounts import AnyUser
from web.client_address import client_address

logger = logging.getLogger(__name__)

Action = AuditEvent.Action

# Reads and sign-ins are recorded best-effort: losing one row is better than refusing a
# support agent the document a citation points to, or locking everyone out while the
# table is unwritable. Everything else is a write, recorded in the caller's transaction:
# a change that cannot be audited is not made.
BEST_EFFORT_ACTIONS = frozenset(
    {Action.DOCUMENT_VIEW, Action.DOCUMENT_READ_API, Action.LOGIN_SUCCEEDED, Action.LOGIN_FAILED}
)

_LABEL_LENGTH = AuditEvent._meta.get_field("actor_label").max_length or 150
_REPR_LENGTH = AuditEvent._meta.get_field("target_repr").max_length or 200


def audit_record(
    *,
    action: str,
    request: HttpRequest | None = None,
    account: Account | int | None = None,
    actor: AnyUser | None = None,
    actor_label: str | None = None,
    api_key: ApiKey | None = None,
    target: models.Model | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent | None:
    """Record that ``action`` happened to ``target``; the row, or None if it was not written.

    ``request`` supplies the client address (behind ``CAIRN_TRUSTED_PROXIES``) and, unless
    ``actor`` or ``api_key`` is given, the signed-in user. ``account`` (an Account or its
    id) defaults to the target's own account. ``actor_label`` overrides the copied name
    (a failed sign-in records the name that was tried). ``detail`` must hold names and
    counts only, never field values.

    Failure: for ``BEST_EFFORT_ACTIONS`` (reads, sign-ins) a failed write is logged and
    None returned, inside a savepoint so the caller's transaction stays usable. For the
    rest (admin changes, API keys) the error propagates: callers record inside the
    transaction of the change itself (the admin's ``changeform_view`` and ``delete_view``
    are atomic; ``AuditedAdmin`` makes bulk actions atomic), so the change rolls back
    with its missing audit row.
    """
    event = _event(
        action=action, request=request, account=account, actor=actor, actor_label=actor_label,
        api_key=api_key, target=target, detail=detail,
    )  # fmt: skip
    written = _write(action, [event])
    return event if written else None


def audit_record_many(
    *,
    action: str,
    request: HttpRequest | None = None,
    targets: Iterable[models.Model],
    detail: dict[str, Any] | None = None,
) -> int:
    """Record ``action`` once per target, each with its own account, in one INSERT.

    For bulk deletions: every deleted object keeps a row of its own that can be found
    by its id. Returns how many rows were written; failures as in ``audit_record``.
    """
    events = [
        _event(action=action, request=request, target=target, detail=detail) for target in targets
    ]
    return len(events) if events and _write(action, events) else 0


def _write(action: str, events: list[AuditEvent]) -> bool:
    if action not in BEST_EFFORT_ACTIONS:
        _insert(events)
        return True
    try:
        if transaction.get_connection().in_atomic_block:
            # A savepoint: a failed INSERT must leave the caller's transaction usable.
            with transaction.atomic():
                _insert(events)
        else:
            _insert(events)  # autocommit: the INSERT is its own transaction, one round trip
    except DatabaseError:
        logger.exception("audit event %s not recorded", action)
        return False
    return True


def _event(
    *,
    action: str,
    request: HttpRequest | None,
    account: Account | int | None = None,
    actor: AnyUser | None = None,
    actor_label: str | None = None,
    api_key: ApiKey | None = None,
    target: models.Model | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    if actor is None and api_key is None and request is not None:
        actor = getattr(request, "user", None)
    # Anonymous is nobody, and an API key's stand-in user (kb.api.auth.ApiKeyUser) is no
    # user either: its callers pass the key.
    if not isinstance(actor, AbstractBaseUser) or not actor.is_authenticated:
        actor = None
    label = actor_label
    if label is None:
        if actor is not None:
            label = actor.get_username()
        elif api_key is not None:
            label = f"api key {api_key.prefix}"
        else:
            label = ""
    return AuditEvent(
        action=action,
        account_id=_account_id(account, target),
        actor_id=actor.pk if actor is not None else None,
        actor_label=label[:_LABEL_LENGTH],
        api_key_id=api_key.pk if api_key is not None else None,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None and target.pk is not None else "",
        target_repr=str(target)[:_REPR_LENGTH] if target is not None else "",
        ip=client_address(request) if request is not None else None,
        detail=detail or {},
    )


def _account_id(account: Account | int | None, target: models.Model | None) -> int | None:
    if isinstance(account, Account):
        return account.pk
    if account is not None:
        return account
    if isinstance(target, Account):
        return target.pk
    target_account = getattr(target, "account_id", None)
    return target_account if isinstance(target_account, int) else None


def _insert(events: list[AuditEvent]) -> None:
    # save() of one row opens no transaction of its own; bulk_create() always does.
    if len(events) == 1:
        events[0].save(force_insert=True)
    else:
        AuditEvent.objects.bulk_create(events)
