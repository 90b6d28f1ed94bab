"""Sign-ins in the audit log, from django.contrib.auth's own signals.

Signals, although the core flow never uses them: sign-in is Django's code, not ours,
and these signals are its documented hook (the login view, the admin's and the test
client's ``login`` all send them). Connected in ``KbConfig.ready``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest

from kb.models import AuditEvent
from kb.services.audit import audit_record


def login_succeeded_record(
    sender: Any, *, request: HttpRequest | None = None, user: AbstractBaseUser, **kwargs: Any
) -> None:
    audit_record(action=AuditEvent.Action.LOGIN_SUCCEEDED, request=request, actor=user)


def login_failed_record(
    sender: Any,
    *,
    credentials: dict[str, Any],
    request: HttpRequest | None = None,
    **kwargs: Any,
) -> None:
    """Only the user name that was tried is kept. Django already masks the password in
    ``credentials``; it is not read here at all, nor is any other credential."""
    username = credentials.get(get_user_model().USERNAME_FIELD, "")
    audit_record(
        action=AuditEvent.Action.LOGIN_FAILED, request=request,
        actor_label=username if isinstance(username, str) else "",
    )  # fmt: skip
