"""Document administration: multi-file upload, status and progress."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from ingest.forms import DocumentUploadForm
from ingest.services.uploads import UploadRejected, document_create
from kb.admin_scoping import AccountScopedAdmin
from kb.models import Document, KnowledgeBase

_STATUS_COLOURS = {
    Document.Status.PENDING: "#6b7280",
    Document.Status.PROCESSING: "#2563eb",
    Document.Status.READY: "#15803d",
    Document.Status.FAILED: "#b91c1c",
}


@admin.register(Document)
class DocumentAdmin(AccountScopedAdmin):
    list_display = [
        "title",
        "knowledge_base",
        "status_badge",
        "progress_bar",
        "size",
        "error_summary",
        "updated_at",
    ]
    list_filter = ["status", ("knowledge_base", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["title", "original_filename"]
    list_select_related = ["knowledge_base"]
    readonly_fields = [
        "account",
        "knowledge_base",
        "original_filename",
        "mime_type",
        "size_bytes",
        "content_hash",
        "status",
        "error",
        "chunks_total",
        "chunks_embedded",
        "attempts",
        "version",
        "created_at",
        "updated_at",
        "processing_started_at",
        "ingested_at",
    ]
    fields = ["title", *readonly_fields]

    class Media:
        css = {"all": ["cairn/admin.css"]}

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: Document) -> str:
        return format_html(
            '<span class="cairn-status" style="color:{}">{}</span>',
            _STATUS_COLOURS.get(Document.Status(obj.status), "#000"),
            obj.get_status_display(),
        )

    @admin.display(description="Progress")
    def progress_bar(self, obj: Document) -> str:
        percent = round(obj.progress * 100)
        return format_html(
            '<progress class="cairn-progress" max="100" value="{}" title="{} of {} chunks">'
            "{}%</progress>",
            percent,
            obj.chunks_embedded,
            obj.chunks_total,
            percent,
        )

    @admin.display(description="Size", ordering="size_bytes")
    def size(self, obj: Document) -> str:
        return filesizeformat(obj.size_bytes)

    @admin.display(description="Error")
    def error_summary(self, obj: Document) -> str:
        return obj.error[:120] + ("…" if len(obj.error) > 120 else "")

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Upload one or many files into a knowledge base (replaces the one-row add form)."""
        if not self.has_add_permission(request):
            return HttpResponseRedirect(reverse("admin:kb_document_changelist"))
        knowledge_bases = self._uploadable_knowledge_bases(request)
        form = DocumentUploadForm(
            request.POST or None, request.FILES or None, knowledge_bases=knowledge_bases
        )
        if request.method == "POST" and form.is_valid():
            self._store_uploads(request, form.cleaned_data["knowledge_base"], form)
            if not form.errors:
                changelist = reverse("admin:kb_document_changelist")
                kb_id = form.cleaned_data["knowledge_base"].pk
                return HttpResponseRedirect(f"{changelist}?knowledge_base__id__exact={kb_id}")
        context = {
            **self.admin_site.each_context(request),
            "title": "Upload documents",
            "form": form,
            "opts": self.opts,
            "has_view_permission": self.has_view_permission(request),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/ingest/document/upload.html", context)

    def _uploadable_knowledge_bases(self, request: HttpRequest) -> QuerySet[KnowledgeBase]:
        if request.user.is_superuser:
            return KnowledgeBase.objects.all()
        return KnowledgeBase.objects.filter(account_id__in=self._manageable(request))

    def _store_uploads(
        self, request: HttpRequest, knowledge_base: KnowledgeBase, form: DocumentUploadForm
    ) -> None:
        created: list[str] = []
        duplicates: list[str] = []
        rejected: list[str] = []
        for upload in form.cleaned_data["uploads"]:
            try:
                outcome = document_create(knowledge_base=knowledge_base, upload=upload)
            except UploadRejected as exc:
                rejected.append(str(exc))
                continue
            (created if outcome.created else duplicates).append(outcome.document.title)
        if created:
            messages.success(
                request, f"Uploaded {len(created)} document(s) to {knowledge_base.name}."
            )
        if duplicates:
            messages.warning(
                request,
                "Already in this knowledge base, not uploaded again: " + ", ".join(duplicates),
            )
        if rejected:
            for reason in rejected:
                messages.error(request, f"Not uploaded: {reason}")
            if not created and not duplicates:
                form.add_error("uploads", "None of the files could be uploaded.")
