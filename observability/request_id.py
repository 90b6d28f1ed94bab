"""The request id middleware: every request gets an id, bound while it is served.

An ``X-Request-ID`` sent by a client or a proxy is kept when it is short and plain
(``observability.logging.request_id_clean``); otherwise, or without one, a new id is made.
It is bound while the view runs and while a streamed body is produced (an SSE
answer is generated after the view has returned), returned in the response's
``X-Request-ID``, and logged with the request's method, path, status and duration
on ``cairn.requests``: the web line of the id's trail.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import FileResponse, HttpRequest, HttpResponseBase, StreamingHttpResponse

from observability.logging import request_id_bound, request_id_clean, request_id_new

HEADER = "X-Request-ID"
logger = logging.getLogger("cairn.requests")

# Probes and static files would drown the log at INFO; they are logged at DEBUG.
_QUIET_PREFIXES = ("/healthz", "/readyz", "/static/")


def request_id_for(request: HttpRequest) -> str:
    """The incoming id if acceptable (bounded length, safe characters), else a new one."""
    return request_id_clean(request.META.get("HTTP_X_REQUEST_ID")) or request_id_new()


def _bound_iterator(content: Iterator[Any], request_id: str) -> Iterator[Any]:
    with request_id_bound(request_id):
        yield from content


async def _bound_async_iterator(content: AsyncIterator[Any], request_id: str) -> AsyncIterator[Any]:
    with request_id_bound(request_id):
        async for part in content:
            yield part


class RequestIdMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        request_id, started = request_id_for(request), time.monotonic()
        with request_id_bound(request_id):
            response = self.get_response(request)
            return self._finish(request, response, request_id, started)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        request_id, started = request_id_for(request), time.monotonic()
        with request_id_bound(request_id):
            get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
            response = await get_response(request)
            return self._finish(request, response, request_id, started)

    @staticmethod
    def _finish(
        request: HttpRequest, response: HttpResponseBase, request_id: str, started: float
    ) -> HttpResponseBase:
        response[HEADER] = request_id
        # A streamed body is produced after this returns, outside the block above.
        # (Files are left alone: wrapping them would lose the server's sendfile.)
        if isinstance(response, StreamingHttpResponse) and not isinstance(response, FileResponse):
            if response.is_async:
                response.streaming_content = _bound_async_iterator(
                    response.streaming_content,  # type: ignore[arg-type]
                    request_id,
                )
            else:
                response.streaming_content = _bound_iterator(
                    response.streaming_content,  # type: ignore[arg-type]
                    request_id,
                )
        quiet = request.path.startswith(_QUIET_PREFIXES)
        duration_ms = round((time.monotonic() - started) * 1000)
        # The path only: query strings carry search terms and such.
        logger.log(
            logging.DEBUG if quiet else logging.INFO,
            "%s %s %s in %d ms", request.method, request.path, response.status_code, duration_ms,
            extra={
                "method": request.method, "path": request.path,
                "status": response.status_code, "duration_ms": duration_ms,
                "streaming": response.streaming,
            },
        )  # fmt: skip
        return response
