"""Lost task messages: a ticket opened while the broker was down is still triaged, and a
draft whose message was lost is still written, by the beat sweep (tickets_requeue)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.support.tasks import tasks_run_inline
from tests.tickets.core_support import ingest_help
from tests.tickets.test_core_triage import BILLING, Desk
from tickets.models import Ticket
from tickets.services.recovery import tickets_requeue
from tickets.services.tickets import ticket_open

pytestmark = pytest.mark.django_db


@pytest.fixture
def desk(kb) -> Desk:
    ingest_help(kb)
    return Desk(kb.account)


def aged(ticket: Ticket, **fields: object) -> None:
    # update() leaves auto_now alone: the ticket looks as old as we say.
    old = timezone.now() - timedelta(minutes=10)
    Ticket.objects.filter(pk=ticket.pk).update(created_at=old, updated_at=old, **fields)


def test_a_ticket_whose_triage_message_was_lost_is_triaged_by_the_sweep(
    kb, desk, django_capture_on_commit_callbacks, mailoutbox
) -> None:
    # Given two tickets whose triage never reached a worker (the on-commit queueing never
    # ran, as with a broker that was down): one opened ten minutes ago, one just now
    lost = ticket_open(account=kb.account, origin=Ticket.Origin.API, question=BILLING)
    aged(lost)
    recent = ticket_open(account=kb.account, origin=Ticket.Origin.API, question="A new one.")

    # When the sweep runs, its tasks executed as a worker would
    with tasks_run_inline(), django_capture_on_commit_callbacks(execute=True):
        requeued = tickets_requeue()

    # Then only the old one was queued again, and it is now classified, routed and mailed
    assert requeued.triage == [lost.pk]
    lost.refresh_from_db()
    recent.refresh_from_db()
    assert lost.classified_at is not None and lost.queue_id == desk.billing.pk
    assert [m.to for m in mailoutbox] == [["alice@desk.example"]]
    assert recent.classified_at is None
    # And a second sweep finds nothing more to do
    with tasks_run_inline(), django_capture_on_commit_callbacks(execute=True):
        assert tickets_requeue().triage == []


def test_a_draft_whose_message_was_lost_is_written_by_the_sweep(
    kb, desk, django_capture_on_commit_callbacks
) -> None:
    # Given a triaged ticket whose draft is still pending ten minutes on
    ticket = ticket_open(account=kb.account, origin=Ticket.Origin.API, question=BILLING)
    aged(ticket, classified_at=timezone.now(), draft_status="pending")

    # When the sweep runs
    with tasks_run_inline(), django_capture_on_commit_callbacks(execute=True):
        requeued = tickets_requeue()

    # Then the draft was written once
    assert requeued.drafts == [ticket.pk] and requeued.triage == []
    ticket.refresh_from_db()
    assert ticket.draft_status == "ready" and ticket.draft_reply
