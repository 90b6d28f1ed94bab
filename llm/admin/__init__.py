"""Admin for the usage ledger (read-only, per account) and the gateway's routes."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from kb.admin.audit import AuditedAdmin
from kb.admin.scoping import AccountScopedAdmin
from llm.models import LlmCall, LlmRoute
from llm.routing import parse_chain


@admin.register(LlmCall)
class LlmCallAdmin(AuditedAdmin, AccountScopedAdmin):
    """Every model call: who, what, how many tokens, what it cost, how it went."""

    list_display = [
        "created_at",
        "account",
        "feature",
        "route",
        "provider",
        "model",
        "attempt",
        "status",
        "error_class",
        "input_tokens",
        "output_tokens",
        "cost",
        "latency_ms",
        "cache_hit",
        "cache_reason",
        "fallback_used",
    ]
    list_filter = ["status", "provider", "feature", "cache_hit", "cache_reason", "fallback_used"]
    search_fields = ["request_id", "model", "error_class"]
    date_hierarchy = "created_at"
    list_select_related = ["account"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in LlmCall._meta.fields]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class LlmRouteForm(forms.ModelForm):
    class Meta:
        model = LlmRoute
        fields = ["name", "chain", "max_tokens", "temperature"]

    def clean_chain(self) -> str:
        raw = str(self.cleaned_data["chain"])
        try:
            entries = parse_chain(raw)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc
        if not entries:
            raise forms.ValidationError("Give at least one provider:model entry.")
        return ", ".join(entry.key for entry in entries)


@admin.register(LlmRoute)
class LlmRouteAdmin(AuditedAdmin):
    """Routes are shared by all accounts: only superusers change them."""

    form = LlmRouteForm
    list_display = ["name", "chain", "max_tokens", "temperature"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser
