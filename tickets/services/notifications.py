"""Telling a queue's members about a new ticket: one e-mail each.

The staff inbox's live list is the in-app notification (the inbox's SSE stream); this is
the mail. It goes only to members who are still members of the ticket's account, active
and with an address: a queue keeps its members when someone leaves the account, and the
mail quotes the customer's question. Sent after the triage commits, so a rolled-back
triage mails nobody; triage runs once per ticket (tickets.services.triage), so a member
gets one mail per ticket.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.urls import NoReverseMatch, reverse

from tickets.models import Ticket

logger = logging.getLogger(__name__)

QUESTION_CHARS = 1500


def ticket_recipients(*, ticket: Ticket) -> list[str]:
    """Addresses of the ticket's queue's members who may read it, sorted, no repeats."""
    if ticket.queue_id is None:
        return []
    users = get_user_model().objects.filter(
        ticket_queues=ticket.queue_id,
        memberships__account_id=ticket.account_id,
        is_active=True,
    )
    return sorted({user.email for user in users if user.email})


def _where(ticket: Ticket) -> str:
    """The ticket's page in the inbox, as a path (Cairn does not know its own host name)."""
    try:
        return f": {reverse('tickets:ticket', args=[ticket.pk])}"
    except NoReverseMatch:  # the inbox is not mounted in this deployment's URLs
        return ""


def _mail(ticket: Ticket, recipient: str) -> EmailMessage:
    queue = ticket.queue.name if ticket.queue else "no queue"
    urgency = ticket.urgency or "not classified"
    question = ticket.question
    if len(question) > QUESTION_CHARS:
        question = question[: QUESTION_CHARS - 1] + "…"
    urgent = "URGENT: " if ticket.urgency == "urgent" else ""
    subject = f"[Cairn] {urgent}Ticket #{ticket.pk} in {queue}: {ticket.subject}"
    body = (
        f"A new ticket is waiting in the queue {queue}.\n\n"
        f"Ticket #{ticket.pk}: {ticket.subject}\n"
        f"Category: {ticket.category or 'not classified'}; urgency: {urgency}; "
        f"opened because: {ticket.get_origin_display()}.\n\n"
        f"The question:\n{question}\n\n"
        f"Open it in Cairn's staff inbox to reply{_where(ticket)}.\n"
    )
    return EmailMessage(
        subject=" ".join(subject.split())[:250], body=body,
        from_email=settings.DEFAULT_FROM_EMAIL, to=[recipient],
    )  # fmt: skip


def ticket_notify(*, ticket: Ticket) -> None:
    """Mail each member of the ticket's queue once the current transaction commits (at
    once outside one). A mail server that fails is logged, never raised: the ticket is
    in the inbox either way."""
    recipients = ticket_recipients(ticket=ticket)
    if not recipients:
        return
    messages = [_mail(ticket, recipient) for recipient in recipients]

    def send() -> None:
        try:
            with get_connection() as connection:
                sent = connection.send_messages(messages) or 0
        except Exception:
            logger.exception("ticket %s: the notification mails could not be sent", ticket.pk)
            return
        logger.info(
            "ticket %s: %s notification mails sent", ticket.pk, sent,
            extra={"ticket_id": ticket.pk, "mails": sent},
        )  # fmt: skip

    transaction.on_commit(send)
