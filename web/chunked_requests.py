"""A request body sent chunked (``Transfer-Encoding: chunked``, no Content-Length) is read
like any other.

Django's ASGI handler receives the whole body into a temporary file before the view runs,
but Django's parsers and DRF's take a missing Content-Length for an empty body: a chunked
upload was "No file was submitted" and a chunked JSON question had no question. This
middleware gives such a request the Content-Length of the body received, so that it is
parsed, and refused by the same limits (DATA_UPLOAD_MAX_MEMORY_SIZE, CAIRN_MAX_UPLOAD_MB)
as one that declared its length. Under WSGI the body is not seekable and nothing changes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest
from django.utils.decorators import sync_and_async_middleware


def received_length(request: HttpRequest) -> int:
    """Bytes of body received and not yet read, if the body is a seekable file (ASGI)."""
    stream = getattr(request, "_stream", None)
    if stream is None or not getattr(stream, "seekable", lambda: False)():
        return 0
    position = stream.tell()
    end = stream.seek(0, os.SEEK_END)
    stream.seek(position)
    return int(end - position)


def _declare_length(request: HttpRequest) -> None:
    if "CONTENT_LENGTH" not in request.META:
        length = received_length(request)
        if length:
            request.META["CONTENT_LENGTH"] = str(length)


@sync_and_async_middleware
def chunked_request_length_middleware(get_response: Callable[[HttpRequest], Any]) -> Any:
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> Any:
            _declare_length(request)
            return await get_response(request)

    else:

        def middleware(request: HttpRequest) -> Any:  # type: ignore[misc]
            _declare_length(request)
            return get_response(request)

    return middleware
