"""Triage of a new ticket: classify → route → notify → acknowledge and ask for a draft.

Run once per ticket by ``tickets.tasks.ticket_triage_task``, queued when the ticket is
opened. Idempotent: the classification is written by a conditional UPDATE of a ticket
whose ``classified_at`` is still empty, in the same transaction as the routing, the
events, the acknowledgement and the draft request, with the mails sent after it commits.
A redelivered or duplicated task therefore either finds the ticket triaged and does
nothing, or (the first attempt died before committing) does all of it once; two running
at once classify twice at most (the second is a cache hit, for identical text) and only
one of them writes, routes and mails.

Urgent tickets skip every automatic reply: no acknowledgement in the conversation, no
drafted reply (``draft_status="skipped"``); they go straight to the queue's people.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from chat.models import Conversation, Message
from chat.services.conversations import agent_message_add
from observability.logging import request_id_get
from tickets.classification import Classification, classify
from tickets.models import Queue, Ticket, TicketEvent, Urgency
from tickets.services.drafts import draft_request
from tickets.services.notifications import ticket_notify
from tickets.services.routing import route_find

logger = logging.getLogger(__name__)

DRAFT_SKIPPED = "skipped"


@dataclass(frozen=True)
class Triage:
    """What triage did to one ticket."""

    classification: Classification
    queue: Queue | None
    acknowledged: bool  # an automatic acknowledgement was posted in the conversation
    drafted: bool  # a drafted reply was asked for


def acknowledgement_text(queue: Queue | None) -> str:
    """What the asker reads in their conversation once their ticket is routed."""
    if queue is None:
        return "A person from our support team will reply here."
    return f"A person from {queue.name} will reply here."


def _classification_text(ticket: Ticket) -> str:
    """The asker's own words: the question, and the thumbs-down comment if any (it often
    carries the urgency and the mood). Never Cairn's answer: that is not the asker's."""
    return f"{ticket.question}\n\n{ticket.comment}" if ticket.comment else ticket.question


def ticket_triage(*, ticket_id: int) -> Triage | None:
    """Classify, route and notify the ticket, then acknowledge it and ask for a draft
    (neither when urgent). None when there is nothing to do: the ticket is gone, or it
    was triaged already (a repeated task)."""
    ticket = Ticket.objects.select_related("account").filter(pk=ticket_id).first()
    if ticket is None:
        logger.info("ticket %s is gone: no triage", ticket_id)
        return None
    if ticket.classified_at is not None:
        return None
    # Outside the transaction: a language model may take seconds, and no lock is held.
    result = classify(
        account=ticket.account,
        text=_classification_text(ticket),
        request_id=request_id_get() or "",
    )
    with transaction.atomic():
        now = timezone.now()
        claimed = Ticket.objects.filter(pk=ticket.pk, classified_at__isnull=True).update(
            category=result.category, urgency=result.urgency, sentiment=result.sentiment,
            confidence=result.confidence, classified_by=result.classified_by[:100],
            classified_at=now, updated_at=now,
        )  # fmt: skip
        if not claimed:
            return None  # another run of this task got there first
        ticket = Ticket.objects.select_for_update().select_related("account").get(pk=ticket.pk)
        TicketEvent.objects.create(
            ticket=ticket, kind=TicketEvent.Kind.CLASSIFIED,
            data={
                "category": result.category, "urgency": result.urgency,
                "sentiment": result.sentiment, "confidence": result.confidence,
                "classified_by": result.classified_by, "cached": result.cached,
            },
        )  # fmt: skip
        queue, routed = _route(ticket)
        event = TicketEvent.objects.create(ticket=ticket, kind=TicketEvent.Kind.ROUTED, data=routed)
        ticket_notify(ticket=ticket)
        acknowledged = drafted = False
        if ticket.urgency == Urgency.URGENT:
            ticket.draft_status = DRAFT_SKIPPED
            ticket.save(update_fields=["draft_status", "updated_at"])
        elif ticket.status != Ticket.Status.SOLVED:
            acknowledgement = _acknowledge(ticket, queue)
            if acknowledgement is not None:
                event.data["acknowledgement_message_id"] = acknowledgement.pk
                event.save(update_fields=["data"])
                acknowledged = True
            draft_request(ticket)
            drafted = True
    logger.info(
        "ticket %s triaged: %s/%s → %s", ticket.pk, result.category, result.urgency,
        queue.slug if queue else "unrouted",
        extra={"ticket_id": ticket.pk, "category": result.category, "urgency": result.urgency,
               "queue_id": queue.pk if queue else None},
    )  # fmt: skip
    return Triage(classification=result, queue=queue, acknowledged=acknowledged, drafted=drafted)


def _route(ticket: Ticket) -> tuple[Queue | None, dict[str, Any]]:
    """Put the ticket in its queue; the queue and what the ROUTED event records (which
    queue, and why). A ticket that already has a queue keeps it."""
    if ticket.queue_id is not None:
        queue = Queue.objects.filter(pk=ticket.queue_id).first()
        reason, rule_id = "kept", None
    else:
        route = route_find(
            account_id=ticket.account_id, category=ticket.category, urgency=ticket.urgency
        )
        queue, reason = route.queue, route.reason
        rule_id = route.rule.pk if route.rule is not None else None
        if queue is not None:
            ticket.queue = queue
            ticket.save(update_fields=["queue", "updated_at"])
    data: dict[str, Any] = {
        "queue_id": queue.pk if queue else None, "queue": queue.name if queue else "",
        "reason": reason, "rule_id": rule_id,
    }  # fmt: skip
    return queue, data


def _acknowledge(ticket: Ticket, queue: Queue | None) -> Message | None:
    """Tell the asker, in their conversation, that a person will reply there: an ``agent``
    message (the support team speaking, not an answer from the documents), posted while
    nobody has replied yet. None when the ticket has no conversation."""
    if ticket.conversation_id is None or ticket.first_response_at is not None:
        return None
    conversation = Conversation.objects.filter(
        pk=ticket.conversation_id, account_id=ticket.account_id
    ).first()
    if conversation is None:
        return None
    return agent_message_add(conversation=conversation, text=acknowledgement_text(queue))
