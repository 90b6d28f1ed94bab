"""The staff inbox's pages: the filtered list, who may see it, and the work on one ticket.

Tickets are opened through core's services from real answers of a small ingested
knowledge base; the views are driven through Django's test client, as htmx does
(``HX-Request``) and without it.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from chat.models import Message
from tests.factories import make_account, make_knowledge_base, make_user
from tests.tickets.core_support import (
    ANSWERED_QUESTION,
    UNANSWERED_QUESTION,
    answered,
    ingest_help,
    member,
    queue,
)
from tickets.models import Ticket, TicketEvent
from tickets.services.tickets import ticket_open_from_conversation

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def help_kb(kb):
    return ingest_help(kb)


@pytest.fixture
def agent(help_kb):
    return member(help_kb.account)


@pytest.fixture
def asker(help_kb):
    return member(help_kb.account)


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def opened(help_kb, asker, question: str = ANSWERED_QUESTION, **fields) -> Ticket:
    """A "Talk to a person" ticket for ``question``, then ``fields`` as triage would set."""
    answer = answered(help_kb, asker, question)
    ticket = ticket_open_from_conversation(conversation=answer.conversation, user=asker)
    if fields:
        for name, value in fields.items():
            setattr(ticket, name, value)
        ticket.save()
    return ticket


def listed_ids(html: str) -> set[int]:
    return {int(pk) for pk in re.findall(r'<tr id="ticket-(\d+)"', html)}


def test_the_list_is_filtered_by_queue_status_and_urgency(help_kb, agent, asker) -> None:
    # Given three tickets in two queues, of different status and urgency
    billing, technical = (
        queue(help_kb.account, "Billing", agent),
        queue(help_kb.account, "Technical"),
    )
    first = opened(help_kb, asker, queue=billing, urgency="high", category="billing")
    second = opened(help_kb, asker, "Can I get a refund?", queue=billing, urgency="low")
    third = opened(help_kb, asker, UNANSWERED_QUESTION, queue=technical, urgency="high")
    Ticket.objects.filter(pk=second.pk).update(status=Ticket.Status.SOLVED)
    client = client_for(agent)
    inbox = reverse("tickets:inbox")

    # Then each filter keeps only its tickets
    assert listed_ids(client.get(inbox).content.decode()) == {first.pk, second.pk, third.pk}
    assert listed_ids(client.get(inbox, {"queue": billing.pk}).content.decode()) == {
        first.pk, second.pk,
    }  # fmt: skip
    assert listed_ids(client.get(inbox, {"status": "solved"}).content.decode()) == {second.pk}
    assert listed_ids(client.get(inbox, {"urgency": "high"}).content.decode()) == {
        first.pk, third.pk,
    }  # fmt: skip
    both = client.get(inbox, {"queue": str(billing.pk), "urgency": "high", "status": "open"})
    assert listed_ids(both.content.decode()) == {first.pk}
    # An unknown value is no filter, not an error
    assert listed_ids(client.get(inbox, {"status": "nonsense"}).content.decode()) == {
        first.pk, second.pk, third.pk,
    }  # fmt: skip

    # And htmx gets the list alone, with the stream of the same filter
    swapped = client.get(inbox, {"queue": billing.pk}, headers=HTMX).content.decode()
    assert "<html" not in swapped and 'id="inbox-list"' in swapped
    assert listed_ids(swapped) == {first.pk, second.pk}
    stream = re.search(r'data-stream="([^"]+)"', swapped)
    assert stream is not None and f"queue={billing.pk}" in stream.group(1)
    # A row says the queue, the category and its confidence
    row = client.get(inbox).content.decode()
    assert "Billing" in row and "Technical" in row


def test_the_inbox_is_for_the_accounts_members_only(help_kb, agent, asker) -> None:
    ticket = opened(help_kb, asker)
    other_account = make_account("Elsewhere")
    make_knowledge_base(other_account)
    outsider = member(other_account)
    nobody = make_user(staff=False)
    anonymous = Client()
    page = reverse("tickets:ticket", args=[ticket.pk])

    # Anonymous: to the login page, from the list, a ticket and an action (the stream:
    # test_inbox_stream.py)
    for url in (reverse("tickets:inbox"), page):
        response = anonymous.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert (
        anonymous.post(reverse("tickets:note", args=[ticket.pk]), {"body": "x"}).status_code == 302
    )

    # A user of no account: refused
    assert client_for(nobody).get(reverse("tickets:inbox")).status_code == 403

    # A member of another account: its list lacks the ticket, the ticket is a 404, and
    # no action reaches it
    other = client_for(outsider)
    assert listed_ids(other.get(reverse("tickets:inbox")).content.decode()) == set()
    assert other.get(page).status_code == 404
    for action, data in (
        ("tickets:note", {"body": "peek"}),
        ("tickets:reply", {"reply": "Hello from elsewhere"}),
        ("tickets:assign", {"assignee": "me"}),
        ("tickets:status", {"status": "solved"}),
        ("tickets:draft", {}),
    ):
        assert other.post(reverse(action, args=[ticket.pk]), data).status_code == 404, action
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.OPEN and ticket.assignee_id is None
    assert not ticket.events.exclude(kind=TicketEvent.Kind.CREATED).exists()

    # And the account's own member sees it
    assert client_for(agent).get(page).status_code == 200


def test_the_ticket_page_shows_the_conversation_sources_and_classification(
    help_kb, agent, asker
) -> None:
    billing = queue(help_kb.account, "Billing", agent)
    ticket = opened(
        help_kb, asker, queue=billing, category="billing", urgency="normal", confidence=0.87,
        classified_by="local", sentiment="neutral", draft_status="ready",
        draft_reply="Hello,\n\nThe Growth plan costs $59 per month [1].\n\nBest regards",
        draft_citations=[{"number": 1, "chunk_id": 1, "document_id": 1, "title": "Plans"}],
    )  # fmt: skip
    Ticket.objects.filter(pk=ticket.pk).update(classified_at=ticket.created_at)

    html = client_for(agent).get(reverse("tickets:ticket", args=[ticket.pk])).content.decode()

    assert ANSWERED_QUESTION in html
    assert "$59" in html  # Cairn's answer
    assert 'class="cite"' in html  # with the chat's citation chips
    source = ticket.sources[0]
    assert reverse("kb:document_detail", args=[source["document_id"]]) in html
    assert "87% confidence" in html and "Billing" in html
    assert 'name="reply"' in html and "The Growth plan costs $59 per month [1]." in html
    assert "Cairn&#x27;s draft" in html or "Cairn's draft" in html


def test_assign_status_note_and_reply_from_the_ticket_page(help_kb, agent, asker) -> None:
    ticket = opened(help_kb, asker, draft_status="ready", draft_reply="Hello, the draft.")
    colleague = member(help_kb.account)
    client = client_for(agent)

    def post(action: str, **data: str):
        return client.post(reverse(action, args=[ticket.pk]), data, headers=HTMX)

    # Assign to me, then to a colleague: the panel comes back in place
    response = post("tickets:assign", assignee="me")
    assert response.status_code == 200 and 'id="ticket-work"' in response.content.decode()
    assert Ticket.objects.get(pk=ticket.pk).assignee_id == agent.pk
    post("tickets:assign", assignee=str(colleague.pk))
    assert Ticket.objects.get(pk=ticket.pk).assignee_id == colleague.pk
    # A user outside the account cannot be assigned
    outsider = make_user(staff=False, account=make_account("Elsewhere"))
    assert post("tickets:assign", assignee=str(outsider.pk)).status_code == 400
    assert Ticket.objects.get(pk=ticket.pk).assignee_id == colleague.pk

    # An internal note keeps the reply being written
    response = post("tickets:note", body="Checked the invoice.", reply="Half-written reply")
    html = response.content.decode()
    assert "Checked the invoice." in html and "Half-written reply</textarea>" in html
    assert post("tickets:note", body="  ").status_code == 400

    # The edited draft is sent: into the asker's conversation, as the support agent
    post("tickets:reply", reply="Hello, the Growth plan costs $59 per month.")
    agent_message = Message.objects.get(conversation=ticket.conversation, role="agent",
                                        content__contains="$59")  # fmt: skip
    assert agent_message.content == "Hello, the Growth plan costs $59 per month."
    row = Ticket.objects.get(pk=ticket.pk)
    assert row.status == Ticket.Status.WAITING and row.first_response_at is not None

    # Status, by the form
    post("tickets:status", status="solved")
    row = Ticket.objects.get(pk=ticket.pk)
    assert row.status == Ticket.Status.SOLVED and row.solved_at is not None
    kinds = list(row.events.values_list("kind", flat=True))
    assert kinds.count("note") == 1 and kinds.count("reply") == 1 and "status" in kinds

    # Without htmx, each action redirects back to the ticket
    plain = client.post(reverse("tickets:note", args=[ticket.pk]), {"body": "No JavaScript."})
    assert plain.status_code == 302
    assert plain["Location"] == reverse("tickets:ticket", args=[ticket.pk])
