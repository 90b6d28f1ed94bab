"""Creating accounts, knowledge bases and the first administrator."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction

from kb.models import Account, KnowledgeBase, Membership


@transaction.atomic
def account_ensure(*, slug: str, name: str) -> Account:
    """The account with ``slug``, created with ``name`` if it does not exist."""
    account, _ = Account.objects.get_or_create(slug=slug, defaults={"name": name})
    return account


@transaction.atomic
def knowledge_base_ensure(
    *, account: Account, slug: str, name: str, description: str = ""
) -> KnowledgeBase:
    """The knowledge base ``slug`` of ``account``, created if it does not exist."""
    knowledge_base, _ = KnowledgeBase.objects.get_or_create(
        account=account, slug=slug, defaults={"name": name, "description": description}
    )
    return knowledge_base


@transaction.atomic
def membership_grant(*, user_id: int, account: Account, role: str) -> Membership:
    """Give ``user_id`` ``role`` in ``account`` (updating an existing membership)."""
    membership, _ = Membership.objects.update_or_create(
        user_id=user_id, account=account, defaults={"role": role}
    )
    return membership


def superuser_ensure(*, username: str, password_file: Path) -> str | None:
    """Create the first superuser once, with a random password saved to ``password_file``.

    Returns the new password when the user was created now, None if any
    superuser already existed (nothing is changed then).
    """
    user_model = get_user_model()
    if user_model.objects.filter(is_superuser=True).exists():
        return None
    password = secrets.token_urlsafe(12)
    with transaction.atomic():
        user_model.objects.create_superuser(username=username, email="", password=password)
    password_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"username: {username}\npassword: {password}\n")
    return password
