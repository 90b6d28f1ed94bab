"""What the core tickets tests share: a small ingested knowledge base, answered questions,
queues with members."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser

from chat.models import Message
from chat.services.answers import answer_stream
from chat.services.conversations import conversation_start
from ingest.services.pipeline import document_ingest
from kb.models import Account, KnowledgeBase
from tests.factories import make_user, upload
from tickets.models import Queue

PLANS = b"""# Plans and prices

## Growth plan

The Growth plan costs $59 per month or $590 per year. It includes five users and unlimited invoices.

## Starter plan

The Starter plan costs $19 per month and includes one user.
"""

REFUNDS = b"""# Refunds

Annual plans can be refunded within 30 days of purchase, pro rata.
Monthly plans are not refunded, but you can cancel at any time before the next billing date.

## How to ask for a refund

Write to billing@ledgerly.example with your workspace name. Refunds arrive within 5 business days.
"""

ANSWERED_QUESTION = "How much does the Growth plan cost per month?"
UNANSWERED_QUESTION = "Does Ledgerly integrate with QuickBooks or Xero?"


def ingest_help(knowledge_base: KnowledgeBase) -> KnowledgeBase:
    for name, content in (("plans.md", PLANS), ("refunds.md", REFUNDS)):
        document_ingest(document_id=upload(knowledge_base, name, content).document.pk)
    return knowledge_base


def answered(knowledge_base: KnowledgeBase, user: AbstractUser | None, question: str) -> Message:
    """``user`` asks ``question`` in a new conversation; the answer, finished."""
    _, pending = conversation_start(
        user_id=user.pk if user is not None else None, knowledge_base=knowledge_base,
        text=question,
    )  # fmt: skip
    list(answer_stream(message_id=pending.pk, cancelled=lambda: False))
    return Message.objects.select_related("conversation", "question").get(pk=pending.pk)


def member(account: Account, email: str = "", role: str = "staff") -> AbstractUser:
    user = make_user(staff=False, account=account, role=role)
    if email:
        user.email = email
        user.save(update_fields=["email"])
    return user


def queue(account: Account, name: str, *members: AbstractUser) -> Queue:
    made = Queue.objects.create(account=account, name=name, slug=name.lower().replace(" ", "-"))
    made.members.add(*[user.pk for user in members])
    return made
