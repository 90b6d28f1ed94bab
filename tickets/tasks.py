"""Celery tasks of the tickets app: thin wrappers that take ids and call services."""

from __future__ import annotations

import logging

from config.celery_app import app
from tickets.models import Ticket
from tickets.services.drafts import PENDING, draft_make
from tickets.services.recovery import tickets_requeue
from tickets.services.triage import ticket_triage


@app.task(
    acks_late=True, reject_on_worker_lost=True, name="tickets.tasks.ticket_triage_task",
    ignore_result=True,
)  # fmt: skip
def ticket_triage_task(ticket_id: int) -> str:
    """Queued when a ticket is opened. Safe to repeat: triage claims the ticket, so a
    redelivered message classifies, routes and mails nothing a second time."""
    triage = ticket_triage(ticket_id=ticket_id)
    if triage is None:
        return "nothing to do"
    return f"{triage.classification.category}/{triage.classification.urgency}"


logger = logging.getLogger(__name__)


@app.task(name="tickets.tasks.ticket_draft_task", ignore_result=True)
def ticket_draft_task(ticket_id: int) -> str:
    """Write the ticket's draft if it is still asked for (``pending``): a repeated
    message, or one for a ticket whose draft was since written, does nothing."""
    try:
        ticket = Ticket.objects.select_related(
            "account", "asker", "conversation__knowledge_base"
        ).get(pk=ticket_id)
    except Ticket.DoesNotExist:
        logger.info("ticket %s is gone: no draft", ticket_id)
        return "gone"
    if ticket.draft_status != PENDING:
        return ticket.draft_status or "not asked"
    return draft_make(ticket).draft_status


@app.task(name="tickets.tasks.tickets_requeue_task", ignore_result=True)
def tickets_requeue_task() -> dict[str, int]:
    """Run by beat every CAIRN_TICKET_SWEEP_INTERVAL_SECONDS: queue again the triage and
    drafts whose messages were lost (a broker down when the ticket was opened)."""
    requeued = tickets_requeue()
    return {"triage": len(requeued.triage), "drafts": len(requeued.drafts)}
