"""Cairn's drafted reply: grounded in the knowledge base, cited, addressed to the asker.

The default answerer is the local extractive one, so a draft is the documents' own
sentences with their citations; the draft is written by its task once the request for
it commits, and triage asks for it.
"""

from __future__ import annotations

import pytest

from chat.answering.citations import CheckedSentence
from llm.models import LlmCall
from tests.support.tasks import tasks_run_inline
from tests.tickets.core_support import (
    ANSWERED_QUESTION,
    UNANSWERED_QUESTION,
    answered,
    ingest_help,
    member,
)
from tickets.models import Ticket
from tickets.services.drafts import _supported_text, draft_abstained, draft_make, draft_request
from tickets.services.tickets import ticket_open, ticket_open_from_conversation
from tickets.tasks import ticket_draft_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def help_kb(kb):
    return ingest_help(kb)


def escalated(help_kb, question: str) -> Ticket:
    asker = member(help_kb.account)
    asker.first_name = "Robin"
    asker.save(update_fields=["first_name"])
    answer = answered(help_kb, asker, question)
    return ticket_open_from_conversation(conversation=answer.conversation, user=asker)


def test_the_draft_is_the_knowledge_bases_cited_answer_addressed_to_the_asker(help_kb) -> None:
    ticket = escalated(help_kb, ANSWERED_QUESTION)

    draft = draft_make(ticket)

    assert draft.draft_status == "ready" and not draft_abstained(draft)
    reply = draft.draft_reply
    assert reply.startswith("Hello Robin,")
    assert "$59" in reply  # the plans document's own sentence
    numbers = [c["number"] for c in draft.draft_citations]
    assert numbers and all(f"[{n}]" in reply for n in numbers)
    # Each citation names its passage, which the reply lists in words for the asker
    plans = next(c for c in draft.draft_citations if "$59" in c["excerpt"])
    assert plans["title"] and plans["document_id"] and plans["chunk_id"]
    assert f"Sources:\n[{plans['number']}] {plans['title']}" in reply
    assert reply.rstrip().endswith(f"{help_kb.account.name} support")
    # Saved, and charged to the ledger as a draft
    assert Ticket.objects.get(pk=ticket.pk).draft_reply == reply
    assert LlmCall.objects.filter(feature="ticket_draft").exists()


def test_when_the_knowledge_base_has_no_answer_the_draft_is_left_to_the_agent(help_kb) -> None:
    ticket = escalated(help_kb, UNANSWERED_QUESTION)

    draft = draft_make(ticket)

    assert draft.draft_status == "ready" and draft_abstained(draft)
    assert draft.draft_citations == []
    assert "knowledge base" not in draft.draft_reply  # no abstention sentence to send
    assert draft.draft_reply.startswith("Hello Robin,")


def test_a_ticket_without_a_knowledge_base_to_ask_gets_a_failed_draft(kb) -> None:
    # Two knowledge bases and no conversation: which one to ask is not known
    from tests.factories import make_knowledge_base

    make_knowledge_base(kb.account, "Second")
    ticket = ticket_open(account=kb.account, origin=Ticket.Origin.API, question="Hello?")

    assert draft_make(ticket).draft_status == "failed"


def test_asking_for_a_draft_queues_its_task_which_writes_it_once(
    help_kb, django_capture_on_commit_callbacks
) -> None:
    ticket = escalated(help_kb, ANSWERED_QUESTION)

    with tasks_run_inline(), django_capture_on_commit_callbacks(execute=True) as callbacks:
        draft_request(ticket)
        assert Ticket.objects.get(pk=ticket.pk).draft_status == "pending"

    assert len(callbacks) == 1
    written = Ticket.objects.get(pk=ticket.pk)
    assert written.draft_status == "ready" and "$59" in written.draft_reply
    # A repeated message finds it written and leaves it alone
    Ticket.objects.filter(pk=ticket.pk).update(draft_reply="Edited elsewhere")
    assert ticket_draft_task(ticket.pk) == "ready"
    assert Ticket.objects.get(pk=ticket.pk).draft_reply == "Edited elsewhere"
    assert ticket_draft_task(987654) == "gone"


def test_triage_asks_for_the_draft_and_it_is_written(
    help_kb, django_capture_on_commit_callbacks
) -> None:
    # The whole chain after "Talk to a person": triage (classify, route) then the draft
    asker = member(help_kb.account)
    answer = answered(help_kb, asker, ANSWERED_QUESTION)

    with tasks_run_inline(), django_capture_on_commit_callbacks(execute=True):
        ticket = ticket_open_from_conversation(conversation=answer.conversation, user=asker)

    ticket.refresh_from_db()
    assert ticket.classified_at is not None and ticket.category
    assert ticket.draft_status == "ready" and ticket.draft_citations
    assert "$59" in ticket.draft_reply


def test_sentences_the_citation_check_did_not_support_are_left_out() -> None:
    # As citations_check marks them: the sentence, then " [?]"
    kept, dropped, last = (
        "The Growth plan costs $59 [1].",
        "It is the best plan.",
        "Five users [1].",
    )
    text = f"{kept} {dropped} [?] {last}"

    def span(body: str) -> tuple[int, int]:
        return text.index(body), text.index(body) + len(body)

    sentences = (
        CheckedSentence("The Growth plan costs $59.", (1,), True, True, *span(kept)),
        CheckedSentence(dropped, (), False, True, *span(dropped)),
        CheckedSentence("Five users.", (1,), True, True, *span(last)),
    )

    assert _supported_text(text, sentences) == f"{kept} {last}"
