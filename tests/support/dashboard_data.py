"""Rows for the dashboard's tests, written directly with known values and dates.

Dates are "days ago" at noon in the current time zone, so a row lands on a known day of
the dashboard's period whatever the time the tests run (except across midnight).
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractUser
from django.utils import timezone

from chat.models import Conversation, Feedback, Message
from kb.models import Account, Document, KnowledgeBase
from llm.models import LlmCall
from tests.factories import make_account, make_knowledge_base, make_user

_sequence = itertools.count(1)


def day(days_ago: int) -> date:
    return timezone.localdate() - timedelta(days=days_ago)


def moment(days_ago: int, hour: int = 12) -> datetime:
    return timezone.make_aware(datetime.combine(day(days_ago), time(hour)))


def ledger_call(
    account: Account | None,
    *,
    days_ago: int,
    cost: str = "0",
    feature: str = "answer",
    status: str = LlmCall.Status.OK,
    cache_hit: bool = False,
    fallback_used: bool = False,
) -> LlmCall:
    call = LlmCall.objects.create(
        request_id=f"req-{next(_sequence)}",
        account=account,
        feature=feature,
        provider="openai",
        model="gpt-test",
        cost=Decimal(cost),
        status=status,
        cache_hit=cache_hit,
        fallback_used=fallback_used,
    )
    # created_at is auto_now_add: only an UPDATE can date the row in the past.
    LlmCall.objects.filter(pk=call.pk).update(created_at=moment(days_ago))
    return call


@dataclass
class Asker:
    """A user chatting with one knowledge base of an account."""

    account: Account
    knowledge_base: KnowledgeBase
    user: AbstractUser
    conversation: Conversation


def make_asker(account: Account) -> Asker:
    knowledge_base = make_knowledge_base(account, f"{account.name} help")
    user = make_user(staff=False, account=account, role="staff")
    conversation = Conversation.objects.create(
        account=account, user_id=user.pk, knowledge_base=knowledge_base
    )
    return Asker(account, knowledge_base, user, conversation)


def answer(
    asker: Asker,
    *,
    days_ago: int,
    question: str = "How do refunds work?",
    status: str = Message.Status.DONE,
    latency_ms: int | None = 1000,
    ttft_ms: int | None = 200,
    superseded: bool = False,
    purged: bool = False,
) -> Message:
    """A question and its answer, both dated ``days_ago``; ``purged`` as the retention
    policy leaves them (texts blanked)."""
    when = moment(days_ago)
    asked = Message.objects.create(
        conversation=asker.conversation,
        role=Message.Role.USER,
        content="" if purged else question,
    )
    reply = Message.objects.create(
        conversation=asker.conversation,
        role=Message.Role.ASSISTANT,
        question=asked,
        content="" if purged else "An answer.",
        status=status,
        superseded=superseded,
        latency_ms=latency_ms,
        time_to_first_token_ms=ttft_ms,
    )
    Message.objects.filter(pk__in=[asked.pk, reply.pk]).update(
        created_at=when, purged_at=when if purged else None
    )
    return reply


def feedback(asker: Asker, message: Message, *, rating: str, days_ago: int) -> Feedback:
    given = Feedback.objects.create(
        message=message, user_id=make_user(staff=False, account=asker.account).pk, rating=rating
    )
    Feedback.objects.filter(pk=given.pk).update(created_at=moment(days_ago))
    return given


def failed_document(
    knowledge_base: KnowledgeBase, *, title: str, error: str, days_ago: int, hour: int = 12
) -> Document:
    content = f"{title} {next(_sequence)}".encode()
    document = Document.objects.create(
        account=knowledge_base.account,
        knowledge_base=knowledge_base,
        title=title,
        source=f"{title}.pdf",
        original_filename=f"{title}.pdf",
        file=f"documents/{knowledge_base.account_id}/missing.pdf",  # never read
        content_hash=hashlib.sha256(content).hexdigest(),
        mime_type="application/pdf",
    )
    # updated_at is auto_now: an UPDATE leaves it as given.
    Document.objects.filter(pk=document.pk).update(
        status=Document.Status.FAILED, error=error, updated_at=moment(days_ago, hour)
    )
    return document


@dataclass
class Seeded:
    acme: Account
    bolt: Account
    acme_admin: AbstractUser
    acme_asker: Asker
    bolt_asker: Asker


def seed_two_accounts() -> Seeded:
    """A week of activity in two accounts, with figures the tests know by heart.

    Acme: cost $0.50 three days ago ($0.40 answer + $0.10 embedding:query) and $0.25 today
    (answer); four answers three days ago (latency 100, 200, 300, 400 ms; first token
    10, 20, 30, 40 ms); 2 thumbs up and 1 down; "How do I export invoices?" abstained three
    times (spelt three ways) and "Is there a mobile app" once; one ingestion failure two
    days ago. Answer calls: four, of which one a cache hit, one a fallback, one an error.
    Bolt: $2 today, a failed document "Bolt secret roadmap", an unanswered "Bolt secret?".
    """
    acme, bolt = make_account("Acme"), make_account("Bolt")
    acme_asker, bolt_asker = make_asker(acme), make_asker(bolt)

    ledger_call(acme, days_ago=3, cost="0.40", feature="answer")
    ledger_call(acme, days_ago=3, cost="0.10", feature="embedding:query")
    ledger_call(acme, days_ago=0, cost="0.25", feature="answer", cache_hit=True)
    ledger_call(acme, days_ago=0, feature="answer", fallback_used=True)
    ledger_call(acme, days_ago=0, feature="answer", status=LlmCall.Status.ERROR)
    ledger_call(bolt, days_ago=0, cost="2.00", feature="answer")

    answers = [
        answer(acme_asker, days_ago=3, latency_ms=latency, ttft_ms=latency // 10)
        for latency in (100, 200, 300, 400)
    ]
    feedback(acme_asker, answers[0], rating=Feedback.Rating.UP, days_ago=3)
    feedback(acme_asker, answers[1], rating=Feedback.Rating.UP, days_ago=3)
    feedback(acme_asker, answers[2], rating=Feedback.Rating.DOWN, days_ago=1)

    abstained: dict[str, Any] = {
        "status": Message.Status.ABSTAINED,
        "latency_ms": None,
        "ttft_ms": None,
    }
    for text in (
        "How do I export invoices?",
        "how do i  export invoices",
        "How do I export invoices",
    ):
        answer(acme_asker, days_ago=2, question=text, **abstained)
    answer(acme_asker, days_ago=1, question="Is there a mobile app", **abstained)
    answer(bolt_asker, days_ago=1, question="Bolt secret?", **abstained)

    failed_document(
        acme_asker.knowledge_base,
        title="Scanned contract",
        error="The PDF has no text layer.",
        days_ago=2,
    )
    failed_document(
        bolt_asker.knowledge_base, title="Bolt secret roadmap", error="Bolt reason", days_ago=1
    )
    acme_admin = make_user(account=acme, role="admin")
    return Seeded(acme, bolt, acme_admin, acme_asker, bolt_asker)
