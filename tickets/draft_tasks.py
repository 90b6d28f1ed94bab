"""The drafted-reply task: takes a ticket id, calls the draft service.

A module of its own (not ``tickets/tasks.py``, core's); the Celery app lists it in
``include`` (config/celery_app.py) so that workers and ``config.dispatch`` find it.
"""

from __future__ import annotations

import logging

from config.celery_app import app
from tickets.models import Ticket
from tickets.services.drafts import PENDING, draft_make

logger = logging.getLogger(__name__)


@app.task(name="tickets.draft_tasks.ticket_draft_task", ignore_result=True)
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
