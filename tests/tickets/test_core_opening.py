"""Opening a ticket, in each of the ways it happens: "Talk to a person", an answer that
abstains or is poorly supported (per the account's settings and the auto_tickets flag), a
thumbs-down with a comment (the REST API's way is in test_core_api.py); and only once per
question, however many times and ways it is asked for.

Answers are real: the extractive answerer over an ingested knowledge base, or a model on
loopback (the fake OpenAI-compatible server) for an answer with unsupported sentences.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection

from chat.models import Feedback, Message
from chat.services.answers import answer_stream
from chat.services.conversations import conversation_start
from chat.services.feedback import feedback_give
from flags.bucketing import in_rollout
from flags.models import Flag
from flags.selectors import subject_for
from tests.factories import make_account, make_knowledge_base
from tests.support.fake_llm import Reply, Respond, fake_llm_routes
from tests.support.prompts import passage_number
from tests.support.tasks import tasks_run_inline
from tests.tickets.core_support import (
    ANSWERED_QUESTION,
    UNANSWERED_QUESTION,
    answered,
    ingest_help,
    member,
)
from tickets.models import Ticket, TicketEvent, TicketSettings
from tickets.services.tickets import (
    TicketRejected,
    ticket_open,
    ticket_open_from_conversation,
    ticket_status_set,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def help_kb(kb):
    return ingest_help(kb)


@pytest.fixture
def asker(help_kb):
    return member(help_kb.account)


def abstaining_on(account, *, on: bool = True, below: float | None = None) -> TicketSettings:
    return TicketSettings.objects.create(
        account=account, open_on_abstention=on, open_below_supported_share=below
    )


# --- 1. "Talk to a person" ------------------------------------------------------------------


def test_talk_to_a_person_opens_a_ticket_with_the_question_answer_and_sources(
    help_kb, asker, django_capture_on_commit_callbacks
) -> None:
    answer = answered(help_kb, asker, ANSWERED_QUESTION)
    assert answer.status == Message.Status.DONE

    with tasks_run_inline(), django_capture_on_commit_callbacks(execute=True):
        ticket = ticket_open_from_conversation(
            conversation=answer.conversation, user=asker, comment="I'd like to talk it over."
        )

    ticket.refresh_from_db()
    assert ticket.origin == Ticket.Origin.ASKED and ticket.account_id == help_kb.account_id
    assert ticket.question == ANSWERED_QUESTION and ticket.subject == ANSWERED_QUESTION
    assert "$59" in ticket.answer and ticket.answer == answer.content
    assert ticket.question_message_id == answer.question_id
    assert ticket.answer_message_id == answer.pk
    assert ticket.conversation_id == answer.conversation_id and ticket.asker_id == asker.pk
    assert ticket.comment == "I'd like to talk it over."
    cited = answer.citations.filter(kind="cited").order_by("number")
    assert [s["chunk_id"] for s in ticket.sources] == [c.chunk_id for c in cited]
    assert any("$59" in s["excerpt"] for s in ticket.sources)
    created = ticket.events.get(kind=TicketEvent.Kind.CREATED)
    assert created.author_id == asker.pk and created.data == {"origin": "asked"}
    # Opening queued the triage, which ran once the opening committed.
    assert ticket.classified_at is not None and ticket.category
    assert ticket.events.filter(kind=TicketEvent.Kind.CLASSIFIED).count() == 1


def test_talk_to_a_person_before_anything_was_asked_is_refused(help_kb, asker) -> None:
    answer = answered(help_kb, asker, ANSWERED_QUESTION)
    empty = type(answer.conversation).objects.create(
        account=help_kb.account, user=asker, knowledge_base=help_kb
    )

    with pytest.raises(TicketRejected, match="Ask your question first"):
        ticket_open_from_conversation(conversation=empty, user=asker)

    assert not Ticket.objects.exists()


# --- 2. automatically, when an answer abstains or is poorly supported -----------------------


def test_an_abstaining_answer_opens_a_ticket_when_the_account_says_so(help_kb, asker) -> None:
    quiet = answered(help_kb, asker, UNANSWERED_QUESTION)  # settings' default: off
    abstaining_on(help_kb.account)

    answer = answered(help_kb, asker, UNANSWERED_QUESTION)

    assert quiet.status == answer.status == Message.Status.ABSTAINED
    ticket = Ticket.objects.get()
    assert ticket.origin == Ticket.Origin.ABSTENTION
    assert ticket.answer_message_id == answer.pk and ticket.question == UNANSWERED_QUESTION
    assert ticket.asker_id == asker.pk and ticket.conversation_id == answer.conversation_id
    # An abstention cites nothing: the ticket carries the closest passages it found.
    closest = answer.citations.filter(kind="closest").order_by("number")
    assert closest and [s["chunk_id"] for s in ticket.sources] == [c.chunk_id for c in closest]


def test_an_answered_question_opens_no_ticket_even_with_abstention_tickets_on(
    help_kb, asker
) -> None:
    abstaining_on(help_kb.account, below=0.5)

    answer = answered(help_kb, asker, ANSWERED_QUESTION)

    assert answer.status == Message.Status.DONE
    assert not Ticket.objects.exists()


MIXED_QUESTION = "What do the plans cost, and can they be refunded?"


def mixed_model(body: dict) -> Reply:
    """Three supported claims and two unsupported ones: a supported share of 3/5."""
    growth = passage_number(body, "Growth plan costs")
    starter = passage_number(body, "Starter plan costs")
    refunds = passage_number(body, "Annual plans can be refunded")
    return Reply(
        f"The Growth plan costs $59 per month or $590 per year [{growth}]. "
        f"The Starter plan costs $19 per month and includes one user [{starter}]. "
        "Ledgerly also has a mobile app for iOS and Android. "
        f"Refunds are paid out in cash at the Ledgerly office [{growth}]. "
        f"Annual plans can be refunded within 30 days of purchase, pro rata [{refunds}].",
        chunks=20,
    )


def test_a_poorly_supported_answer_opens_a_ticket_below_the_accounts_share(
    help_kb, asker, settings
) -> None:
    settings_row = abstaining_on(help_kb.account, on=False, below=0.5)
    with fake_llm_routes(settings) as server:
        server.default = Respond(mixed_model)
        above = answered(help_kb, asker, MIXED_QUESTION)  # 3/5 is not below 0.5
        settings_row.open_below_supported_share = 0.8
        settings_row.save()
        below = answered(help_kb, asker, MIXED_QUESTION)

    assert above.status == below.status == Message.Status.DONE
    assert [s["supported"] for s in below.sentences].count(False) == 2
    ticket = Ticket.objects.get()
    assert ticket.origin == Ticket.Origin.LOW_SUPPORT and ticket.answer_message_id == below.pk
    assert "[?]" in ticket.answer


def test_the_auto_tickets_flag_opens_them_only_for_askers_who_get_on(help_kb) -> None:
    abstaining_on(help_kb.account)
    Flag.objects.create(
        account=help_kb.account, key="auto_tickets", variant="on",
        rollout_percent=Decimal(50), salt="fixed-salt",
    )  # fmt: skip
    users = [member(help_kb.account) for _ in range(8)]
    inside = [u for u in users if in_rollout(
        salt="fixed-salt", key="auto_tickets", subject=subject_for(user_id=u.pk), percent=50
    )]  # fmt: skip
    outside = [u for u in users if u not in inside]
    assert inside and outside, "eight users fall on both sides of a 50% rollout"

    for user in (inside[0], outside[0]):
        answered(help_kb, user, UNANSWERED_QUESTION)

    assert list(Ticket.objects.values_list("asker_id", flat=True)) == [inside[0].pk]


def test_a_disabled_auto_tickets_flag_leaves_the_decision_to_the_settings(help_kb, asker) -> None:
    abstaining_on(help_kb.account)
    Flag.objects.create(
        account=help_kb.account, key="auto_tickets", variant="on", rollout_percent=Decimal(0)
    )

    answered(help_kb, asker, UNANSWERED_QUESTION)

    assert Ticket.objects.get().origin == Ticket.Origin.ABSTENTION


def test_an_api_keys_abstaining_answer_opens_a_ticket_for_the_key(help_kb) -> None:
    from kb.services.api_keys import api_key_create

    abstaining_on(help_kb.account)
    key, _ = api_key_create(account=help_kb.account, name="site", scopes=["answer"])
    _, pending = conversation_start(
        user_id=None, api_key_id=key.pk, knowledge_base=help_kb, text=UNANSWERED_QUESTION
    )
    list(answer_stream(message_id=pending.pk, cancelled=lambda: False))

    ticket = Ticket.objects.get()
    assert ticket.api_key_id == key.pk and ticket.asker_id is None


# --- 3. a thumbs-down with a comment --------------------------------------------------------


def test_a_thumbs_down_with_a_comment_opens_a_ticket_once(help_kb, asker) -> None:
    answer = answered(help_kb, asker, ANSWERED_QUESTION)

    feedback_give(message=answer, user_id=asker.pk, rating=Feedback.Rating.DOWN)  # no comment
    assert not Ticket.objects.exists()
    feedback_give(message=answer, user_id=asker.pk, rating="down", comment="That's the old price.")
    feedback_give(message=answer, user_id=asker.pk, rating="down", comment="Still wrong!")

    ticket = Ticket.objects.get()
    assert ticket.origin == Ticket.Origin.THUMBS_DOWN and ticket.answer_message_id == answer.pk
    assert ticket.comment == "That's the old price." and ticket.asker_id == asker.pk
    # The second comment is on the same ticket, as the asker's note.
    note = ticket.events.get(kind=TicketEvent.Kind.NOTE)
    assert note.body == "Still wrong!" and note.author_id == asker.pk
    assert note.data == {"origin": "thumbs_down", "from_asker": True}


def test_the_askers_new_comment_on_a_solved_ticket_reopens_it(help_kb, asker) -> None:
    answer = answered(help_kb, asker, ANSWERED_QUESTION)
    feedback_give(message=answer, user_id=asker.pk, rating="down", comment="Wrong price.")
    ticket = Ticket.objects.get()
    ticket_status_set(ticket=ticket, status=Ticket.Status.SOLVED, by=None)

    feedback_give(message=answer, user_id=asker.pk, rating="down", comment="Still wrong.")

    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.OPEN and ticket.solved_at is None
    reopened = ticket.events.filter(kind=TicketEvent.Kind.STATUS).order_by("id").last()
    assert reopened is not None and reopened.data == {"from": "solved", "to": "open"}
    assert reopened.author_id == asker.pk


def test_a_thumbs_up_with_a_comment_opens_no_ticket(help_kb, asker) -> None:
    answer = answered(help_kb, asker, ANSWERED_QUESTION)

    feedback_give(message=answer, user_id=asker.pk, rating="up", comment="Perfect, thanks")

    assert not Ticket.objects.exists()


# --- once per question -------------------------------------------------------------------


def test_opening_again_for_the_same_question_returns_the_first_ticket(help_kb, asker) -> None:
    abstaining_on(help_kb.account)
    answer = answered(help_kb, asker, UNANSWERED_QUESTION)  # opens the abstention ticket
    first = Ticket.objects.get()

    asked = ticket_open_from_conversation(conversation=answer.conversation, user=asker)
    direct = ticket_open(
        account=help_kb.account, origin=Ticket.Origin.ASKED, question="", answer_message=answer
    )
    feedback_give(message=answer, user_id=asker.pk, rating="down", comment="Please help")

    assert asked.pk == direct.pk == first.pk
    assert Ticket.objects.count() == 1
    assert first.events.filter(kind=TicketEvent.Kind.CREATED).count() == 1


def test_a_ticket_never_links_another_accounts_conversation(help_kb, asker) -> None:
    answer = answered(help_kb, asker, ANSWERED_QUESTION)
    other = make_account("Other")
    make_knowledge_base(other)

    with pytest.raises(ValueError, match="not of account"):
        ticket_open(account=other, origin=Ticket.Origin.API, question="Hi", answer_message=answer)

    assert not Ticket.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_openings_at_once_for_one_question_make_one_ticket(kb) -> None:
    ingest_help(kb)
    asker = member(kb.account)
    answer = answered(kb, asker, ANSWERED_QUESTION)
    barrier = threading.Barrier(2)
    opened: list[int] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            barrier.wait(timeout=30)
            ticket = ticket_open_from_conversation(conversation=answer.conversation, user=asker)
            opened.append(ticket.pk)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=open_one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors, errors
    assert len(opened) == 2 and len(set(opened)) == 1
    assert Ticket.objects.count() == 1
