"""Tenant scoping for every admin page that shows account data.

Every ModelAdmin of customer content inherits ``AccountScopedAdmin``: querysets
are filtered by the user's accounts in SQL, the choices of every relation field
(accounts, users, knowledge bases, documents, messages…) are limited to the
accounts the user administers, and object permissions follow the user's
membership role (admin: manage; staff: view). Superusers see everything. The
unfiltered queryset is reachable only through the loudly named
``dangerously_get_queryset``.

On save, every related object chosen must also belong to the row's own account
(a budget's user is a member of the budget's account), for superusers too: a
form that mixes tenants is refused on the field that does.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest

from kb.models import Account, Chunk, Membership
from kb.selectors.accounts import account_ids_for_user

ADMIN_ROLES = (Membership.Role.ADMIN,)

# How far ``account_lookup_for`` follows foreign keys to find a model's account.
_MAX_HOPS = 3
_LOOKUPS: dict[type[models.Model], str | None] = {}  # models do not change at run time


def account_lookup_for(model: type[models.Model]) -> str | None:
    """The ORM lookup from ``model`` to the id of the account a row belongs to, or None.

    An account is its own; a user belongs to the accounts of their memberships (the
    lookup is multi-valued); any other row to its ``account``, or to the account of the
    nearest parent that has one (a message through its conversation). Required foreign
    keys are preferred to optional ones, so feedback belongs to its message's account
    rather than to the optional API key's. None means no account at all (permissions,
    groups, shared routes): such rows are nobody's to choose but a superuser's. Users
    are not followed as parents, since a user may be in several accounts.
    """
    if model not in _LOOKUPS:
        if issubclass(model, Account):
            lookup: str | None = "id"
        elif issubclass(model, get_user_model()):
            lookup = "memberships__account_id"
        else:
            lookup = _lookup_through(model, optional=False) or _lookup_through(model, optional=True)
        _LOOKUPS[model] = lookup
    return _LOOKUPS[model]


def _lookup_through(model: type[models.Model], *, optional: bool) -> str | None:
    """Breadth first along foreign keys (optional ones too if ``optional``) to Account."""
    user_model = get_user_model()
    queue: deque[tuple[type[models.Model], str, int]] = deque([(model, "", 0)])
    while queue:
        current, prefix, hops = queue.popleft()
        for field in current._meta.concrete_fields:
            if not (field.many_to_one or field.one_to_one) or (field.null and not optional):
                continue
            related = field.related_model
            if not isinstance(related, type):
                continue
            if issubclass(related, Account):
                return f"{prefix}{field.attname}"
            if hops + 1 < _MAX_HOPS and related not in (user_model, current):
                queue.append((related, f"{prefix}{field.name}__", hops + 1))
    return None


def scope_choices(queryset: QuerySet[Any], account_ids: set[int]) -> QuerySet[Any]:
    """``queryset`` cut down to rows of ``account_ids`` (none if the model has no account)."""
    lookup = account_lookup_for(queryset.model)
    if lookup is None:
        return queryset.none()
    scoped = queryset.filter(**{f"{lookup}__in": account_ids})
    # A user in two of the accounts would otherwise be offered twice.
    return scoped.distinct() if "__" in lookup else scoped


def accounts_of(obj: models.Model) -> set[int]:
    """Ids of the accounts ``obj`` belongs to (several for a user, none for shared rows)."""
    lookup = account_lookup_for(type(obj))
    if lookup is None or obj.pk is None:
        return set()
    rows = type(obj)._default_manager.filter(pk=obj.pk).values_list(lookup, flat=True)
    return {account_id for account_id in rows if account_id is not None}


class SameAccountForm(forms.BaseForm):
    """Refuses a related object of another account than the row's own.

    Mixed into the admin's ModelForms by ``AccountScopedAdmin.get_form``. The row's
    account is the chosen ``account`` when the form has that field, else the one the
    row already has. Fields named in ``membership_fields`` are exempt: there the user
    chosen is the one being made a member.
    """

    membership_fields: tuple[str, ...] = ()

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        own = self._own_accounts(cleaned)
        if not own:
            return cleaned
        for name, value in list(cleaned.items()):
            if name == "account" or name in self.membership_fields:
                continue
            chosen = list(value) if isinstance(value, QuerySet) else [value]
            for obj in chosen:
                if not isinstance(obj, models.Model) or account_lookup_for(type(obj)) is None:
                    continue
                if not accounts_of(obj) & own:
                    self.add_error(
                        name,
                        f"{obj} is not of the account this {self._opts_name()} belongs to.",
                    )
                    break
        return cleaned

    def _own_accounts(self, cleaned: dict[str, Any]) -> set[int]:
        account = cleaned.get("account")
        if isinstance(account, Account):
            return {account.pk}
        instance = getattr(self, "instance", None)
        if isinstance(instance, models.Model) and instance.pk is not None:
            return accounts_of(instance)
        return set()

    def _opts_name(self) -> str:
        instance = getattr(self, "instance", None)
        return str(instance._meta.verbose_name) if instance is not None else "row"


class AccountScopedAdmin(admin.ModelAdmin):
    # Lookup from the model to its account's id ("id" for Account itself).
    account_lookup: str = "account_id"

    # --- which rows -----------------------------------------------------------

    def dangerously_get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        """All rows of every account. Only for code that scopes by itself."""
        return super().get_queryset(request)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = self.dangerously_get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{self.account_lookup}__in": self._visible(request)})

    # --- who may do what ------------------------------------------------------

    def _visible(self, request: HttpRequest) -> set[int]:
        return account_ids_for_user(user=request.user)

    def _manageable(self, request: HttpRequest) -> set[int]:
        return account_ids_for_user(user=request.user, roles=ADMIN_ROLES)

    def _account_id(self, obj: models.Model) -> int:
        value: Any = obj
        for part in self.account_lookup.split("__"):
            value = getattr(value, part)
        return int(value)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or bool(self._visible(request))

    def has_view_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        if request.user.is_superuser:
            return True
        visible = self._visible(request)
        return bool(visible) and (obj is None or self._account_id(obj) in visible)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return request.user.is_superuser or bool(self._manageable(request))

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        if request.user.is_superuser:
            return True
        manageable = self._manageable(request)
        return bool(manageable) and (obj is None or self._account_id(obj) in manageable)

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self.has_change_permission(request, obj)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[Any, Any, Any, Any]:
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Chunks are derived data: they go with their document and are never deleted on
        # their own, so their (read-only) admin must not block a document's deletion.
        perms_needed.discard(Chunk._meta.verbose_name)
        return deleted, model_count, perms_needed, protected

    # --- what may be chosen ----------------------------------------------------

    # User fields where the choice makes the user a member (exempt from SameAccountForm).
    membership_fields: tuple[str, ...] = ()

    def _scoped_choices(
        self, db_field: Any, request: HttpRequest, queryset: QuerySet[Any] | None
    ) -> QuerySet[Any]:
        if queryset is None:
            queryset = self.get_field_queryset(None, db_field, request)
        if queryset is None:
            queryset = db_field.remote_field.model._default_manager.all()
        return scope_choices(queryset, self._manageable(request))

    def formfield_for_foreignkey(
        self, db_field: Any, request: HttpRequest, **kwargs: Any
    ) -> forms.ModelChoiceField | None:
        if not request.user.is_superuser:
            kwargs["queryset"] = self._scoped_choices(db_field, request, kwargs.get("queryset"))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(
        self, db_field: Any, request: HttpRequest, **kwargs: Any
    ) -> forms.ModelMultipleChoiceField | None:
        if not request.user.is_superuser:
            kwargs["queryset"] = self._scoped_choices(db_field, request, kwargs.get("queryset"))
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        # Scoped choices keep other tenants out; SameAccountForm keeps a row's own
        # relations within its account (a budget of account B for a user of B only).
        base = kwargs.get("form", self.form)
        kwargs["form"] = type(base)(
            base.__name__, (SameAccountForm, base), {"membership_fields": self.membership_fields}
        )
        return super().get_form(request, obj, change=change, **kwargs)
