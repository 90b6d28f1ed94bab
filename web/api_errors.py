"""One error shape for the whole API: {"error": {"code", "message", "retry_after"?}}.

Domain code raises ApplicationError subclasses (or DRF's exceptions); this handler
turns every one of them, and Django's 404/403 and its refusals of a body while parsing
it (too big: 413; too many fields or files: 400), into that shape with the right status
and, for 429 and 503, a Retry-After header. Errors are JSON even on views that render
something else (the schema's YAML, the docs' HTML); an event stream keeps its own
renderer, which sends the same body as an ``error`` event.

A request that waited CAIRN_DB_POOL_TIMEOUT seconds for a pooled database connection in
vain is answered 503 ``database_busy`` with a Retry-After, by this handler on DRF views and
by ``DatabaseBusyMiddleware`` on every other view (JSON under /api/ and /v1/, a short
text page elsewhere), never with Django's 500.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.conf import settings
from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousMultipartForm,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.db import OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.deprecation import MiddlewareMixin
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

try:
    from psycopg_pool import PoolTimeout
except ImportError:  # the pool is optional (CAIRN_DB_POOL_MAX_SIZE=0)

    class PoolTimeout(Exception):  # type: ignore[no-redef]
        """Never raised: stands in for psycopg_pool's when it is not installed."""


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


class DatabaseBusy(ServiceUnavailable):
    default_code = "database_busy"


DATABASE_BUSY_RETRY_AFTER = 2
DATABASE_BUSY_MESSAGE = (
    "The server is busy: no database connection became free in time. Try again in a moment."
)


def is_pool_timeout(exc: BaseException) -> bool:
    """``exc`` is the pool's timeout, as Django wraps it (an OperationalError whose cause
    is psycopg_pool's PoolTimeout) or bare."""
    if isinstance(exc, PoolTimeout):
        return True
    return isinstance(exc, OperationalError) and isinstance(exc.__cause__, PoolTimeout)


def database_busy() -> DatabaseBusy:
    return DatabaseBusy(DATABASE_BUSY_MESSAGE, retry_after=DATABASE_BUSY_RETRY_AFTER)


# What Django raises while reading a body: DATA_UPLOAD_MAX_MEMORY_SIZE, _NUMBER_FIELDS and
# _NUMBER_FILES exceeded, or a multipart body it will not parse.
BODY_REFUSALS = (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent, SuspiciousMultipartForm)

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


def _refused_body(exc: SuspiciousOperation) -> ApplicationError:
    """Django's refusal of a body it was parsing (raised from ``request.body``, ``.POST``
    or its multipart parser), in the API's terms; logged where Django logs it."""
    logging.getLogger(f"django.security.{type(exc).__name__}").warning("%s", exc)
    if isinstance(exc, RequestDataTooBig):
        limit_mb = (settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0) / 1024 / 1024
        return PayloadTooLarge(
            f"The request body is over the {limit_mb:g} MB accepted outside file uploads."
        )
    return ApplicationError(f"The request body cannot be read: {exc}", code="bad_request")


def _render_as_json(context: dict[str, Any]) -> None:
    """Errors go out as JSON unless the view's chosen renderer already speaks JSON or is
    an event stream (whose error event carries the same body)."""
    request = context.get("request")
    renderer = getattr(request, "accepted_renderer", None)
    if request is None or isinstance(renderer, JSONRenderer):
        return
    if getattr(renderer, "media_type", "") == "text/event-stream":
        return
    request.accepted_renderer = JSONRenderer()
    request.accepted_media_type = JSONRenderer.media_type


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, BODY_REFUSALS):
        exc = _refused_body(exc)
    elif is_pool_timeout(exc):
        logging.getLogger(__name__).warning("database_busy: %s", exc)
        exc = database_busy()
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
    _render_as_json(context)
    if retry_after is not None:
        response["Retry-After"] = str(math.ceil(retry_after))
    return response


# --- What Django answers itself, outside DRF: the error pages of /api/ and /v1/ ----------

API_PREFIXES = ("/api/", "/v1/")


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400: a request Django refused before any view (a Host not allowed, say)."""
    if request.path.startswith(API_PREFIXES):
        return JsonResponse(error_body("bad_request", "The request cannot be served."), status=400)
    return defaults.bad_request(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a bug (logged by Django with its traceback); never an HTML page to an
    API client."""
    if request.path.startswith(API_PREFIXES):
        body = error_body("internal_error", "Something went wrong on our side; it is logged.")
        return JsonResponse(body, status=500)
    return defaults.server_error(request)


class DatabaseBusyMiddleware(MiddlewareMixin):
    """A pool timeout raised by a view DRF does not handle (the chat pages, their streams'
    first steps, the admin): 503, JSON under the API prefixes, a line of text elsewhere."""

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_pool_timeout(exception):
            return None
        logging.getLogger(__name__).warning("database_busy: %s", exception)
        retry_after = str(DATABASE_BUSY_RETRY_AFTER)
        if request.path.startswith(API_PREFIXES):
            body = error_body("database_busy", DATABASE_BUSY_MESSAGE, DATABASE_BUSY_RETRY_AFTER)
            response: HttpResponse = JsonResponse(body, status=503)
        else:
            response = HttpResponse(
                DATABASE_BUSY_MESSAGE, status=503, content_type="text/plain; charset=utf-8"
            )
        response["Retry-After"] = retry_after
        return response
