"""One error shape for the whole API: {"error": {"code", "message", "retry_after"?}}.

Domain code raises ApplicationError subclasses (or DRF's exceptions); this handler
turns every one of them, and Django's 404/403, into that shape with the right status
and, for 429 and 503, a Retry-After header.
"""

from __future__ import annotations

import math
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApplicationError(exceptions.APIException):
    """A domain error with a stable ``code`` clients can branch on."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    default_code = "bad_request"

    def __init__(
        self, message: str, *, code: str | None = None, retry_after: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(detail=message, code=code or self.default_code)
        self.code = code or self.default_code
        self.retry_after = retry_after
        self.extra = extra or {}


class Conflict(ApplicationError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class PayloadTooLarge(ApplicationError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"


class UnsupportedMediaType(ApplicationError):
    status_code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
    default_code = "unsupported_media_type"


class RateLimited(ApplicationError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "rate_limited"


class ServiceUnavailable(ApplicationError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "providers_unavailable"


_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def error_body(code: str, message: str, retry_after: float | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if retry_after is not None:
        error["retry_after"] = math.ceil(retry_after)
    return {"error": error}


def _message(detail: Any) -> str:
    """DRF details (strings, lists, field dicts) as one readable sentence."""
    if isinstance(detail, dict):
        parts = []
        for field, value in detail.items():
            text = _message(value)
            parts.append(text if field in ("detail", "non_field_errors") else f"{field}: {text}")
        return " ".join(parts)
    if isinstance(detail, list):
        return " ".join(_message(item) for item in detail)
    return str(detail)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug: Django's 500 handling and logging take over
    retry_after: float | None = None
    if isinstance(exc, ApplicationError):
        code, retry_after = exc.code, exc.retry_after
    elif isinstance(exc, exceptions.Throttled):
        code, retry_after = "rate_limited", getattr(exc, "wait", None)
    elif isinstance(exc, exceptions.ValidationError):
        code = "invalid"
    else:
        code = _CODES.get(response.status_code, "error")
    body = error_body(code, _message(getattr(exc, "detail", response.data)), retry_after)
    if isinstance(exc, ApplicationError) and exc.extra:
        body["error"].update(exc.extra)
    response.data = body
    if retry_after is not None:
        response["Retry-After"] = str(math.ceil(retry_after))
    return response
