"""The audit mixin of every Cairn ModelAdmin: adds, changes, deletes and bulk actions.

Django's admin already calls ``log_addition``, ``log_change`` and ``log_deletions`` for
its own history (``LogEntry``); ``AuditedAdmin`` keeps that and also writes an
``AuditEvent``, which carries the account, the client address and the changed field
names, and which outlives the object and its admin history. Put it first in the bases:
``class DocumentAdmin(AuditedAdmin, AccountScopedAdmin)``.

Transactions: the change form and the delete page are atomic in Django, and the mixin
runs every bulk action in a transaction, so an admin write and its audit row commit
or roll back together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.contrib import admin
from django.db import models, transaction
from django.db.models import Count, QuerySet
from django.forms import BaseForm, Form
from django.http import HttpRequest

from kb.admin.scoping import AccountScopedAdmin
from kb.models import AuditEvent
from kb.services.audit import audit_record, audit_record_many

# construct_change_message() sees the form, log_addition()/log_change() only its text
# message (with field labels, not names): the names are handed over on the request.
_CHANGES_ATTRIBUTE = "_cairn_audit_changes"

# Deletions are recorded one row per object by log_deletions(); a second, bulk row for
# Django's own delete action would say the same thing again.
_RECORDED_BY_DELETIONS = "delete_selected"

AdminAction = Callable[..., Any]  # (model admin, request, queryset) -> response or None


class AuditedAdmin(admin.ModelAdmin):
    # --- add and change ------------------------------------------------------------

    def construct_change_message(
        self, request: HttpRequest, form: Form, formsets: Any, add: bool = False
    ) -> Any:
        message = super().construct_change_message(request, form, formsets, add)
        setattr(request, _CHANGES_ATTRIBUTE, _changes(form, formsets or []))
        return message

    def log_addition(self, request: HttpRequest, obj: models.Model, message: Any) -> Any:
        entry = super().log_addition(request, obj, message)
        audit_record(
            action=AuditEvent.Action.ADMIN_ADD, request=request, target=obj,
            detail=_pop_changes(request),
        )  # fmt: skip
        return entry

    def log_change(self, request: HttpRequest, obj: models.Model, message: Any) -> Any:
        entry = super().log_change(request, obj, message)
        audit_record(
            action=AuditEvent.Action.ADMIN_CHANGE, request=request, target=obj,
            detail=_pop_changes(request),
        )  # fmt: skip
        return entry

    # --- delete ----------------------------------------------------------------------

    def log_deletions(self, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
        """Called before the deletion (one object from its delete page, a selection from
        the delete action): each object gets its row while it still exists."""
        entries = super().log_deletions(request, queryset)
        audit_record_many(action=AuditEvent.Action.ADMIN_DELETE, request=request, targets=queryset)
        return entries

    # --- bulk actions ----------------------------------------------------------------

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        """Every action, run in a transaction with an audit row per account it touched."""
        audited: dict[str, Any] = {}
        for name, action in super().get_actions(request).items():
            if action is not None:
                func, _, description = action
                audited[name] = (self._audited(func, name), name, description)
        return audited

    def _audited(self, func: AdminAction, name: str) -> AdminAction:
        def run(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
            with transaction.atomic(using=queryset.db):
                # Counted before the action: afterwards the rows may be gone or changed.
                counts = [] if name == _RECORDED_BY_DELETIONS else self._counts(queryset)
                response = func(modeladmin, request, queryset)
                for account_id, count in counts:
                    audit_record(
                        action=AuditEvent.Action.ADMIN_BULK_ACTION, request=request,
                        account=account_id,
                        detail={"action": name, "model": self.opts.label_lower, "count": count},
                    )  # fmt: skip
                return response

        return run

    def _counts(self, queryset: QuerySet[Any]) -> list[tuple[int | None, int]]:
        """(account id, selected rows) per account, so each account's admins see their
        part; models without an account are counted as one group without one."""
        if not isinstance(self, AccountScopedAdmin):
            return [(None, queryset.count())]
        lookup = self.account_lookup
        rows = queryset.order_by().values(lookup).annotate(selected=Count("pk"))
        return [(row[lookup], row["selected"]) for row in rows]


def _changes(form: BaseForm, formsets: Iterable[Any]) -> dict[str, Any]:
    """The names of the changed fields, and per inline model how many rows were added,
    changed (and which of their fields) and deleted; never the values."""
    changes: dict[str, Any] = {"fields": list(form.changed_data)}
    related = []
    for formset in formsets:
        changed_fields = sorted({name for _, names in formset.changed_objects for name in names})
        added, changed = len(formset.new_objects), len(formset.changed_objects)
        deleted = len(formset.deleted_objects)
        if added or changed or deleted:
            related.append(
                {
                    "model": formset.model._meta.label_lower,
                    "added": added, "changed": changed, "deleted": deleted,
                    "fields": changed_fields,
                }
            )  # fmt: skip
    if related:
        changes["related"] = related
    return changes


def _pop_changes(request: HttpRequest) -> dict[str, Any]:
    changes = getattr(request, _CHANGES_ATTRIBUTE, None) or {}
    if hasattr(request, _CHANGES_ATTRIBUTE):
        delattr(request, _CHANGES_ATTRIBUTE)
    return dict(changes)
