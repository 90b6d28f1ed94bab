"""The sweep that makes up for lost task messages.

Opening a ticket queues its triage after commit, quietly: a broker that cannot be reached
must not fail the answer or the click that opened it. Without this sweep such a ticket
would stay unclassified and unrouted for good. Celery beat runs it every
CAIRN_TICKET_SWEEP_INTERVAL_SECONDS; it queues again the triage of tickets still
unclassified, and the draft of tickets whose draft is still pending, after
CAIRN_TICKET_STALE_SECONDS. Both tasks are idempotent (triage claims the ticket, the draft
task writes only a pending draft), so a message that was merely slow costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from config.dispatch import enqueue_on_commit
from tickets.models import Ticket
from tickets.services.drafts import DRAFT_TASK, PENDING
from tickets.services.tickets import TRIAGE_TASK

BATCH = 500  # per sweep; the next sweep takes the rest


@dataclass
class Requeued:
    triage: list[int] = field(default_factory=list)
    drafts: list[int] = field(default_factory=list)


def tickets_requeue(*, stale_seconds: int | None = None) -> Requeued:
    """Queue again the triage and the drafts that should have happened by now."""
    stale = settings.CAIRN_TICKET_STALE_SECONDS if stale_seconds is None else stale_seconds
    cutoff = timezone.now() - timedelta(seconds=stale)
    requeued = Requeued(
        triage=list(
            Ticket.objects.filter(classified_at__isnull=True, created_at__lt=cutoff)
            .order_by("created_at")
            .values_list("pk", flat=True)[:BATCH]
        ),
        drafts=list(
            Ticket.objects.filter(draft_status=PENDING, updated_at__lt=cutoff)
            .order_by("updated_at")
            .values_list("pk", flat=True)[:BATCH]
        ),
    )
    for ticket_id in requeued.triage:
        enqueue_on_commit(TRIAGE_TASK, ticket_id, quiet=True)
    for ticket_id in requeued.drafts:
        enqueue_on_commit(DRAFT_TASK, ticket_id, quiet=True)
    return requeued
