"""Triage of a new ticket: classified (the local classifier, no provider configured),
routed by the account's rules, its queue's members mailed, then acknowledged in the
asker's conversation and a draft asked for; urgent tickets get neither. A redelivered
task does none of it twice.
"""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth.models import AbstractUser
from django.db import connection

from chat.models import Message
from kb.models import Account, Membership
from tests.factories import make_account
from tests.tickets.core_support import answered, ingest_help, member, queue
from tickets.models import Queue, RoutingRule, Ticket, TicketEvent, TicketSettings
from tickets.services.routing import route_find
from tickets.services.tickets import ticket_open_from_conversation
from tickets.tasks import ticket_triage_task

pytestmark = pytest.mark.django_db

BILLING = "I was charged twice for my invoice this month, please refund the duplicate payment."
URGENT = (
    "Our whole team is locked out and we cannot send invoices, production is down. This is urgent!"
)


class Desk:
    """An account's support desk: queues, their members, the rules between them."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.alice = member(account, "alice@desk.example")  # billing, will be mailed
        self.bob = member(account)  # billing, no address
        self.carol = member(account, "carol@desk.example")  # billing, left the account
        self.dave = member(account, "dave@desk.example")  # billing, deactivated
        self.tess = member(account, "tess@desk.example")  # technical
        self.erin = member(account, "erin@desk.example")  # escalations
        self.gina = member(account, "gina@desk.example")  # general (the default)
        self.billing = queue(account, "Billing", self.alice, self.bob, self.carol, self.dave)
        self.technical = queue(account, "Technical", self.tess)
        self.escalations = queue(account, "Escalations", self.erin)
        self.general = queue(account, "General", self.gina)
        Membership.objects.filter(user_id=self.carol.pk).delete()
        type(self.dave).objects.filter(pk=self.dave.pk).update(is_active=False)
        rule(account, self.escalations, urgency="urgent", position=1)
        rule(account, self.billing, category="billing", position=10)
        rule(account, self.technical, category="technical", position=20)
        TicketSettings.objects.create(account=account, default_queue=self.general)


def rule(account: Account, to: Queue, *, category: str = "", urgency: str = "", position: int):
    return RoutingRule.objects.create(
        account=account, queue=to, category=category, urgency=urgency, position=position
    )


@pytest.fixture
def desk(kb) -> Desk:
    ingest_help(kb)
    return Desk(kb.account)


def opened(kb, asker: AbstractUser, question: str) -> Ticket:
    answer = answered(kb, asker, question)
    return ticket_open_from_conversation(conversation=answer.conversation, user=asker)


def triaged(ticket: Ticket, capture) -> Ticket:
    """Run the triage task as a worker would, its after-commit work (the mails) included."""
    with capture(execute=True):
        ticket_triage_task(ticket.pk)
    return Ticket.objects.select_related("queue").get(pk=ticket.pk)


def agent_messages(ticket: Ticket) -> list[str]:
    assert ticket.conversation_id is not None
    return list(
        Message.objects.filter(conversation_id=ticket.conversation_id, role=Message.Role.AGENT)
        .order_by("id")
        .values_list("content", flat=True)
    )


def test_a_ticket_is_classified_routed_by_the_rules_and_its_queue_mailed(
    kb, desk, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    ticket = opened(kb, member(kb.account), BILLING)

    ticket = triaged(ticket, django_capture_on_commit_callbacks)

    assert ticket.category == "billing" and ticket.urgency not in ("", "urgent")
    assert ticket.sentiment and ticket.classified_by == "local"
    assert (
        ticket.confidence is not None
        and 0 < ticket.confidence <= 1
        and ticket.classified_at is not None
    )
    classified = ticket.events.get(kind=TicketEvent.Kind.CLASSIFIED)
    assert classified.data["category"] == "billing" and classified.data["classified_by"] == "local"
    assert ticket.queue == desk.billing
    routed = ticket.events.get(kind=TicketEvent.Kind.ROUTED)
    assert routed.data["queue_id"] == desk.billing.pk and routed.data["reason"] == "rule"
    # Only Alice: Bob has no address, Carol left the account, Dave is deactivated, and the
    # other queues' members are not Billing's.
    assert [mail.to for mail in mailoutbox] == [["alice@desk.example"]]
    assert f"#{ticket.pk}" in mailoutbox[0].subject and "Billing" in mailoutbox[0].subject
    assert BILLING in mailoutbox[0].body and f"/inbox/t/{ticket.pk}/" in mailoutbox[0].body
    # Not urgent: the asker is told a person will reply, and a draft is asked for.
    assert agent_messages(ticket) == ["A person from Billing will reply here."]
    assert routed.data["acknowledgement_message_id"] is not None
    assert ticket.draft_status == "pending"
    assert ticket.first_response_at is None  # an acknowledgement is not a person's reply


def test_an_urgent_ticket_goes_straight_to_people_with_no_automatic_reply(
    kb, desk, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    ticket = opened(kb, member(kb.account), URGENT)

    ticket = triaged(ticket, django_capture_on_commit_callbacks)

    assert ticket.urgency == "urgent"
    assert ticket.queue == desk.escalations  # the urgency rule comes first
    assert [mail.to for mail in mailoutbox] == [["erin@desk.example"]]
    assert "URGENT" in mailoutbox[0].subject
    assert agent_messages(ticket) == []
    assert ticket.draft_status == "skipped"
    assert "acknowledgement_message_id" not in ticket.events.get(kind="routed").data


def test_a_redelivered_triage_task_classifies_routes_and_mails_once(
    kb, desk, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    ticket = opened(kb, member(kb.account), BILLING)

    first = triaged(ticket, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        repeats = [ticket_triage_task(ticket.pk), ticket_triage_task.apply(args=[ticket.pk]).get()]

    assert repeats == ["nothing to do", "nothing to do"]
    row = Ticket.objects.get(pk=ticket.pk)
    assert row.classified_at == first.classified_at and row.queue_id == desk.billing.pk
    assert row.events.filter(kind=TicketEvent.Kind.CLASSIFIED).count() == 1
    assert row.events.filter(kind=TicketEvent.Kind.ROUTED).count() == 1
    assert len(mailoutbox) == 1
    assert agent_messages(row) == ["A person from Billing will reply here."]


def test_a_ticket_no_rule_takes_and_without_a_default_queue_stays_unrouted(
    kb, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    ingest_help(kb)
    ticket = opened(kb, member(kb.account, "asker@desk.example"), BILLING)

    ticket = triaged(ticket, django_capture_on_commit_callbacks)

    assert ticket.classified_at is not None and ticket.queue is None
    assert ticket.events.get(kind="routed").data["reason"] == "unrouted"
    assert mailoutbox == []
    assert agent_messages(ticket) == ["A person from our support team will reply here."]


def test_a_task_for_a_deleted_ticket_does_nothing(kb, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        assert ticket_triage_task(10**9) == "nothing to do"


# --- the rules themselves ---------------------------------------------------------------


def test_rules_are_tried_by_position_blank_matches_any_and_the_default_comes_last(kb) -> None:
    account = kb.account
    urgent_q, billing_q, any_high_q, default_q = (
        queue(account, name) for name in ("Urgent", "Billing", "High", "Default")
    )
    # Given rules out of id order: position decides
    rule(account, billing_q, category="billing", position=20)
    rule(account, any_high_q, urgency="high", position=30)
    rule(account, urgent_q, urgency="urgent", position=10)
    # A rule of another account naming this account's category is never used.
    other = make_account("Other")
    rule(other, queue(other, "Theirs"), category="technical", position=0)

    def to(category: str, urgency: str) -> Queue | None:
        return route_find(account_id=account.pk, category=category, urgency=urgency).queue

    assert to("billing", "urgent") == urgent_q  # position 10 before 20
    assert to("billing", "high") == billing_q  # first match wins over the "any" category
    assert to("technical", "high") == any_high_q  # blank category: any
    assert to("technical", "low") is None  # no rule, no default
    TicketSettings.objects.create(account=account, default_queue=default_q)
    found = route_find(account_id=account.pk, category="technical", urgency="low")
    assert found.queue == default_q and found.reason == "default" and found.rule is None


@pytest.mark.django_db(transaction=True)
def test_two_triage_runs_at_once_classify_route_and_mail_once(kb, mailoutbox) -> None:
    ingest_help(kb)
    desk = Desk(kb.account)
    ticket = opened(kb, member(kb.account), BILLING)  # committed; its task went nowhere
    barrier = threading.Barrier(2)
    results: list[str] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=30)
            results.append(ticket_triage_task(ticket.pk))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors, errors
    assert sorted(results) == ["billing/" + Ticket.objects.get(pk=ticket.pk).urgency,
                               "nothing to do"]  # fmt: skip
    row = Ticket.objects.get(pk=ticket.pk)
    assert row.queue_id == desk.billing.pk
    assert row.events.filter(kind=TicketEvent.Kind.CLASSIFIED).count() == 1
    assert row.events.filter(kind=TicketEvent.Kind.ROUTED).count() == 1
    assert [mail.to for mail in mailoutbox] == [["alice@desk.example"]]
    assert agent_messages(row) == ["A person from Billing will reply here."]
