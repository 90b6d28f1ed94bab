"""The answer stream: an async SSE view (tokens, heartbeats, then the final answer).

Events: ``token`` (a piece of text, HTML-escaped, for appending), ``failed`` (a
short, readable reason when the answer ended in an error) and ``done`` (the
answer's final HTML, after the citation check; the client closes on it).
Comment lines are heartbeats, so proxies and browsers keep the connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.loader import render_to_string

from chat.models import Message
from chat.presentation import problem_text
from chat.rendering import streamed_text_html
from chat.selectors.conversations import message_for_user
from chat.services.answers import Finished, Token
from chat.streaming import (
    Heartbeat,
    answer_stream_events,
    closing_connection,
    event_stream_response,
)


def sse_event(event: str, data: str) -> str:
    """One SSE event; every line of ``data`` gets its own ``data:`` field."""
    lines = "\n".join(f"data: {line}" for line in data.split("\n"))
    return f"event: {event}\n{lines}\n\n"


def _final_html(request: HttpRequest, message_id: int) -> tuple[str, str]:
    message = message_for_user(user=request.user, message_id=message_id)
    html = render_to_string("chat/conversation.html#message", {"message": message}, request=request)
    failed = problem_text(message) if message.status == Message.Status.FAILED else ""
    # Blank lines would each cost a "data:" line on the wire.
    return "\n".join(line for line in html.splitlines() if line.strip()), failed


def _asked_message(request: HttpRequest, message_id: int) -> Message | None:
    """The message, if the session's user asked it (None: not logged in; 404: not theirs)."""
    if not request.user.is_authenticated:  # loads the session and the user
        return None
    return message_for_user(user=request.user, message_id=message_id)


async def answer_events(
    request: HttpRequest, message_id: int
) -> HttpResponse | StreamingHttpResponse:
    message = await sync_to_async(closing_connection(_asked_message))(request, message_id)
    if message is None:
        return HttpResponse("Log in to read answers.", status=403, content_type="text/plain")

    async def body() -> AsyncIterator[str]:
        yield "retry: 3000\n\n"
        stream = answer_stream_events(
            message_id=message.pk, heartbeat=settings.CAIRN_SSE_HEARTBEAT_SECONDS
        )
        async for item in stream:
            if isinstance(item, Heartbeat):
                yield ": heartbeat\n\n"
            elif isinstance(item, Token):
                yield sse_event("token", streamed_text_html(item.text))
            elif isinstance(item, Finished):
                final = sync_to_async(closing_connection(_final_html))
                html, failed = await final(request, item.message_id)
                if failed:
                    yield sse_event("failed", failed)
                yield sse_event("done", html)

    return event_stream_response(body())
