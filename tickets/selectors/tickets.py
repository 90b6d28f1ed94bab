"""Tickets and queues a person may see: those of the accounts they are a member of.

Every member of an account (staff or admin) works its tickets; superusers see every
account's, as in the admin. Scoping is in SQL, through ``kb.selectors.accounts``, the one
place tenant access is decided; another account's ticket is a 404.
"""

from __future__ import annotations

from collections.abc import Collection

from django.db.models import Prefetch, QuerySet
from django.http import Http404

from chat.models import Conversation
from kb.selectors.accounts import AnyUser, accounts_for_user
from tickets.models import Queue, Ticket, TicketEvent

# ``queue=UNROUTED`` lists the tickets no rule or default queue took.
UNROUTED = "unrouted"

QueueFilter = Queue | int | str | None


def tickets_for_accounts(
    *,
    account_ids: Collection[int],
    queue: QueueFilter = None,
    status: str | None = None,
    urgency: str | None = None,
) -> QuerySet[Ticket]:
    """The tickets of ``account_ids``, newest first, filtered.

    ``queue``: a Queue, its id, its slug (in any of the accounts), or UNROUTED; ``status``
    and ``urgency``: one of their values. The REST API scopes by the accounts a request
    may act on (``kb.api.auth.request_account_ids``) and calls this directly.
    """
    tickets = Ticket.objects.filter(account_id__in=list(account_ids))
    return _filtered(tickets, queue=queue, status=status, urgency=urgency)


def _filtered(
    tickets: QuerySet[Ticket], *, queue: QueueFilter, status: str | None, urgency: str | None
) -> QuerySet[Ticket]:
    if isinstance(queue, Queue):
        tickets = tickets.filter(queue_id=queue.pk)
    elif isinstance(queue, int):
        tickets = tickets.filter(queue_id=queue)
    elif queue == UNROUTED:
        tickets = tickets.filter(queue__isnull=True)
    elif queue:
        tickets = tickets.filter(queue__slug=queue)
    if status:
        tickets = tickets.filter(status=status)
    if urgency:
        tickets = tickets.filter(urgency=urgency)
    return tickets.select_related("account", "queue", "assignee").order_by("-created_at", "-id")


def tickets_visible(*, user: AnyUser) -> QuerySet[Ticket]:
    """Every ticket ``user`` may see: those of their accounts (all for a superuser)."""
    if not user.is_authenticated:
        return Ticket.objects.none()
    return Ticket.objects.filter(account__in=accounts_for_user(user=user))


def tickets_list(
    *,
    user: AnyUser,
    queue: QueueFilter = None,
    status: str | None = None,
    urgency: str | None = None,
) -> QuerySet[Ticket]:
    """The inbox's list: ``user``'s visible tickets, filtered as in tickets_for_accounts."""
    return _filtered(tickets_visible(user=user), queue=queue, status=status, urgency=urgency)


def ticket_events(*, ticket: Ticket) -> QuerySet[TicketEvent]:
    """The ticket's timeline, oldest first, with authors."""
    return ticket.events.select_related("author").order_by("created_at", "id")


def _with_timeline(tickets: QuerySet[Ticket]) -> QuerySet[Ticket]:
    return tickets.select_related(
        "account", "queue", "assignee", "asker", "conversation"
    ).prefetch_related(
        Prefetch("events", queryset=TicketEvent.objects.select_related("author").order_by(
            "created_at", "id"
        ))
    )  # fmt: skip


def ticket_get(*, user: AnyUser, ticket_id: int) -> Ticket:
    """One of ``user``'s visible tickets, with its events prefetched; Http404 otherwise."""
    try:
        return _with_timeline(tickets_visible(user=user)).get(pk=ticket_id)
    except Ticket.DoesNotExist as exc:
        raise Http404("No such ticket.") from exc


def ticket_for_accounts(*, account_ids: Collection[int], ticket_id: int) -> Ticket:
    """ticket_get for the REST API's accounts; Http404 outside them."""
    try:
        return _with_timeline(Ticket.objects.filter(account_id__in=list(account_ids))).get(
            pk=ticket_id
        )
    except Ticket.DoesNotExist as exc:
        raise Http404("No such ticket.") from exc


def queues_visible(*, user: AnyUser) -> QuerySet[Queue]:
    """The queues of ``user``'s accounts (the inbox's queue filter), by name."""
    if not user.is_authenticated:
        return Queue.objects.none()
    return (
        Queue.objects.filter(account__in=accounts_for_user(user=user))
        .select_related("account")
        .order_by("name", "id")
    )


def tickets_of_conversation(*, conversation: Conversation) -> QuerySet[Ticket]:
    """The tickets opened from a conversation (what its asker sees the status of), newest
    first. The caller has already checked that the conversation is the asker's."""
    return Ticket.objects.filter(
        conversation_id=conversation.pk, account_id=conversation.account_id
    ).order_by("-created_at", "-id")
