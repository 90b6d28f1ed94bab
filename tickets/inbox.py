"""What the staff inbox lists and what its live stream sends: the filter, and the changes.

The inbox lists a user's visible tickets (``tickets.selectors.tickets``) filtered by queue,
status and urgency, from the page's query string. Its live stream asks the database, once a
second, which of those tickets changed (``updated_at``) since it last looked: any web
process may have written the change, so nothing in-process would hear of it. Each look is
one indexed query (``tickets_account_updated``) plus one for the rows to show.

``updated_at`` is stamped when a row is saved, and the transaction that saves it commits a
moment later, so a look may miss a change stamped just before it. Each look therefore goes
back OVERLAP before the newest change seen, and skips what it has already sent at that
``updated_at``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from kb.models import Membership
from kb.selectors.accounts import account_ids_for_user, accounts_for_user
from tickets.models import Ticket, Urgency
from tickets.selectors.tickets import UNROUTED, tickets_list, tickets_visible

AnyUser = AbstractBaseUser | AnonymousUser

LIST_LIMIT = 100
OVERLAP = timedelta(seconds=10)
# A stream asked to start further back than this starts here (a stale tab's ``since``).
MAX_CATCH_UP = timedelta(hours=1)
CHANGES_PER_LOOK = 200


@dataclass(frozen=True)
class InboxFilter:
    """The list's filter, from the query string; a value it does not know is ignored."""

    queue: int | str | None = None  # a queue id, or UNROUTED
    status: str | None = None
    urgency: str | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> InboxFilter:
        raw_queue = query.get("queue", "")
        queue: int | str | None = None
        if raw_queue == UNROUTED:
            queue = UNROUTED
        elif raw_queue.isascii() and raw_queue.isdigit():
            queue = int(raw_queue)
        status = query.get("status", "")
        urgency = query.get("urgency", "")
        return cls(
            queue=queue,
            status=status if status in Ticket.Status.values else None,
            urgency=urgency if urgency in Urgency.values else None,
        )

    def query_string(self) -> str:
        """The filter as a query string (for the stream's URL and the list's links)."""
        values = {"queue": self.queue, "status": self.status, "urgency": self.urgency}
        return urlencode({key: value for key, value in values.items() if value is not None})


def inbox_allowed(*, user: AnyUser) -> bool:
    """Whether ``user`` works tickets at all: a superuser, or a member (staff or admin)
    of an account."""
    if getattr(user, "is_superuser", False):
        return True
    roles = (Membership.Role.STAFF, Membership.Role.ADMIN)
    return bool(account_ids_for_user(user=user, roles=roles))


def inbox_several_accounts(*, user: AnyUser) -> bool:
    """Whether ``user`` sees the tickets of more than one account (rows then name it)."""
    return accounts_for_user(user=user)[:2].count() > 1


def inbox_tickets(*, user: AnyUser, inbox_filter: InboxFilter) -> QuerySet[Ticket]:
    """The list, newest first (at most LIST_LIMIT rows are shown)."""
    return tickets_list(
        user=user,
        queue=inbox_filter.queue,
        status=inbox_filter.status,
        urgency=inbox_filter.urgency,
    )


def stream_start(since: str | None, *, now: datetime | None = None) -> datetime:
    """Where a stream starts: the page's ``since`` (when it was rendered), at most
    MAX_CATCH_UP ago; now without one."""
    now = now or timezone.now()
    parsed = parse_datetime(since) if since else None
    if parsed is None or timezone.is_naive(parsed):
        return now
    return max(parsed, now - MAX_CATCH_UP)


@dataclass
class InboxCursor:
    """How far one stream has looked: the newest ``updated_at`` seen, and what it sent
    recently (ticket id → the ``updated_at`` it was sent at)."""

    seen_until: datetime
    sent: dict[int, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class InboxChanges:
    shown: list[Ticket]  # changed and in the list: to add or replace, oldest change first
    gone: list[int]  # changed and no longer in the list (another status, queue…)


def inbox_changes(*, user: AnyUser, inbox_filter: InboxFilter, cursor: InboxCursor) -> InboxChanges:
    """The user's tickets that changed since ``cursor`` last looked; advances it."""
    floor = cursor.seen_until - OVERLAP
    changed = list(
        tickets_visible(user=user)
        .filter(updated_at__gte=floor)
        .order_by("updated_at", "id")
        .values_list("id", "updated_at")[:CHANGES_PER_LOOK]
    )
    fresh = {pk: updated for pk, updated in changed if cursor.sent.get(pk) != updated}
    for updated in fresh.values():
        cursor.seen_until = max(cursor.seen_until, updated)
    cursor.sent.update(fresh)
    # What was sent before the overlap cannot come round again: forget it.
    horizon = cursor.seen_until - OVERLAP
    cursor.sent = {pk: at for pk, at in cursor.sent.items() if at >= horizon}
    if not fresh:
        return InboxChanges([], [])
    shown = sorted(
        inbox_tickets(user=user, inbox_filter=inbox_filter).filter(pk__in=list(fresh)),
        key=lambda ticket: (ticket.updated_at, ticket.pk),
    )
    listed = {ticket.pk for ticket in shown}
    return InboxChanges(shown, [pk for pk in fresh if pk not in listed])
