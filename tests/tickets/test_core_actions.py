"""The staff's actions on a ticket: assign, change status, reply to the asker, add a note.

Each leaves an event on the timeline and stamps the ticket's times; a reply reaches the
asker's conversation as a message of role ``agent``.
"""

from __future__ import annotations

import pytest
from django.db.models import QuerySet
from django.utils import timezone

from chat.models import Message
from tests.factories import make_account, make_user
from tests.tickets.core_support import ANSWERED_QUESTION, answered, ingest_help, member
from tickets.models import Ticket, TicketEvent
from tickets.services.tickets import (
    TicketRejected,
    ticket_assign,
    ticket_note_add,
    ticket_open_from_conversation,
    ticket_reply_send,
    ticket_status_set,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def ticket(kb) -> Ticket:
    """A "Talk to a person" ticket of an answered question in the asker's conversation."""
    ingest_help(kb)
    asker = member(kb.account)
    answer = answered(kb, asker, ANSWERED_QUESTION)
    return ticket_open_from_conversation(conversation=answer.conversation, user=asker)


def agent_messages(ticket: Ticket) -> QuerySet[Message]:
    """The messages of role agent in the ticket's conversation, oldest first."""
    assert ticket.conversation_id is not None
    return Message.objects.filter(
        conversation_id=ticket.conversation_id, role=Message.Role.AGENT
    ).order_by("id")


def kinds(ticket: Ticket) -> list[str]:
    return list(ticket.events.order_by("created_at", "id").values_list("kind", flat=True))


def test_assigning_makes_an_open_ticket_assigned_and_taking_it_back_opens_it(ticket) -> None:
    agent = member(ticket.account)

    assigned = ticket_assign(ticket=ticket, assignee=agent, by=agent)
    again = ticket_assign(ticket=ticket, assignee=agent, by=agent)  # nothing changes
    released = ticket_assign(ticket=ticket, assignee=None, by=agent)

    assert assigned is ticket and again is ticket and released is ticket
    row = Ticket.objects.get(pk=ticket.pk)
    assert row.assignee_id is None and row.status == Ticket.Status.OPEN
    assert kinds(row) == ["created", "assigned", "status", "assigned", "status"]
    changes = [e.data for e in row.events.filter(kind="status").order_by("id")]
    assert changes == [{"from": "open", "to": "assigned"}, {"from": "assigned", "to": "open"}]
    authors = row.events.filter(kind="assigned").values_list("author_id", flat=True)
    assert list(authors) == [agent.pk, agent.pk]


def test_only_a_member_of_the_tickets_account_can_be_assigned(ticket) -> None:
    outsider = make_user(staff=False, account=make_account("Elsewhere"), role="staff")

    with pytest.raises(TicketRejected):
        ticket_assign(ticket=ticket, assignee=outsider, by=None)

    row = Ticket.objects.get(pk=ticket.pk)
    assert row.assignee_id is None and kinds(row) == ["created"]


def test_solving_stamps_solved_at_and_reopening_clears_it(ticket) -> None:
    agent = member(ticket.account)
    before = timezone.now()

    ticket_status_set(ticket=ticket, status=Ticket.Status.SOLVED, by=agent)
    solved_at = Ticket.objects.get(pk=ticket.pk).solved_at
    ticket_status_set(ticket=ticket, status=Ticket.Status.OPEN, by=agent)

    assert solved_at is not None and solved_at >= before
    row = Ticket.objects.get(pk=ticket.pk)
    assert row.status == Ticket.Status.OPEN and row.solved_at is None
    assert kinds(row) == ["created", "status", "status"]


def test_a_status_that_does_not_exist_or_assigned_without_an_assignee_is_refused(ticket) -> None:
    with pytest.raises(TicketRejected, match="Unknown status"):
        ticket_status_set(ticket=ticket, status="closed", by=None)
    with pytest.raises(TicketRejected, match="Assign"):
        ticket_status_set(ticket=ticket, status=Ticket.Status.ASSIGNED, by=None)

    assert kinds(Ticket.objects.get(pk=ticket.pk)) == ["created"]


def test_a_reply_reaches_the_askers_conversation_stamps_the_first_response_and_waits(
    ticket,
) -> None:
    agent = member(ticket.account)
    before = timezone.now()

    first = ticket_reply_send(ticket=ticket, body="  Hello! The Growth plan is $59.  ", by=agent)
    stamped = Ticket.objects.get(pk=ticket.pk).first_response_at
    second = ticket_reply_send(ticket=ticket, body="Anything else?", by=agent)

    row = Ticket.objects.get(pk=ticket.pk)
    assert stamped is not None and stamped >= before
    assert row.first_response_at == stamped  # set once, by the first reply
    assert row.status == Ticket.Status.WAITING
    messages = list(agent_messages(row))
    assert [m.content for m in messages] == ["Hello! The Growth plan is $59.", "Anything else?"]
    assert {m.status for m in messages} == {Message.Status.DONE}
    assert messages[0].model == agent.get_username()  # who the asker sees replying
    assert first.kind == second.kind == TicketEvent.Kind.REPLY
    assert first.data == {"message_id": messages[0].pk} and first.author_id == agent.pk
    assert kinds(row) == ["created", "reply", "status", "reply"]


def test_the_same_reply_sent_twice_is_posted_once(ticket) -> None:
    agent = member(ticket.account)

    first = ticket_reply_send(ticket=ticket, body="We refunded you.", by=agent)
    repeat = ticket_reply_send(ticket=ticket, body="We refunded you.", by=agent)

    assert repeat.pk == first.pk
    assert agent_messages(ticket).count() == 1
    assert ticket.events.filter(kind=TicketEvent.Kind.REPLY).count() == 1


def test_an_empty_reply_or_note_is_refused_and_writes_nothing(ticket) -> None:
    with pytest.raises(TicketRejected):
        ticket_reply_send(ticket=ticket, body="   ", by=None)
    with pytest.raises(TicketRejected):
        ticket_note_add(ticket=ticket, body="", by=None)

    assert kinds(Ticket.objects.get(pk=ticket.pk)) == ["created"]
    assert not agent_messages(ticket).exists()


def test_a_note_stays_on_the_timeline_and_out_of_the_conversation(ticket) -> None:
    agent = member(ticket.account)
    touched = Ticket.objects.get(pk=ticket.pk).updated_at

    note = ticket_note_add(ticket=ticket, body="Customer is on the annual plan.", by=agent)

    row = Ticket.objects.get(pk=ticket.pk)
    assert note.kind == TicketEvent.Kind.NOTE and note.author_id == agent.pk
    assert note.body == "Customer is on the annual plan."
    assert row.updated_at > touched and row.status == Ticket.Status.OPEN
    assert row.first_response_at is None
    assert not agent_messages(row).exists()
