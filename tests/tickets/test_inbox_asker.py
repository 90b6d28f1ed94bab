"""The asker's side of a ticket, in their chat conversation.

"Talk to a person" opens a ticket for the conversation's last question; the conversation
then shows the ticket's status, and the agent's replies arrive in it (a fragment the page
polls adds them) as messages of role ``agent``, shown as the support team's, never rated,
regenerated or fed back to the model as if Cairn had said them.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from chat.models import Message
from chat.services.answers import answer_stream
from chat.services.conversations import agent_message_add, conversation_start, question_ask
from tests.support.fake_llm import Reply, fake_llm_routes
from tests.tickets.core_support import ANSWERED_QUESTION, answered, ingest_help, member
from tickets.models import Ticket
from tickets.services.tickets import ticket_reply_send

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def help_kb(kb):
    return ingest_help(kb)


@pytest.fixture
def asker(help_kb):
    return member(help_kb.account)


@pytest.fixture
def asked(help_kb, asker) -> Message:
    return answered(help_kb, asker, ANSWERED_QUESTION)


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_conversation_offers_a_person_and_the_button_opens_a_ticket(asked, asker) -> None:
    conversation = asked.conversation
    client = client_for(asker)

    # The conversation page loads the ticket status fragment, with a plain form as fallback
    page = client.get(reverse("chat:conversation", args=[conversation.pk])).content.decode()
    status_url = reverse("tickets:conversation_status", args=[conversation.pk])
    assert f'hx-get="{status_url}?after={asked.pk}"' in page
    assert reverse("tickets:conversation_escalate", args=[conversation.pk]) in page
    assert "Talk to a person" in page
    # Before any ticket, the fragment offers the button
    fragment = client.get(status_url, {"after": asked.pk}, headers=HTMX).content.decode()
    assert "Talk to a person" in fragment and "A person will reply here" not in fragment
    assert "{#" not in page and "{#" not in fragment  # template comments stay comments

    # When the asker presses it
    response = client.post(
        reverse("tickets:conversation_escalate", args=[conversation.pk]), {"after": asked.pk},
        headers=HTMX,
    )  # fmt: skip

    # Then a ticket holds the question and Cairn's answer, and the page says so
    assert response.status_code == 200
    assert "A person will reply here" in response.content.decode()
    ticket = Ticket.objects.get(conversation=conversation)
    assert ticket.origin == Ticket.Origin.ASKED and ticket.asker_id == asker.pk
    assert ticket.question == ANSWERED_QUESTION and ticket.answer_message_id == asked.pk
    # Pressing it again opens no second ticket
    client.post(reverse("tickets:conversation_escalate", args=[conversation.pk]), headers=HTMX)
    assert Ticket.objects.filter(conversation=conversation).count() == 1
    # Without JavaScript, the form brings the asker back to the conversation
    plain = client.post(reverse("tickets:conversation_escalate", args=[conversation.pk]))
    assert plain["Location"] == reverse("chat:conversation", args=[conversation.pk])


def test_someone_elses_conversation_is_a_404(asked, help_kb) -> None:
    colleague = client_for(member(help_kb.account))
    conversation = asked.conversation

    status = colleague.get(reverse("tickets:conversation_status", args=[conversation.pk]))
    escalate = colleague.post(reverse("tickets:conversation_escalate", args=[conversation.pk]))

    assert status.status_code == 404 and escalate.status_code == 404
    assert not Ticket.objects.exists()


def test_the_agents_reply_arrives_in_the_conversation_without_a_reload(
    asked, asker, help_kb
) -> None:
    conversation = asked.conversation
    client = client_for(asker)
    client.post(reverse("tickets:conversation_escalate", args=[conversation.pk]), headers=HTMX)
    ticket = Ticket.objects.get(conversation=conversation)
    status_url = reverse("tickets:conversation_status", args=[conversation.pk])
    last_seen = conversation.messages.order_by("-pk").first().pk

    # When an agent replies
    agent = member(help_kb.account)
    event = ticket_reply_send(ticket=ticket, body="Hello! It is $59 a month.", by=agent)
    reply = Message.objects.get(pk=event.data["message_id"])

    # Then the next poll of the page adds it to the messages, as the support team's
    fragment = client.get(status_url, {"after": last_seen}, headers=HTMX).content.decode()
    assert 'hx-swap-oob="beforeend:#messages"' in fragment
    assert f'id="message-{reply.pk}"' in fragment and "It is $59 a month." in fragment
    assert 'class="message agent"' in fragment and "Support" in fragment
    assert "waiting on the customer" in fragment  # the ticket's status
    # and the poll after it does not add it again
    assert f"after={reply.pk}" in fragment
    later = client.get(status_url, {"after": reply.pk}, headers=HTMX).content.decode()
    assert "hx-swap-oob" not in later


def test_an_agent_message_shows_as_the_support_teams_with_no_rating(asked, asker) -> None:
    conversation = asked.conversation
    agent_message = agent_message_add(
        conversation=conversation, text="Refunds take 5 days.", author_name="Sam  Lee"
    )

    page = client_for(asker).get(reverse("chat:conversation", args=[conversation.pk]))

    html = page.content.decode()
    article = re.search(rf'<article class="message agent" id="message-{agent_message.pk}">'
                        r"(.*?)</article>", html, re.S)  # fmt: skip
    assert article is not None, "the agent's message is shown as theirs"
    assert "Support — Sam Lee" in article.group(1) and "Refunds take 5 days." in article.group(1)
    # Not an answer of Cairn's: no thumbs, no regenerate
    assert reverse("chat:feedback", args=[agent_message.pk]) not in html
    assert reverse("chat:regenerate", args=[agent_message.pk]) not in html
    # while Cairn's answer keeps them
    assert reverse("chat:feedback", args=[asked.pk]) in html


def test_a_follow_up_after_an_agents_reply_is_answered_from_cairns_turns_only(
    settings, help_kb, asker
) -> None:
    with fake_llm_routes(settings) as fake_llm:
        fake_llm.default = Reply("The Growth plan costs $59 per month [1].")
        conversation, first = conversation_start(
            user_id=asker.pk, knowledge_base=help_kb, text=ANSWERED_QUESTION
        )
        list(answer_stream(message_id=first.pk, cancelled=lambda: False))
        agent_message_add(conversation=conversation, text="AGENT-NOTE: call us at 555-0100.")

        _, follow_up = question_ask(conversation=conversation, text="And how much per year?")
        list(answer_stream(message_id=follow_up.pk, cancelled=lambda: False))

    prompt = fake_llm.requests[-1].body["messages"]
    turns = [(m["role"], m["content"]) for m in prompt if m["role"] != "system"]
    assert ("user", ANSWERED_QUESTION) in turns
    assert ("assistant", "The Growth plan costs $59 per month.") in turns
    assert "AGENT-NOTE" not in str(prompt)
    assert turns[-1][0] == "user" and "per year" in turns[-1][1]
