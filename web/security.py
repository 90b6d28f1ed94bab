"""A strict Content-Security-Policy on every response.

Only Cairn's own scripts, styles, images and connections: no inline script (so an
injected <script> or on* handler cannot run even if sanitising ever failed), no
third-party origins, no external images (a markdown image cannot carry data out).
Swagger UI, which styles itself inline, gets inline styles on its own page only.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

STRICT_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
API_DOCS_POLICY = STRICT_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
API_DOCS_PREFIX = "/api/docs/"


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = API_DOCS_POLICY if request.path.startswith(API_DOCS_PREFIX) else STRICT_POLICY
        response.headers.setdefault("Content-Security-Policy", policy)
        return response
