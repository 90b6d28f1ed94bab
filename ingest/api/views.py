"""REST API of documents: upload, list, get, delete and retry their ingestion.

Uploads are multipart, one file per request. An upload whose Content-Length is
already over the limit is refused before its body is parsed (and before
authentication, which for a session would parse it for the CSRF check);
``document_create`` refuses the rest by their actual size.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from ingest.filetypes import ACCEPTED_EXTENSIONS, FileTypeError
from ingest.services.recovery import documents_retry
from ingest.services.uploads import UploadRejected, UploadResult, document_create
from kb.api.auth import request_api_key
from kb.api.serializers import BlankAsNullCharField, KnowledgeBaseReferenceSerializer
from kb.api.views import AccountScopedApi, OperationsApi
from kb.models import ApiKey, AuditEvent, Document
from kb.services.audit import audit_record
from kb.services.documents import documents_delete
from web.api_errors import ApplicationError, Conflict, PayloadTooLarge, UnsupportedMediaType
from web.api_schema import ERROR_HEADERS, error_responses

# Room for multipart boundaries, part headers and the small form fields around the file.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
TAG = "documents"


def upload_limit_bytes() -> int:
    return int(settings.CAIRN_MAX_UPLOAD_MB) * 1024 * 1024


class DocumentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    # DRF's metaclass moves declared fields off the class; ``Field.source`` is not shadowed.
    source = serializers.CharField(  # type: ignore[assignment]
        help_text="Where it came from; a new upload from the same source becomes a new "
        "version of this document."
    )
    filename = serializers.CharField(source="original_filename")
    knowledge_base = KnowledgeBaseReferenceSerializer()
    status = serializers.ChoiceField(choices=Document.Status.choices)
    error = BlankAsNullCharField(help_text="Why ingestion failed; null unless it did.")
    progress = serializers.FloatField(
        min_value=0.0, max_value=1.0, help_text="Share of chunks embedded; 1.0 once ready."
    )
    chunks_total = serializers.IntegerField()
    chunks_embedded = serializers.IntegerField()
    version = serializers.IntegerField()
    live_version = serializers.IntegerField(
        allow_null=True,
        help_text="The version search serves (its text and passages): behind `version` "
        "while a newer upload is pending, processing or failed; null until one is ready.",
    )
    status_message = serializers.CharField(
        source="status_summary",
        help_text='The status in words, e.g. "Ready" or "version 2 failed: the PDF is '
        'damaged and cannot be read; serving version 1".',
    )
    size_bytes = serializers.IntegerField()
    mime_type = serializers.CharField()
    page_count = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    ingested_at = serializers.DateTimeField(allow_null=True)


def document_get(view: AccountScopedApi, document_id: int) -> Document:
    """The document ``document_id`` within the view's accounts, or 404 (403, see not_found)."""
    candidates = Document.objects.filter(pk=document_id)
    document = view.scoped(candidates).select_related("knowledge_base").first()
    if document is None:
        raise view.not_found(candidates, "document")
    return document


class DocumentListApi(AccountScopedApi):
    required_scope = ApiKey.Scope.READ

    class FilterSerializer(serializers.Serializer):
        knowledge_base = serializers.CharField(
            max_length=100, required=False, help_text="Slug or id."
        )
        status = serializers.ChoiceField(choices=Document.Status.choices, required=False)

    @extend_schema(
        operation_id="documents_list",
        summary="List documents with their ingestion status and progress",
        tags=[TAG],
        parameters=[FilterSerializer, *ERROR_HEADERS],
        responses={200: DocumentSerializer(many=True), **error_responses(400, 404)},
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        documents = self.scoped(Document.objects.select_related("knowledge_base"))
        if reference := filters.validated_data.get("knowledge_base"):
            documents = documents.filter(knowledge_base=self.knowledge_base_get(reference))
        if state := filters.validated_data.get("status"):
            documents = documents.filter(status=state)
        return self.paginated_response(documents.order_by("-created_at", "-pk"), DocumentSerializer)


class DocumentUploadApi(AccountScopedApi):
    required_scope = ApiKey.Scope.INGEST
    parser_classes = [MultiPartParser]

    class InputSerializer(serializers.Serializer):
        file = serializers.FileField(
            help_text=f"One file per request: {ACCEPTED_EXTENSIONS}; its content must match "
            "its extension. Size limit: CAIRN_MAX_UPLOAD_MB (50 MB by default)."
        )
        knowledge_base = serializers.CharField(max_length=100, help_text="Slug or id.")
        source = serializers.CharField(  # type: ignore[assignment]  # see DocumentSerializer
            max_length=500,
            required=False,
            help_text="Default: the file name. A new file from a known source replaces that "
            "document's content (a new version).",
        )

    class OutputSerializer(DocumentSerializer):
        result = serializers.SerializerMethodField(
            help_text="created: a new document (201); updated: a new version of the document "
            "from this source (201); duplicate: these bytes are already there (200)."
        )

        @extend_schema_field(serializers.ChoiceField(choices=[r.value for r in UploadResult]))
        def get_result(self, document: Document) -> str:
            return str(self.context["result"])

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        self._refuse_declared_oversize(request)
        super().initial(request, *args, **kwargs)

    @extend_schema(
        operation_id="documents_upload",
        summary="Upload a document (multipart); its ingestion is queued",
        tags=[TAG],
        request={"multipart/form-data": InputSerializer},
        parameters=[
            *ERROR_HEADERS,
            OpenApiParameter(
                "Location",
                str,
                OpenApiParameter.HEADER,
                response=[201],
                description="The document's URL.",
            ),
        ],
        responses={
            201: OutputSerializer,
            200: OutputSerializer,
            **error_responses(400, 404, 413, 415),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if len(request.FILES.getlist("file")) > 1:
            raise ValidationError({"file": "Upload one file per request."})
        data = serializer.validated_data
        knowledge_base = self.knowledge_base_get(data["knowledge_base"])
        upload: UploadedFile = data["file"]
        try:
            outcome = document_create(
                knowledge_base=knowledge_base, upload=upload, source=data.get("source")
            )
        except UploadRejected as exc:
            raise _rejection(exc, upload) from exc
        document = outcome.document
        document.knowledge_base = knowledge_base  # the same row; saves a query
        body = self.OutputSerializer(document, context={"result": outcome.result}).data
        if outcome.result is UploadResult.DUPLICATE:
            return Response(body, status.HTTP_200_OK)
        location = reverse("api-document", kwargs={"document_id": document.pk})
        return Response(body, status.HTTP_201_CREATED, headers={"Location": location})

    def _refuse_declared_oversize(self, request: Request) -> None:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return  # Django rejects a malformed length itself
        if length > upload_limit_bytes() + MULTIPART_OVERHEAD_BYTES:
            raise PayloadTooLarge(
                f"The request is {length / 1024 / 1024:.1f} MB; the largest document accepted "
                f"is {settings.CAIRN_MAX_UPLOAD_MB} MB."
            )


def _rejection(exc: UploadRejected, upload: UploadedFile) -> APIException:
    """413 for too large, 415 for a type Cairn cannot read (or content that does not
    match the extension), 400 for the rest (e.g. deleted while uploading)."""
    if isinstance(exc.__cause__, FileTypeError):
        return UnsupportedMediaType(str(exc))
    if upload.size is not None and upload.size > upload_limit_bytes():
        return PayloadTooLarge(str(exc))
    return ApplicationError(str(exc), code="upload_rejected")


class DocumentsApi(OperationsApi, DocumentListApi, DocumentUploadApi):
    """``documents``: GET lists, POST uploads."""


class DocumentDetailApi(AccountScopedApi):
    required_scope = ApiKey.Scope.READ

    @extend_schema(
        operation_id="documents_retrieve",
        summary="Get a document with its ingestion status and progress",
        tags=[TAG],
        parameters=[*ERROR_HEADERS],
        responses={200: DocumentSerializer, **error_responses(404)},
    )
    def get(self, request: Request, document_id: int) -> Response:
        document = document_get(self, document_id)
        audit_record(
            action=AuditEvent.Action.DOCUMENT_READ_API, request=request,
            api_key=request_api_key(request), target=document,
        )  # fmt: skip
        return Response(DocumentSerializer(document).data)


class DocumentDeleteApi(AccountScopedApi):
    required_scope = ApiKey.Scope.INGEST

    @extend_schema(
        operation_id="documents_delete",
        summary="Delete a document with its chunks and file",
        tags=[TAG],
        parameters=[*ERROR_HEADERS],
        responses={204: None, **error_responses(404)},
    )
    def delete(self, request: Request, document_id: int) -> Response:
        candidates = Document.objects.filter(pk=document_id)
        if not documents_delete(documents=self.scoped(candidates)):
            raise self.not_found(candidates, "document")
        return Response(status=status.HTTP_204_NO_CONTENT)


class DocumentApi(OperationsApi, DocumentDetailApi, DocumentDeleteApi):
    """``documents/<id>``: GET reads, DELETE deletes."""


class DocumentRetryApi(AccountScopedApi):
    required_scope = ApiKey.Scope.INGEST

    @extend_schema(
        operation_id="documents_retry",
        summary="Queue a failed document's ingestion again",
        tags=[TAG],
        request=None,
        parameters=[*ERROR_HEADERS],
        responses={202: DocumentSerializer, **error_responses(404, 409)},
    )
    def post(self, request: Request, document_id: int) -> Response:
        document = document_get(self, document_id)
        if document.status != Document.Status.FAILED:
            raise Conflict(f"Only failed documents can be retried; this one is {document.status}.")
        documents_retry(documents=[document])
        document = document_get(self, document_id)
        return Response(DocumentSerializer(document).data, status.HTTP_202_ACCEPTED)
