"""OpenAPI building blocks shared by every API view: the error shape and its responses.

``web/api_errors.py`` turns every failure into ``{"error": {"code", "message",
"retry_after"?}}``; ``ErrorSerializer`` describes that body so ``/api/schema/``
declares it, and ``error_responses(...)`` declares the statuses an operation can
answer with, so a schema-driven checker (schemathesis) finds each response
documented.

Use::

    @extend_schema(
        responses={200: OutputSerializer, **error_responses(400, 404)},
        parameters=[*ERROR_HEADERS],
    )
"""

from __future__ import annotations

from typing import Any, Literal

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

# What every authenticated endpoint can answer besides its own errors.
COMMON_ERRORS = (401, 403, 429)

ERROR_DESCRIPTIONS = {
    400: "The request is invalid (`invalid` for a field, or a domain code).",
    401: "No credentials, or an API key that is not valid, expired or revoked.",
    403: "The credentials do not grant the scope or role this operation needs.",
    404: "No such object, or it belongs to another account.",
    405: "The method is not allowed on this path.",
    409: "The object is not in a state that allows this operation (`conflict`).",
    413: "The request or file is larger than the server accepts.",
    415: "The content type or file type is not supported.",
    429: "Too many requests or over budget; retry after `Retry-After` seconds.",
    503: "A provider the operation depends on is unavailable; retry after `Retry-After`.",
}


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. `not_found`.")
    message = serializers.CharField(help_text="What went wrong, in words for people.")
    retry_after = serializers.IntegerField(
        required=False, help_text="Seconds to wait before retrying (429 and 503 only)."
    )


class ErrorSerializer(serializers.Serializer):
    """The one error body of the API."""

    error = ErrorDetailSerializer()


def error_responses(*statuses: int, common: bool = True) -> dict[int, OpenApiResponse]:
    """``{status: response with the error body}`` for ``statuses`` (plus 401, 403 and 429
    unless ``common`` is false), to merge into ``extend_schema(responses=...)``."""
    wanted = sorted({*statuses, *(COMMON_ERRORS if common else ())})
    return {
        status: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS.get(status, ""))
        for status in wanted
    }


RETRY_AFTER_HEADER = OpenApiParameter(
    "Retry-After",
    OpenApiTypes.INT,
    OpenApiParameter.HEADER,
    response=[429, 503],
    description="Seconds to wait before retrying.",
)
WWW_AUTHENTICATE_HEADER = OpenApiParameter(
    "WWW-Authenticate",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=[401],
    description='How to authenticate: `Bearer realm="api"`.',
)
# Response headers of the common errors, for ``extend_schema(parameters=[*ERROR_HEADERS])``.
ERROR_HEADERS = (RETRY_AFTER_HEADER, WWW_AUTHENTICATE_HEADER)


class ApiAutoSchema(AutoSchema):
    """AutoSchema that names nested serializers after their view.

    The house style nests ``InputSerializer``/``OutputSerializer`` in each
    ``<Entity><Action>Api``; by class name alone every view's would be one
    component. ``DocumentListApi.OutputSerializer`` becomes ``DocumentListOutput``
    (the ``Serializer`` suffix is dropped by drf-spectacular).
    """

    def get_serializer_name(
        self, serializer: Any, direction: Literal["request", "response"]
    ) -> str:
        parts = type(serializer).__qualname__.split(".")
        if len(parts) < 2 or "<locals>" in parts:
            return super().get_serializer_name(serializer, direction)
        return parts[0].removesuffix("Api") + parts[-1]


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Declares kb.api.auth.ApiKeyAuthentication: the key as a Bearer token or in X-API-Key.

    Registered by being defined; this module is imported by the API views.
    """

    target_class = "kb.api.auth.ApiKeyAuthentication"
    name = ["bearerAuth", "apiKeyAuth"]

    def get_security_requirement(self, auto_schema: AutoSchema) -> list[dict[str, list[Any]]]:
        return [{"bearerAuth": []}, {"apiKeyAuth": []}]  # either one

    def get_security_definition(self, auto_schema: AutoSchema) -> list[dict[str, Any]]:
        return [
            {
                "type": "http",
                "scheme": "bearer",
                "description": "An API key (`cairn_…`) as a Bearer token.",
            },
            {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        ]


class ServerSentEventSerializer(serializers.Serializer):
    """One Server-Sent Event as a stream carries it: its name and its data (JSON text)."""

    event = serializers.CharField(required=False, help_text="token, citation, usage, error, done…")
    # DRF's metaclass moves declared fields off the class, so ``.data`` still works.
    data = serializers.CharField(help_text="A JSON object.")  # type: ignore[assignment]
    id = serializers.CharField(required=False)
    retry = serializers.IntegerField(required=False)


def streaming_responses(
    ok: Any, *statuses: int, stream_media_type: str = "text/event-stream"
) -> dict[Any, Any]:
    """Responses of an operation that answers in JSON or as an event stream: ``ok`` and
    the error body for JSON, event descriptions for the stream (errors then come as one
    ``error`` event whose data is the error body)."""
    responses: dict[Any, Any] = {
        (200, "application/json"): ok,
        (200, stream_media_type): ServerSentEventSerializer,
    }
    for status, response in error_responses(*statuses).items():
        responses[(status, "application/json")] = response
        responses[(status, stream_media_type)] = OpenApiResponse(
            ServerSentEventSerializer, description=response.description
        )
    return responses
