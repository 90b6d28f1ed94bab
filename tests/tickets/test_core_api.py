"""/api/v1/tickets: list (filtered, paginated), show with the timeline, open, reply, status;
malformed requests are 400 in the one error shape, other accounts' tickets 404, and a key
without the ``answer`` scope cannot write."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from chat.models import Message
from tests.factories import make_account, make_knowledge_base
from tests.support.api import api_client, error_of
from tests.tickets.core_support import ANSWERED_QUESTION, answered, ingest_help, member, queue
from tickets.models import Ticket, TicketEvent
from tickets.services.tickets import ticket_open

pytestmark = pytest.mark.django_db


@pytest.fixture
def help_kb(kb):
    return ingest_help(kb)


def api_ticket(account, question: str = "Where is my refund?", **fields) -> Ticket:
    return ticket_open(account=account, origin=Ticket.Origin.API, question=question, **fields)


def test_a_key_opens_a_ticket_and_reads_it_back_with_its_timeline(help_kb) -> None:
    client, key, _ = api_client(help_kb.account, ["read", "answer"])

    response = client.post(
        "/api/v1/tickets",
        {"question": "My invoice shows the wrong VAT number.", "subject": "Wrong VAT"},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    ticket = Ticket.objects.get()
    assert response["Location"] == f"/api/v1/tickets/{ticket.pk}"
    assert body["id"] == ticket.pk and body["origin"] == "api" and body["status"] == "open"
    assert body["subject"] == "Wrong VAT" and body["account"] == help_kb.account.slug
    assert body["category"] is None and body["queue"] is None  # triage comes after
    assert [e["kind"] for e in body["events"]] == ["created"]
    assert ticket.api_key_id == key.pk and ticket.asker_id is None
    shown = client.get(f"/api/v1/tickets/{ticket.pk}").json()
    assert shown["question"] == "My invoice shows the wrong VAT number."


def test_opening_with_a_conversation_takes_its_last_question_and_answer(help_kb) -> None:
    client, key, _ = api_client(help_kb.account, ["read", "answer"])
    asked = client.post("/api/v1/answers", {"question": ANSWERED_QUESTION}, format="json").json()
    conversation_id = Message.objects.get(pk=asked["message_id"]).conversation_id

    response = client.post(
        "/api/v1/tickets", {"conversation_id": conversation_id, "comment": "Call me"},
        format="json",
    )  # fmt: skip
    again = client.post("/api/v1/tickets", {"conversation_id": conversation_id}, format="json")

    assert response.status_code == again.status_code == 201
    body = response.json()
    assert body["question"] == ANSWERED_QUESTION and "$59" in body["answer"]
    assert body["sources"] and body["conversation_id"] == conversation_id
    assert body["comment"] == "Call me"
    assert again.json()["id"] == body["id"] and Ticket.objects.count() == 1


def test_a_session_user_opens_lists_replies_and_solves(help_kb, client) -> None:
    asker = member(help_kb.account)
    agent = member(help_kb.account)
    answer = answered(help_kb, asker, ANSWERED_QUESTION)
    ticket = api_ticket(help_kb.account, "Talk to me", answer_message=answer, asker=asker)
    client.force_login(agent)

    reply = client.post(
        f"/api/v1/tickets/{ticket.pk}/reply", {"body": "Hi, it's $59."},
        content_type="application/json",
    )  # fmt: skip
    solved = client.post(
        f"/api/v1/tickets/{ticket.pk}/status", {"status": "solved"},
        content_type="application/json",
    )  # fmt: skip

    assert reply.status_code == 201, reply.content
    assert reply.json()["kind"] == "reply" and reply.json()["author"] == agent.get_username()
    assert solved.status_code == 200
    body = solved.json()
    assert body["status"] == "solved" and body["solved_at"] and body["first_response_at"]
    assert [e["kind"] for e in body["events"]] == ["created", "reply", "status", "status"]
    assert Message.objects.filter(
        conversation_id=answer.conversation_id, role=Message.Role.AGENT, content="Hi, it's $59."
    ).exists()


def test_the_list_filters_by_queue_status_and_urgency_and_is_paginated(help_kb) -> None:
    client, _, _ = api_client(help_kb.account, ["read"])
    billing = queue(help_kb.account, "Billing")
    tickets = [api_ticket(help_kb.account, f"Question {n}") for n in range(4)]
    Ticket.objects.filter(pk=tickets[0].pk).update(queue=billing, urgency="urgent")
    Ticket.objects.filter(pk=tickets[1].pk).update(queue=billing, status="solved")

    def ids(**params) -> list[int]:
        response = client.get("/api/v1/tickets", params)
        assert response.status_code == 200, response.content
        return [t["id"] for t in response.json()["results"]]

    newest_first = [t.pk for t in reversed(tickets)]
    assert ids() == newest_first
    assert ids(queue="billing") == ids(queue=str(billing.pk)) == [tickets[1].pk, tickets[0].pk]
    assert ids(queue="unrouted") == [tickets[3].pk, tickets[2].pk]
    assert ids(status="solved") == [tickets[1].pk]
    assert ids(urgency="urgent", queue="billing") == [tickets[0].pk]
    page = client.get("/api/v1/tickets", {"limit": 2, "offset": 1}).json()
    assert page["count"] == 4 and [t["id"] for t in page["results"]] == newest_first[1:3]
    assert page["next"] and page["previous"]


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("/api/v1/tickets", {}, "question"),
        ("/api/v1/tickets", {"question": "   "}, "question"),
        ("/api/v1/tickets", {"question": "x" * 20_001}, "question"),
        ("/api/v1/tickets", {"question": "Hi", "conversation_id": "abc"}, "conversation_id"),
        ("/api/v1/tickets/{id}/reply", {}, "body"),
        ("/api/v1/tickets/{id}/reply", {"body": ""}, "body"),
        ("/api/v1/tickets/{id}/status", {"status": "closed"}, "status"),
    ],
)
def test_malformed_requests_are_400_naming_the_field(help_kb, path, payload, field) -> None:
    client, _, _ = api_client(help_kb.account, ["read", "answer"])
    ticket = api_ticket(help_kb.account)

    response = client.post(path.format(id=ticket.pk), payload, format="json")

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid" and field in error["message"]
    assert ticket.events.count() == 1  # nothing happened to it


def test_a_bad_filter_and_an_assigned_status_without_an_assignee_are_400(help_kb) -> None:
    client, _, _ = api_client(help_kb.account, ["read", "answer"])
    ticket = api_ticket(help_kb.account)

    bad_filter = client.get("/api/v1/tickets", {"urgency": "whenever"})
    assigned = client.post(
        f"/api/v1/tickets/{ticket.pk}/status", {"status": "assigned"}, format="json"
    )

    assert bad_filter.status_code == 400 and "urgency" in error_of(bad_filter)["message"]
    assert assigned.status_code == 400
    assert error_of(assigned)["code"] == "invalid_ticket"
    assert "Assign" in error_of(assigned)["message"]


def test_another_accounts_tickets_and_conversations_are_404(help_kb) -> None:
    theirs = api_ticket(help_kb.account, "Alder's secret question")
    their_answer = answered(help_kb, member(help_kb.account), ANSWERED_QUESTION)
    other = make_account("Other")
    make_knowledge_base(other)
    client, _, _ = api_client(other, ["read", "answer"])

    refused = {
        "show": client.get(f"/api/v1/tickets/{theirs.pk}"),
        "reply": client.post(f"/api/v1/tickets/{theirs.pk}/reply", {"body": "x"}, format="json"),
        "status": client.post(
            f"/api/v1/tickets/{theirs.pk}/status", {"status": "solved"}, format="json"
        ),
        "open on their conversation": client.post(
            "/api/v1/tickets", {"conversation_id": their_answer.conversation_id}, format="json"
        ),
        "no such ticket": client.get("/api/v1/tickets/999999999"),
    }
    listed = client.get("/api/v1/tickets").json()

    assert {name: r.status_code for name, r in refused.items()} == dict.fromkeys(refused, 404)
    assert all(error_of(r)["code"] == "not_found" for r in refused.values())
    assert listed["count"] == 0
    row = Ticket.objects.get(pk=theirs.pk)
    assert row.status == "open" and row.events.count() == 1
    assert Ticket.objects.count() == 1


def test_a_read_only_key_reads_but_cannot_write_and_no_key_is_401(help_kb) -> None:
    ticket = api_ticket(help_kb.account)
    reader, _, _ = api_client(help_kb.account, ["read"])

    listed = reader.get("/api/v1/tickets")
    writes = [
        reader.post("/api/v1/tickets", {"question": "Hi"}, format="json"),
        reader.post(f"/api/v1/tickets/{ticket.pk}/reply", {"body": "x"}, format="json"),
        reader.post(f"/api/v1/tickets/{ticket.pk}/status", {"status": "solved"}, format="json"),
    ]
    anonymous = APIClient().get("/api/v1/tickets")

    assert listed.status_code == 200 and listed.json()["count"] == 1
    assert [r.status_code for r in writes] == [403, 403, 403]
    assert anonymous.status_code == 401
    assert not ticket.events.exclude(kind=TicketEvent.Kind.CREATED).exists()


def test_a_session_user_of_several_accounts_says_which_one(help_kb, client) -> None:
    user = member(help_kb.account)
    other = make_account("Other")
    from kb.models import Membership

    Membership.objects.create(user_id=user.pk, account=other, role="staff")
    client.force_login(user)

    unnamed = client.post("/api/v1/tickets", {"question": "Hi"}, content_type="application/json")
    named = client.post(
        "/api/v1/tickets", {"question": "Hi", "account": other.slug},
        content_type="application/json",
    )  # fmt: skip
    stranger = client.post(
        "/api/v1/tickets", {"question": "Hi", "account": "nobody-knows"},
        content_type="application/json",
    )  # fmt: skip

    assert unnamed.status_code == 400 and error_of(unnamed)["code"] == "account_required"
    assert named.status_code == 201 and named.json()["account"] == other.slug
    assert Ticket.objects.get().asker_id == user.pk
    assert stranger.status_code == 404
