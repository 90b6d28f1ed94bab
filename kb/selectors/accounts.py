"""Who may see and manage which account: the one place tenant access is decided."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet

from kb.models import Account, Membership

AnyUser = AbstractBaseUser | AnonymousUser


def account_ids_for_user(*, user: AnyUser, roles: tuple[str, ...] | None = None) -> set[int]:
    """Ids of the accounts ``user`` belongs to (optionally only with one of ``roles``).

    Superusers are not special-cased here: callers decide whether they see everything.
    """
    if not user.is_authenticated:
        return set()
    memberships = Membership.objects.filter(user_id=user.pk)
    if roles is not None:
        memberships = memberships.filter(role__in=roles)
    return set(memberships.values_list("account_id", flat=True))


def accounts_for_user(*, user: AnyUser) -> QuerySet[Account]:
    """Accounts visible to ``user``: all for superusers, else those they belong to."""
    if getattr(user, "is_superuser", False):
        return Account.objects.all()
    return Account.objects.filter(id__in=account_ids_for_user(user=user))


def account_admin_emails(*, account_id: int) -> list[str]:
    """E-mail addresses of the account's active admins (for alerts), sorted, no blanks."""
    users = get_user_model().objects.filter(
        memberships__account_id=account_id,
        memberships__role=Membership.Role.ADMIN,
        is_active=True,
    )
    return sorted({user.email for user in users if user.email})
