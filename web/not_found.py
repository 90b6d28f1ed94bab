"""404 for paths no route matches: the API's JSON error shape under /api/ and /v1/, the
usual page elsewhere (an API client must never have to parse an HTML page)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found

from web.api_errors import API_PREFIXES, error_body


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith(API_PREFIXES):
        return JsonResponse(error_body("not_found", "No such path."), status=404)
    return page_not_found(request, exception)
