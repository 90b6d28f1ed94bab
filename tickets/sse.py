"""The inbox's live stream: an async SSE view that sends the rows of changed tickets.

Events: ``ticket`` (a row's HTML, ``<tr id="ticket-N">``: the page adds it, or replaces
the row of that id) and ``gone`` (a ticket id: it changed and left this filtered list).
Comment lines are heartbeats. The stream looks once every POLL_SECONDS
(``tickets.inbox.inbox_changes``), each look on a thread with a connection closed after
it, so an open inbox holds no PostgreSQL connection between looks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.loader import render_to_string

from chat.sse import sse_event
from chat.streaming import closing_connection, event_stream_response
from tickets.inbox import (
    InboxChanges,
    InboxCursor,
    InboxFilter,
    inbox_allowed,
    inbox_changes,
    inbox_several_accounts,
    stream_start,
)

POLL_SECONDS = 1.0


def _inbox_user(request: HttpRequest) -> tuple[AbstractBaseUser, bool] | None:
    """The session's user if they may read the inbox (loads the session and the user),
    and whether they see several accounts' tickets (the rows then name the account)."""
    user = request.user
    if not user.is_authenticated or not inbox_allowed(user=user):
        return None
    return user, inbox_several_accounts(user=user)


def _rendered(request: HttpRequest, changes: InboxChanges, several_accounts: bool) -> list[str]:
    context = {"several_accounts": several_accounts}
    events = [
        sse_event(
            "ticket",
            "\n".join(
                line
                for line in render_to_string(
                    "tickets/inbox.html#row", {**context, "ticket": ticket}, request=request
                ).splitlines()
                if line.strip()
            ),
        )
        for ticket in changes.shown
    ]
    events += [sse_event("gone", str(pk)) for pk in changes.gone]
    return events


async def inbox_events(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    found = await sync_to_async(closing_connection(_inbox_user))(request)
    if found is None:
        return HttpResponse("Log in to read the inbox.", status=403, content_type="text/plain")
    user, several_accounts = found
    inbox_filter = InboxFilter.from_query(request.GET)
    cursor = InboxCursor(seen_until=stream_start(request.GET.get("since")))

    def look() -> list[str]:
        changes = inbox_changes(user=user, inbox_filter=inbox_filter, cursor=cursor)
        return _rendered(request, changes, several_accounts)

    poll = sync_to_async(closing_connection(look))

    async def body() -> AsyncIterator[str]:
        yield "retry: 3000\n\n"
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        while True:
            events = await poll()
            for event in events:
                yield event
            if events:
                quiet_since = loop.time()
            elif loop.time() - quiet_since >= settings.CAIRN_SSE_HEARTBEAT_SECONDS:
                yield ": heartbeat\n\n"
                quiet_since = loop.time()
            await asyncio.sleep(POLL_SECONDS)

    return event_stream_response(body())
