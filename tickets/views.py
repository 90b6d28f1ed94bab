"""The staff inbox and the asker's side of a ticket: thin htmx views.

Staff (every member of the ticket's account: staff or admin) list tickets and work one:
assign, change status, add an internal note, edit Cairn's drafted reply and send it. Each
view checks access through ``tickets.selectors.tickets`` (another account's ticket is a
404) and calls one service of ``tickets.services``. The live list is ``tickets/sse.py``.

The asker's side lives in their chat conversation (``templates/chat/conversation.html``
loads it): a "Talk to a person" button, then the ticket's status, and the agent's replies
as they come, by polling a fragment, so a reply sent from any server shows up.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.middleware import HtmxDetails

from chat.models import Message
from chat.selectors.conversations import conversation_for_user, conversation_messages
from kb.models import Account
from tickets.inbox import (
    LIST_LIMIT,
    InboxFilter,
    inbox_allowed,
    inbox_several_accounts,
    inbox_tickets,
)
from tickets.models import Ticket, TicketEvent, Urgency
from tickets.selectors.tickets import (
    UNROUTED,
    queues_visible,
    ticket_get,
    tickets_of_conversation,
)
from tickets.services import tickets as ticket_services
from tickets.services.drafts import PENDING, draft_abstained, draft_request

# How often the asker's conversation asks for the ticket's status and new replies.
ASKER_POLL_SECONDS = 5
# How often the ticket page asks whether the draft is written.
DRAFT_POLL_SECONDS = 2


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _actor(request: HttpRequest) -> AbstractBaseUser:
    """The signed-in member acting (every action view is behind the staff check)."""
    user = request.user
    if not user.is_authenticated:
        raise PermissionDenied
    return user


def _inbox_user(request: HttpRequest) -> AbstractBaseUser:
    """The session's user, if they work tickets (login_required ran before)."""
    if not inbox_allowed(user=request.user):
        raise PermissionDenied("The inbox is for the staff of an account.")
    return request.user  # type: ignore[return-value]


# --- the list ----------------------------------------------------------------------------


@login_required
@require_GET
def inbox(request: HtmxHttpRequest) -> HttpResponse:
    """The tickets, filtered by queue, status and urgency; the filter form swaps the list
    in place (htmx), and the list keeps itself up to date over SSE."""
    user = _inbox_user(request)
    inbox_filter = InboxFilter.from_query(request.GET)
    tickets = list(inbox_tickets(user=user, inbox_filter=inbox_filter)[: LIST_LIMIT + 1])
    context = {
        "tickets": tickets[:LIST_LIMIT],
        "more": len(tickets) > LIST_LIMIT,
        "chosen": inbox_filter,
        "stream_query": inbox_filter.query_string(),
        "since": timezone.now().isoformat(),
        "queues": list(queues_visible(user=user)),
        "several_accounts": inbox_several_accounts(user=user),
        "unrouted": UNROUTED,
        "statuses": Ticket.Status.choices,
        "urgencies": Urgency.choices,
    }
    template = "tickets/inbox.html#list" if request.htmx and not request.htmx.boosted else None
    return render(request, template or "tickets/inbox.html", context)


# --- one ticket --------------------------------------------------------------------------


def _members(account: Account) -> QuerySet[AbstractBaseUser]:
    """Who a ticket of ``account`` can be assigned to: its active members."""
    return (
        get_user_model()
        .objects.filter(memberships__account_id=account.pk, is_active=True)
        .order_by("username")
    )


def _ticket_context(request: HttpRequest, ticket: Ticket, **extra: object) -> dict[str, object]:
    events = list(ticket.events.all())  # prefetched by ticket_get, with authors
    replied = any(event.kind == TicketEvent.Kind.REPLY for event in events)
    answer = ticket.answer_message
    return {
        "ticket": ticket,
        "events": events,
        "replied": replied,
        "answer_message": answer if answer is not None and answer.role == "assistant" else None,
        "members": list(_members(ticket.account)),
        "statuses": Ticket.Status.choices,
        "draft_abstained": draft_abstained(ticket),
        "draft_poll_seconds": DRAFT_POLL_SECONDS,
        **extra,
    }


def _ticket(request: HttpRequest, ticket_id: int) -> Ticket:
    _inbox_user(request)
    ticket = ticket_get(user=request.user, ticket_id=ticket_id)
    if ticket.answer_message_id is not None:
        # The answer as the chat shows it, with its citations.
        ticket.answer_message = (
            Message.objects.filter(
                pk=ticket.answer_message_id, conversation__account_id=ticket.account_id
            )
            .prefetch_related("citations")
            .first()
        )
    return ticket


@login_required
@require_GET
def ticket_detail(request: HtmxHttpRequest, ticket_id: int) -> HttpResponse:
    ticket = _ticket(request, ticket_id)
    return render(request, "tickets/ticket.html", _ticket_context(request, ticket))


def _after_action(
    request: HtmxHttpRequest, ticket_id: int, error: str = "", *, reply_text: str | None = None
) -> HttpResponse:
    """The ticket again after an action: its panel in place for htmx, else the page. A
    reply being written comes along with every action (``hx-include``) and is kept."""
    if reply_text is None and "reply" in request.POST:
        reply_text = request.POST["reply"]
    if not request.htmx:
        if error:
            ticket = _ticket(request, ticket_id)
            context = _ticket_context(request, ticket, error=error, reply_text=reply_text)
            return render(request, "tickets/ticket.html", context, status=400)
        return redirect(reverse("tickets:ticket", args=[ticket_id]))
    ticket = _ticket(request, ticket_id)
    context = _ticket_context(request, ticket, error=error, reply_text=reply_text)
    return render(request, "tickets/ticket.html#work", context, status=400 if error else 200)


@login_required
@require_POST
def ticket_assign(request: HtmxHttpRequest, ticket_id: int) -> HttpResponse:
    """``assignee``: a member's id, "me", or empty to take the ticket back."""
    ticket = _ticket(request, ticket_id)
    raw = request.POST.get("assignee", "")
    assignee: AbstractBaseUser | None
    if raw == "me":
        assignee = request.user  # type: ignore[assignment]
    elif raw == "":
        assignee = None
    else:
        assignee = _members(ticket.account).filter(pk=raw if raw.isdigit() else -1).first()
        if assignee is None:
            return _after_action(request, ticket_id, "Choose a member of the account.")
    try:
        ticket_services.ticket_assign(ticket=ticket, assignee=assignee, by=_actor(request))
    except ticket_services.TicketRejected as exc:
        return _after_action(request, ticket_id, str(exc))
    return _after_action(request, ticket_id)


@login_required
@require_POST
def ticket_status(request: HtmxHttpRequest, ticket_id: int) -> HttpResponse:
    ticket = _ticket(request, ticket_id)
    try:
        ticket_services.ticket_status_set(
            ticket=ticket, status=request.POST.get("status", ""), by=_actor(request)
        )
    except ticket_services.TicketRejected as exc:
        return _after_action(request, ticket_id, str(exc))
    return _after_action(request, ticket_id)


@login_required
@require_POST
def ticket_note(request: HtmxHttpRequest, ticket_id: int) -> HttpResponse:
    ticket = _ticket(request, ticket_id)
    try:
        ticket_services.ticket_note_add(
            ticket=ticket, body=request.POST.get("body", ""), by=_actor(request)
        )
    except ticket_services.TicketRejected as exc:
        return _after_action(request, ticket_id, str(exc))
    return _after_action(request, ticket_id)


@login_required
@require_POST
def ticket_reply(request: HtmxHttpRequest, ticket_id: int) -> HttpResponse:
    """Send the (edited) draft to the asker: into their conversation, as the agent."""
    ticket = _ticket(request, ticket_id)
    body = request.POST.get("reply", "")
    try:
        ticket_services.ticket_reply_send(ticket=ticket, body=body, by=_actor(request))
    except ticket_services.TicketRejected as exc:
        return _after_action(request, ticket_id, str(exc), reply_text=body)
    return _after_action(request, ticket_id, reply_text="")


@login_required
@require_http_methods(["GET", "POST"])
def ticket_draft(request: HtmxHttpRequest, ticket_id: int) -> HttpResponse:
    """GET: the reply form (polled while the draft is being written). POST: ask Cairn
    for a draft again (after a failure, or for an urgent ticket that got none)."""
    ticket = _ticket(request, ticket_id)
    if request.method == "POST" and ticket.draft_status != PENDING:
        draft_request(ticket)
        ticket = _ticket(request, ticket_id)
    if not request.htmx:
        return redirect(reverse("tickets:ticket", args=[ticket_id]))
    return render(request, "tickets/ticket.html#reply", _ticket_context(request, ticket))


# --- the asker's side --------------------------------------------------------------------


def _status_context(
    request: HttpRequest, conversation_id: int, after: int, **extra: object
) -> dict[str, object]:
    conversation = conversation_for_user(user=request.user, conversation_id=conversation_id)
    ticket = tickets_of_conversation(conversation=conversation).first()
    replies = list(
        conversation_messages(conversation=conversation, user=request.user).filter(
            role=Message.Role.AGENT, pk__gt=after
        )
    )
    return {
        "conversation": conversation,
        "ticket": ticket,
        "replies": replies,
        "after": max([after, *(message.pk for message in replies)]),
        "poll_seconds": ASKER_POLL_SECONDS,
        **extra,
    }


def _after(request: HttpRequest) -> int:
    raw = request.GET.get("after", "") or request.POST.get("after", "")
    return int(raw) if raw.isascii() and raw.isdigit() else 0


@login_required
@require_GET
def conversation_status(request: HtmxHttpRequest, conversation_id: int) -> HttpResponse:
    """The asker's view of their ticket: a "Talk to a person" button, or the ticket's
    status; and the agent's replies posted since message ``after`` (added to the page)."""
    context = _status_context(request, conversation_id, _after(request))
    return render(request, "tickets/_conversation_status.html", context)


@login_required
@require_POST
def conversation_escalate(request: HtmxHttpRequest, conversation_id: int) -> HttpResponse:
    """ "Talk to a person": a ticket for the conversation's last question and answer."""
    conversation = conversation_for_user(user=request.user, conversation_id=conversation_id)
    error = ""
    try:
        ticket_services.ticket_open_from_conversation(
            conversation=conversation, user=request.user,  # type: ignore[arg-type]
            comment=request.POST.get("comment", "")[: settings.CAIRN_MAX_QUESTION_CHARS],
        )  # fmt: skip
    except ticket_services.TicketRejected as exc:
        error = str(exc)
    if not request.htmx:
        return redirect(reverse("chat:conversation", args=[conversation.pk]))
    context = _status_context(request, conversation_id, _after(request), error=error)
    return render(
        request, "tickets/_conversation_status.html", context, status=400 if error else 200
    )
