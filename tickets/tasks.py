"""Celery tasks of the tickets app: thin wrappers that take ids and call services."""

from __future__ import annotations

from config.celery_app import app
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
