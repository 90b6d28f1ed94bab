"""Tenant scoping for every admin page that shows account data.

Every ModelAdmin of customer content inherits ``AccountScopedAdmin``: querysets
are filtered by the user's accounts in SQL, foreign-key choices are limited to
accounts the user administers, and object permissions follow the user's
membership role (admin: manage; staff: view). Superusers see everything. The
unfiltered queryset is reachable only through the loudly named
``dangerously_get_queryset``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models
from django.db.models import QuerySet
from django.forms import ModelChoiceField
from django.http import HttpRequest

from kb.models import Account, Chunk, KnowledgeBase, Membership
from kb.selectors.accounts import account_ids_for_user

ADMIN_ROLES = (Membership.Role.ADMIN,)


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

    def formfield_for_foreignkey(
        self, db_field: Any, request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField | None:
        if not request.user.is_superuser:
            manageable = self._manageable(request)
            if db_field.related_model is Account:
                kwargs["queryset"] = Account.objects.filter(id__in=manageable)
            elif db_field.related_model is KnowledgeBase:
                kwargs["queryset"] = KnowledgeBase.objects.filter(account_id__in=manageable)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
