"""Admin for accounts, memberships, knowledge bases, API keys and (read-only) chunks.

Documents are administered by the ingest app, which owns uploads.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from kb.admin.audit import AuditedAdmin
from kb.admin.scoping import AccountScopedAdmin
from kb.embeddings.privacy import EmbeddingModelRefused, embedding_model_check
from kb.embeddings.registry import is_supported_model
from kb.guard.passages import FLAG_LABELS
from kb.models import (
    Account,
    ApiKey,
    AuditEvent,
    Chunk,
    FlaggedPassage,
    KnowledgeBase,
    Membership,
)
from kb.selectors.search import MODES, chunk_search
from kb.services.api_keys import KEY_PREFIX, api_key_create, api_key_revoke, scopes_clean
from kb.services.documents import accounts_delete, knowledge_bases_delete
from kb.services.reembedding import ReembeddingRejected, knowledge_base_reembed_start


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser


@admin.register(Account)
class AccountAdmin(AuditedAdmin, AccountScopedAdmin):
    account_lookup = "id"
    list_display = ["name", "slug", "knowledge_base_count", "created_at"]
    search_fields = ["name", "slug"]
    readonly_fields = ["daily_cost_alerted_on"]  # set by the cost alert, shown for reference
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    def get_queryset(self, request: HttpRequest) -> models.QuerySet[Account]:
        return super().get_queryset(request).annotate(kb_count=models.Count("knowledge_bases"))

    @admin.display(description="Knowledge bases", ordering="kb_count")
    def knowledge_base_count(self, obj: Any) -> int:
        return int(obj.kb_count)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def delete_model(self, request: HttpRequest, obj: Account) -> None:
        accounts_delete(accounts=Account.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: models.QuerySet[Account]) -> None:
        accounts_delete(accounts=queryset)


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin, AccountScopedAdmin):
    list_display = ["user", "account", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__username", "account__name"]
    autocomplete_fields = ["user"]
    list_select_related = ["user", "account"]
    membership_fields = ("user",)  # the user chosen here becomes the member

    # Granting access is kept to superusers: account admins cannot enrol arbitrary users.
    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser


class HitTestingForm(forms.Form):
    query = forms.CharField(max_length=2000, widget=forms.TextInput(attrs={"size": 80}))
    mode = forms.ChoiceField(choices=[(m, m) for m in MODES], initial="hybrid")
    k = forms.IntegerField(min_value=1, max_value=50, initial=10, label="Results")


class KnowledgeBaseForm(forms.ModelForm):
    def clean_embedding_model(self) -> str:
        model_id = str(self.cleaned_data["embedding_model"]).strip()
        if not is_supported_model(model_id):
            raise forms.ValidationError(
                "Use sentence-transformers/all-MiniLM-L6-v2 or openai:<model name>."
            )
        return model_id

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        model_id = cleaned.get("embedding_model")
        account = cleaned.get("account") or (
            self.instance.account if self.instance.account_id else None
        )
        chosen = not self.instance.pk or "embedding_model" in self.changed_data
        if model_id and account is not None and chosen:
            try:
                embedding_model_check(account=account, model_id=model_id)
            except EmbeddingModelRefused as exc:
                self.add_error("embedding_model", str(exc))
        return cleaned


@admin.register(KnowledgeBase)
class KnowledgeBaseAdmin(AuditedAdmin, AccountScopedAdmin):
    form = KnowledgeBaseForm
    change_form_template = "admin/kb/knowledgebase/change_form.html"
    list_display = ["name", "account", "slug", "document_count", "embedding_model", "updated_at"]
    list_filter = [("account", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = [
        "embedding_dimension",
        "reembedding_model",
        "reembedding_started_at",
        "content_version",
        "created_at",
    ]
    list_select_related = ["account"]

    def save_model(self, request: HttpRequest, obj: KnowledgeBase, form: Any, change: bool) -> None:
        """A changed embedding model is not written directly: chunks are re-embedded in
        the background first, and searches use the old model until the switch."""
        requested = obj.embedding_model
        if change and "embedding_model" in form.changed_data:
            obj.embedding_model = form.initial["embedding_model"]
        super().save_model(request, obj, form, change)
        if change and "embedding_model" in form.changed_data:
            try:
                started = knowledge_base_reembed_start(knowledge_base=obj, model_id=requested)
            except ReembeddingRejected as exc:
                messages.error(request, f"Embedding model not changed: {exc}")
                return
            if started:
                messages.info(
                    request,
                    f"Re-embedding with {requested} in the background; searches keep using "
                    f"{obj.embedding_model} until it is done.",
                )

    def get_urls(self) -> list[URLPattern]:
        hit_testing = path(
            "<int:knowledge_base_id>/hit-testing/",
            self.admin_site.admin_view(self.hit_testing_view),
            name="kb_knowledgebase_hit_testing",
        )
        return [hit_testing, *super().get_urls()]

    def hit_testing_view(self, request: HttpRequest, knowledge_base_id: int) -> HttpResponse:
        """Type a query, see what retrieval returns and why (each channel's rank and score)."""
        knowledge_base = get_object_or_404(
            self.get_queryset(request).select_related("account"), pk=knowledge_base_id
        )
        form = HitTestingForm(request.GET or None)
        result = None
        if form.is_valid():
            result = chunk_search(
                account=knowledge_base.account,
                knowledge_bases=[knowledge_base],
                query=form.cleaned_data["query"],
                k=form.cleaned_data["k"],
                mode=form.cleaned_data["mode"],
            )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Hit testing: {knowledge_base.name}",
            "opts": self.opts,
            "original": knowledge_base,
            "form": form,
            "result": result,
        }
        return TemplateResponse(request, "admin/kb/knowledgebase/hit_testing.html", context)

    def delete_model(self, request: HttpRequest, obj: KnowledgeBase) -> None:
        knowledge_bases_delete(knowledge_bases=KnowledgeBase.objects.filter(pk=obj.pk))

    def delete_queryset(
        self, request: HttpRequest, queryset: models.QuerySet[KnowledgeBase]
    ) -> None:
        knowledge_bases_delete(knowledge_bases=queryset)

    def get_queryset(self, request: HttpRequest) -> models.QuerySet[KnowledgeBase]:
        return super().get_queryset(request).annotate(doc_count=models.Count("documents"))

    @admin.display(description="Documents", ordering="doc_count")
    def document_count(self, obj: Any) -> int:
        return int(obj.doc_count)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # The owning account is chosen once, at creation.
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "account"] if obj is not None else fields


class SafetyFlagFilter(admin.SimpleListFilter):
    title = "safety flag"
    parameter_name = "flag"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(FLAG_LABELS.items())

    def queryset(self, request: HttpRequest, queryset: models.QuerySet[Any]) -> Any:
        value = self.value()
        return queryset.filter(safety_flags__contains=[value]) if value else queryset


@admin.register(Chunk)
class ChunkAdmin(AuditedAdmin, AccountScopedAdmin):
    """Chunks are produced by ingestion: searchable and viewable, never edited by hand."""

    list_display = [
        "document",
        "ordinal",
        "heading_path",
        "token_count",
        "page",
        "document_version",
    ]
    list_filter = [("knowledge_base", admin.RelatedOnlyFieldListFilter), SafetyFlagFilter]
    search_fields = ["text", "heading_path", "document__title"]
    list_select_related = ["document"]
    exclude = ["embedding"]
    readonly_fields = [
        "document",
        "account",
        "knowledge_base",
        "document_version",
        "ordinal",
        "heading_path",
        "char_start",
        "char_end",
        "page",
        "token_count",
        "text",
        "safety_flags",
        "injection_score",
        "created_at",
    ]
    show_full_result_count = False  # COUNT(*) over millions of chunks on every page load

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(FlaggedPassage)
class FlaggedPassageAdmin(ChunkAdmin):
    """Passages the ingestion scan found aimed at an assistant: instructions, hidden text,
    exfiltration links. They stay searchable (the document may be legitimate) but are
    quoted to models as untrusted data; here admins judge them, and delete or fix the
    document if it is poisoned."""

    list_display = ["document", "flags", "injection_score", "excerpt", "view_in_document"]
    list_filter = [SafetyFlagFilter, ("knowledge_base", admin.RelatedOnlyFieldListFilter)]
    ordering = ["-injection_score", "-id"]

    def get_queryset(self, request: HttpRequest) -> models.QuerySet[Any]:
        return super().get_queryset(request).exclude(safety_flags=[])

    @admin.display(description="Flags")
    def flags(self, obj: Chunk) -> str:
        return ", ".join(FLAG_LABELS.get(flag, flag) for flag in obj.safety_flags)

    @admin.display(description="Passage")
    def excerpt(self, obj: Chunk) -> str:
        text = " ".join(obj.text.split())
        return text if len(text) <= 160 else f"{text[:159]}…"

    @admin.display(description="")
    def view_in_document(self, obj: Chunk) -> str:
        url = reverse("kb:document_detail", args=[obj.document_id])
        return format_html('<a href="{}?chunk={}#chunk-{}">View</a>', url, obj.pk, obj.pk)


# --- API keys ---------------------------------------------------------------------


def api_key_status(api_key: ApiKey) -> str:
    return api_key.status_at(timezone.now())


class ApiKeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "Active"), ("expired", "Expired"), ("revoked", "Revoked")]

    def queryset(self, request: HttpRequest, queryset: models.QuerySet[Any]) -> Any:
        now = timezone.now()
        live = queryset.filter(revoked_at__isnull=True)
        if self.value() == "active":
            return live.filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now))
        if self.value() == "expired":
            return live.filter(expires_at__lte=now)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


class ApiKeyCreateForm(forms.ModelForm):
    """The add form: the secret is made by ``api_key_create`` on save, never typed in."""

    scopes = forms.MultipleChoiceField(
        choices=ApiKey.Scope.choices,
        initial=[ApiKey.Scope.READ, ApiKey.Scope.ANSWER],
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = ApiKey
        fields = ["name", "account", "scopes", "expires_at"]

    def clean_scopes(self) -> str:
        return scopes_clean(self.cleaned_data["scopes"])  # choices already checked

    def clean_expires_at(self) -> Any:
        expires_at = self.cleaned_data["expires_at"]
        if expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future (or empty: never).")
        return expires_at


# A pasted key or its display form (cairn_<prefix>_…) searches by its prefix.
_PASTED_KEY = re.compile(rf"^{KEY_PREFIX}_([0-9a-f]+)(?:_.*)?$")


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedAdmin, AccountScopedAdmin):
    """Keys are created here (the full key is shown once, in a message) and revoked
    with an action; afterwards only the name and the expiry can change."""

    list_display = [
        "name",
        "account",
        "key_prefix",
        "scopes",
        "created_at",
        "expires_at",
        "last_used_at",
        "status",
    ]
    list_filter = [
        ApiKeyStatusFilter,
        ("account", admin.RelatedOnlyFieldListFilter),
        "created_at",
        "last_used_at",
    ]
    search_fields = ["name", "prefix"]
    list_select_related = ["account"]
    actions = ["revoke_selected"]
    change_fields = [
        "name",
        "account",
        "key_prefix",
        "scopes",
        "status",
        "expires_at",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]

    @admin.display(description="Key", ordering="prefix")
    def key_prefix(self, obj: ApiKey) -> str:
        return f"{KEY_PREFIX}_{obj.prefix}_…"

    @admin.display(description="Status")
    def status(self, obj: ApiKey) -> str:
        return api_key_status(obj)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return list(ApiKeyCreateForm.Meta.fields) if obj is None else self.change_fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return []
        return [field for field in self.change_fields if field not in ("name", "expires_at")]

    def get_search_results(
        self, request: HttpRequest, queryset: models.QuerySet[Any], search_term: str
    ) -> tuple[models.QuerySet[Any], bool]:
        pasted = _PASTED_KEY.match(search_term.strip())
        if pasted:
            return queryset.filter(prefix=pasted.group(1)), False
        return super().get_search_results(request, queryset, search_term)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        row, key = api_key_create(
            account=obj.account,
            name=obj.name,
            scopes=obj.scope_set,
            expires_at=obj.expires_at,
            created_by_id=request.user.pk,
        )
        # The admin goes on with ``obj`` (log entry, redirect): make it the saved row.
        for field in ApiKey._meta.concrete_fields:
            setattr(obj, field.attname, getattr(row, field.attname))
        obj._state.adding, obj._state.db = False, row._state.db
        messages.success(
            request,
            format_html(
                "The new key of “{}” is <code>{}</code> — copy it now: it will not be shown again.",
                obj.name,
                key,
            ),
        )

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: models.QuerySet[ApiKey]) -> None:
        # The changelist shows keys of accounts the user only views, too: revoke only
        # those of accounts they administer.
        if not request.user.is_superuser:
            queryset = queryset.filter(account_id__in=self._manageable(request))
        keys = list(queryset.filter(revoked_at__isnull=True))
        for api_key in keys:
            api_key_revoke(api_key=api_key, revoked_by=request.user)
        messages.success(request, f"Revoked {len(keys)} key(s).")


# --- Audit log --------------------------------------------------------------------


@admin.register(AuditEvent)
class AuditEventAdmin(AccountScopedAdmin):
    """The audit log (kb.services.audit), read-only for everyone, superusers included.

    An account's events are shown to its admins, not to its staff; events of no account
    (sign-ins, shared settings, accounts since deleted) to superusers only.
    """

    list_display = [
        "at", "action", "actor_label", "target_type", "target_repr", "account", "ip",
    ]  # fmt: skip
    list_filter = ["action", "at", ("account", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["actor_label", "target_repr", "target_id"]
    date_hierarchy = "at"
    list_select_related = ["account"]
    fields = readonly_fields = (
        "at", "action", "account", "actor", "actor_label", "api_key", "ip",
        "target_type", "target_id", "target_repr", "detail",
    )  # fmt: skip
    show_full_result_count = False  # the log only grows: no COUNT(*) on every page

    def _visible(self, request: HttpRequest) -> set[int]:
        return self._manageable(request)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
