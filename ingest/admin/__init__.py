"""Document administration: multi-file upload, live progress, retries, dead letters."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html_join
from django.utils.safestring import SafeString, mark_safe

from ingest.forms import DocumentUploadForm
from ingest.models import FailedDocument
from ingest.services.recovery import documents_retry
from ingest.services.uploads import UploadRejected, UploadResult, document_create
from kb.admin.audit import AuditedAdmin
from kb.admin.scoping import AccountScopedAdmin
from kb.models import AuditEvent, Document, KnowledgeBase
from kb.services.audit import audit_record
from kb.services.documents import documents_delete

_IN_FLIGHT = {Document.Status.PENDING, Document.Status.PROCESSING}


def render_progress(document: Document) -> SafeString:
    """The status + progress cell; it polls itself (htmx) until the document settles."""
    return mark_safe(  # noqa: S308 (rendered by the template engine, which escapes)
        render_to_string(
            "admin/ingest/document/_progress.html",
            {
                "document": document,
                "percent": round(document.progress * 100),
                "polling": document.status in _IN_FLIGHT,
                "url": reverse("admin:kb_document_progress", args=[document.pk]),
            },
        )
    )


class DocumentAdminBase(AuditedAdmin, AccountScopedAdmin):
    search_fields = ["title", "original_filename", "source"]
    list_select_related = ["knowledge_base"]
    actions = ["retry_ingestion"]

    class Media:
        css = {"all": ["cairn/admin.css"]}
        js = ["vendor/htmx-2.0.11.min.js"]

    @admin.display(description="Status and progress", ordering="status")
    def state(self, obj: Document) -> SafeString:
        return render_progress(obj)

    @admin.display(description="Size", ordering="size_bytes")
    def size(self, obj: Document) -> str:
        return filesizeformat(obj.size_bytes)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or bool(self._manageable(request))

    @admin.action(description="Retry ingestion of the selected documents", permissions=["retry"])
    def retry_ingestion(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        if not request.user.is_superuser:
            queryset = queryset.filter(account_id__in=self._manageable(request))
        retried = documents_retry(documents=queryset.exclude(status=Document.Status.READY))
        if retried:
            self.message_user(request, f"Queued {len(retried)} document(s) for ingestion again.")
        else:
            self.message_user(request, "Nothing to retry: ready documents are left as they are.")

    def delete_model(self, request: HttpRequest, obj: Document) -> None:
        documents_delete(documents=Document.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        documents_delete(documents=queryset)


@admin.register(Document)
class DocumentAdmin(DocumentAdminBase):
    list_display = ["title", "knowledge_base", "state", "size", "error_summary", "updated_at"]
    list_filter = ["status", ("knowledge_base", admin.RelatedOnlyFieldListFilter)]
    readonly_fields = [
        "account",
        "knowledge_base",
        "source",
        "original_filename",
        "mime_type",
        "size_bytes",
        "content_hash",
        "status",
        "error",
        "status_summary",
        "files",
        "chunks_total",
        "chunks_embedded",
        "attempts",
        "version",
        "live_version",
        "page_count",
        "created_at",
        "updated_at",
        "processing_started_at",
        "ingested_at",
    ]
    fields = ["title", *readonly_fields]

    @admin.display(description="Error")
    def error_summary(self, obj: Document) -> str:
        if obj.serves_previous_version and obj.status == Document.Status.FAILED:
            return obj.status_line(error_chars=120)  # "version 2 failed: …; serving version 1"
        return obj.error[:120] + ("…" if len(obj.error) > 120 else "")

    @admin.display(description="Status in full")
    def status_summary(self, obj: Document) -> str:
        return obj.status_summary

    @admin.display(description="Files")
    def files(self, obj: Document) -> str:
        """The latest upload's file and, while it is not ready, the live version's."""
        latest = "serving" if obj.live_version == obj.version else obj.get_status_display()
        rows = [(f"Version {obj.version} ({latest.lower()})", obj.original_filename, "current")]
        if obj.previous_file:
            rows.append(
                (f"Version {obj.live_version} (serving)", obj.previous_filename, "previous")
            )
        return format_html_join(
            "\n",
            '<div>{}: <a href="{}">{}</a></div>',
            (
                (label, reverse("admin:kb_document_file", args=[obj.pk, which]), name)
                for label, name, which in rows
            ),
        )

    def get_urls(self) -> list[URLPattern]:
        progress = path(
            "<int:document_id>/progress/",
            self.admin_site.admin_view(self.progress_view),
            name="kb_document_progress",
        )
        download = path(
            "<int:document_id>/file/<str:which>/",
            self.admin_site.admin_view(self.file_view),
            name="kb_document_file",
        )
        return [progress, download, *super().get_urls()]

    def file_view(self, request: HttpRequest, document_id: int, which: str) -> FileResponse:
        """Download the latest upload (``current``) or the live version's file
        (``previous``, kept while a newer version is not ready); audited as a read."""
        document = get_object_or_404(self.get_queryset(request), pk=document_id)
        stored = {
            "current": (document.file, document.original_filename, document.mime_type),
            "previous": (
                document.previous_file,
                document.previous_filename,
                document.previous_mime_type,
            ),
        }.get(which)
        if stored is None or not stored[0]:
            raise Http404("No such file.")
        file, filename, mime_type = stored
        try:
            handle = file.storage.open(file.name, "rb")
        except FileNotFoundError as exc:
            raise Http404("The stored file is missing.") from exc
        audit_record(
            action=AuditEvent.Action.DOCUMENT_VIEW, request=request, target=document,
            detail={"download": which},
        )  # fmt: skip
        return FileResponse(
            handle, as_attachment=True, filename=filename or "document",
            content_type=mime_type or "application/octet-stream",
        )  # fmt: skip

    def progress_view(self, request: HttpRequest, document_id: int) -> HttpResponse:
        """The htmx fragment that refreshes one document's progress cell."""
        document = get_object_or_404(self.get_queryset(request), pk=document_id)
        return HttpResponse(render_progress(document))

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Upload one or many files into a knowledge base (replaces the one-row add form)."""
        if not self.has_add_permission(request):
            return HttpResponseRedirect(reverse("admin:kb_document_changelist"))
        form = DocumentUploadForm(
            request.POST or None,
            request.FILES or None,
            knowledge_bases=self._uploadable_knowledge_bases(request),
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
        outcomes: dict[UploadResult, list[str]] = {result: [] for result in UploadResult}
        rejected: list[str] = []
        for upload in form.cleaned_data["uploads"]:
            try:
                outcome = document_create(knowledge_base=knowledge_base, upload=upload)
            except UploadRejected as exc:
                rejected.append(str(exc))
                continue
            outcomes[outcome.result].append(outcome.document.title)
        if created := outcomes[UploadResult.CREATED]:
            messages.success(
                request,
                f"Uploaded {len(created)} document(s) to {knowledge_base.name}; "
                "they are being processed.",
            )
        if updated := outcomes[UploadResult.UPDATED]:
            messages.success(request, "New version of: " + ", ".join(updated))
        if duplicates := outcomes[UploadResult.DUPLICATE]:
            messages.warning(
                request,
                "Already in this knowledge base, not uploaded again: " + ", ".join(duplicates),
            )
        for reason in rejected:
            messages.error(request, f"Not uploaded: {reason}")
        if rejected and not any(outcomes.values()):
            form.add_error("uploads", "None of the files could be uploaded: " + "; ".join(rejected))


@admin.register(FailedDocument)
class FailedDocumentAdmin(DocumentAdminBase):
    """Documents ingestion gave up on, each with its full reason, ready to retry."""

    list_display = ["title", "knowledge_base", "reason", "attempts", "updated_at"]
    list_filter = [("knowledge_base", admin.RelatedOnlyFieldListFilter)]
    readonly_fields = [f.name for f in Document._meta.fields]

    @admin.display(description="Error", ordering="error")
    def reason(self, obj: Document) -> str:
        # A failed new version says which older one search still serves.
        return obj.status_line() if obj.serves_previous_version else obj.error

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).filter(status=Document.Status.FAILED)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # The document's own page has everything; send people there.
        return HttpResponseRedirect(reverse("admin:kb_document_change", args=[object_id]))
