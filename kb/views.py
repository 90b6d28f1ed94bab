"""The document view that citations link to: the parsed text with an anchor per chunk."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from kb.models import AuditEvent
from kb.selectors.documents import document_for_user, document_reading
from kb.services.audit import audit_record


@login_required
def document_detail(request: HttpRequest, document_id: int) -> HttpResponse:
    """``?chunk=<id>`` highlights that chunk; the link's ``#chunk-<id>`` scrolls to it."""
    document = document_for_user(user=request.user, document_id=document_id)
    reading = document_reading(document=document, cited_chunk_id=_chunk_id(request))
    audit_record(
        action=AuditEvent.Action.DOCUMENT_VIEW, request=request, target=document,
        detail={"chunk": reading.cited_chunk_id} if reading.cited_chunk_id else None,
    )  # fmt: skip
    return render(request, "kb/document_detail.html", {"reading": reading, "document": document})


def _chunk_id(request: HttpRequest) -> int | None:
    # Anything but plain digits is not a chunk id; treat the link as uncited.
    raw = request.GET.get("chunk", "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None
