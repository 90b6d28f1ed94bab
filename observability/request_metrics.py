"""Request latency per URL route, for Prometheus (``cairn_http_request_duration_seconds``).

Labels are the resolved route's pattern (``api/v1/conversations/<int:conversation_id>/
messages``), never the path: a path carries ids, and every distinct label value is a
series Prometheus keeps. Requests no route matched share ``unmatched``.

Streamed responses (the answer streams, SSE) are timed to their first byte: the
clock stops when the view hands the response back and its headers go out, not when
the stream ends, which takes as long as the answer and the reader. How fast answers
come is measured by ``cairn_llm_time_to_first_token_seconds`` instead.

Placed after WhiteNoise, so static files (answered before any route is resolved)
are not counted.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from observability.metrics import http_request_observe

UNMATCHED = "unmatched"


def request_route(request: HttpRequest) -> str:
    """The URL pattern that served ``request`` (as written in the URLconfs), or ``unmatched``."""
    match = request.resolver_match
    if match is None or not match.route:
        return UNMATCHED
    return match.route


class RequestMetricsMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        # Under ASGI the chain is async: staying async avoids a thread hop per request.
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.is_async:
            return self.__acall__(request)
        started = time.perf_counter()
        response = self.get_response(request)
        self._observe(request, response, time.perf_counter() - started)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        response = await self.get_response(request)
        self._observe(request, response, time.perf_counter() - started)
        return response

    @staticmethod
    def _observe(request: HttpRequest, response: HttpResponseBase, seconds: float) -> None:
        http_request_observe(
            route=request_route(request),
            method=request.method or "",
            status_code=response.status_code,
            seconds=seconds,
        )
