"""``/favicon.ico``: browsers ask for it at the root of every site they open.

Without it every first visit logs a 404. The icon is ``static/cairn/favicon.ico``
(three stones of a cairn, 16, 32 and 48 px), read once per process and sent with a
week-long cache header: its address never changes, so it is not cached for ever.
"""

from __future__ import annotations

from functools import cache

from django.contrib.staticfiles import finders
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

FAVICON = "cairn/favicon.ico"
MAX_AGE_SECONDS = 7 * 24 * 3600


@cache
def _favicon() -> bytes | None:
    path = finders.find(FAVICON)
    if not isinstance(path, str):
        return None
    with open(path, "rb") as icon:
        return icon.read()


@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    content = _favicon()
    if content is None:
        raise Http404("no favicon")
    response = HttpResponse(content, content_type="image/x-icon")
    response["Cache-Control"] = f"public, max-age={MAX_AGE_SECONDS}"
    return response
