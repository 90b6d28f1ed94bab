"""Retention: old questions and answers lose their text; usage figures stay."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from chat.models import Budget, BudgetWindow, Citation, Conversation, Feedback, Message
from chat.services.answers import answer_regenerate, answer_stream
from chat.services.conversations import conversation_start, question_ask
from chat.services.feedback import FeedbackRejected, feedback_give
from chat.services.retention import conversations_purge, retention_cutoff
from chat.tasks import retention_purge_task
from llm.models import LlmCall, SemanticCacheEntry
from tests.support.api import api_client

REPO = Path(__file__).resolve().parent.parent.parent
QUESTION = "How much is the Growth plan?"
COMMENT = "It should mention the yearly price."


def answered(help_kb, staff, question: str = QUESTION) -> Message:
    """A finished answer to a new conversation's question, with a feedback comment."""
    _, answer = conversation_start(user_id=staff.pk, knowledge_base=help_kb, text=question)
    list(answer_stream(message_id=answer.pk, cancelled=lambda: False))
    answer = Message.objects.get(pk=answer.pk)
    feedback_give(message=answer, user_id=staff.pk, rating="down", comment=COMMENT)
    return answer


def age(conversation_id: int, *, days: int) -> None:
    """Move a conversation's messages and cache entries ``days`` into the past."""
    then = timezone.now() - timedelta(days=days)
    Message.objects.filter(conversation_id=conversation_id).update(created_at=then)
    SemanticCacheEntry.objects.update(created_at=then)


def purge_now() -> None:
    cutoff = retention_cutoff()
    assert cutoff is not None
    conversations_purge(older_than=cutoff)


def figures(message: Message) -> tuple:
    return (
        message.status, message.provider, message.model, message.input_tokens,
        message.output_tokens, message.cost, message.latency_ms, message.request_id,
    )  # fmt: skip


@pytest.fixture
def budget(help_kb) -> Budget:
    return Budget.objects.create(account=help_kb.account, period="month", token_cap=10**9)


@pytest.mark.django_db
def test_an_old_conversation_loses_its_texts_but_keeps_tokens_cost_ledger_and_budget_spend(
    help_kb, staff, budget
) -> None:
    answer = answered(help_kb, staff)
    question = answer.question
    assert question is not None
    assert answer.content and answer.input_tokens > 0 and answer.citations.exists()
    assert answer.sentences  # the checked sentences hold the answer's text too
    assert SemanticCacheEntry.objects.exists()
    ledger = list(LlmCall.objects.order_by("pk").values())
    spent = BudgetWindow.objects.get().tokens_spent
    before = figures(answer)
    age(answer.conversation_id, days=40)

    purge_now()

    answer.refresh_from_db()
    question.refresh_from_db()
    conversation = Conversation.objects.get(pk=answer.conversation_id)
    assert question.content == "" and question.purged_at is not None
    assert answer.content == answer.raw_content == "" and answer.purged_at is not None
    assert answer.sentences == []
    assert set(Citation.objects.filter(message=answer).values_list("excerpt", flat=True)) == {""}
    assert Citation.objects.filter(message=answer).exclude(document_title="").exists()
    feedback = Feedback.objects.get(message=answer)
    assert feedback.comment == "" and feedback.rating == "down"
    assert conversation.title == "" and str(conversation) == f"Conversation {conversation.pk}"
    assert not SemanticCacheEntry.objects.exists()
    assert figures(answer) == before
    assert list(LlmCall.objects.order_by("pk").values()) == ledger
    assert BudgetWindow.objects.get().tokens_spent == spent > 0


@pytest.mark.django_db
def test_a_recent_conversation_is_left_untouched(help_kb, staff) -> None:
    old = answered(help_kb, staff)
    recent = answered(help_kb, staff, "How do refunds work?")
    age(old.conversation_id, days=40)
    SemanticCacheEntry.objects.update(created_at=timezone.now())

    purge_now()

    recent.refresh_from_db()
    assert recent.purged_at is None and recent.content and recent.raw_content
    assert recent.question is not None and recent.question.content == "How do refunds work?"
    assert Feedback.objects.get(message=recent).comment == COMMENT
    assert Conversation.objects.get(pk=recent.conversation_id).title == "How do refunds work?"
    assert all(c.excerpt for c in Citation.objects.filter(message=recent))
    assert SemanticCacheEntry.objects.exists()
    assert Message.objects.get(pk=old.pk).purged_at is not None


@pytest.mark.django_db
def test_zero_days_keeps_everything(help_kb, staff, settings) -> None:
    settings.CAIRN_RETENTION_DAYS = 0
    answer = answered(help_kb, staff)
    age(answer.conversation_id, days=4000)

    result = retention_purge_task()
    call_command("purge_conversations", "--days", "0", stdout=io.StringIO())

    answer.refresh_from_db()
    assert result == {} and retention_cutoff() is None
    assert answer.purged_at is None and answer.content
    assert not Message.objects.filter(purged_at__isnull=False).exists()
    assert Feedback.objects.get(message=answer).comment == COMMENT


@pytest.mark.django_db
def test_the_task_purges_by_the_configured_days(help_kb, staff, settings) -> None:
    settings.CAIRN_RETENTION_DAYS = 7
    answer = answered(help_kb, staff)
    age(answer.conversation_id, days=8)

    result = retention_purge_task()

    assert result["messages"] == 2 and result["feedback_comments"] == 1
    assert Message.objects.get(pk=answer.pk).purged_at is not None


def test_the_task_is_scheduled_by_beat_at_the_configured_interval(settings) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["purge-expired-conversations"]
    assert entry["task"] == "chat.tasks.retention_purge_task"
    assert entry["schedule"] == float(settings.CAIRN_RETENTION_INTERVAL_SECONDS) == 3600.0

    code = (
        "import os, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings';"
        "from django.conf import settings;"
        "print(settings.CELERY_BEAT_SCHEDULE['purge-expired-conversations']['schedule'])"
    )
    env = {**os.environ, "CAIRN_RETENTION_INTERVAL_SECONDS": "600"}
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "600.0"


def test_the_worker_discovers_the_task_beat_names() -> None:
    # A fresh interpreter: this module's own import of chat.tasks must not count.
    code = (
        "import sys; from config.celery_app import app;"
        "assert 'chat.tasks' not in sys.modules;"
        "app.loader.import_default_modules();"  # what a worker does at start-up
        "print('chat.tasks.retention_purge_task' in app.tasks)"
    )
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
        check=True,
    )  # fmt: skip
    assert done.stdout.strip().splitlines()[-1] == "True"


@pytest.mark.django_db
def test_running_twice_is_harmless(help_kb, staff) -> None:
    answer = answered(help_kb, staff)
    age(answer.conversation_id, days=40)
    cutoff = retention_cutoff()
    assert cutoff is not None

    first = conversations_purge(older_than=cutoff, batch_size=1)
    purged_at = Message.objects.get(pk=answer.pk).purged_at
    second = conversations_purge(older_than=cutoff, batch_size=1)

    assert first.messages == 2 and first.feedback_comments == 1 and first.citations >= 1
    assert first.conversation_titles == 1 and first.cache_entries >= 1
    assert second.summary() == (
        "messages=0, unfinished_answers=0, citations=0, feedback_comments=0, "
        "conversation_titles=0, cache_entries=0"
    )
    assert Message.objects.get(pk=answer.pk).purged_at == purged_at


@pytest.mark.django_db(transaction=True)
def test_concurrent_purges_purge_each_message_once(help_kb, staff) -> None:
    for n in range(6):
        answer = answered(help_kb, staff, f"How much is the Growth plan, take {n}?")
        age(answer.conversation_id, days=40)
    cutoff = retention_cutoff()
    assert cutoff is not None
    reports = []
    start = threading.Barrier(3)

    def purge() -> None:
        try:
            start.wait()
            reports.append(conversations_purge(older_than=cutoff, batch_size=2))
        finally:
            connection.close()

    threads = [threading.Thread(target=purge) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(report.messages for report in reports) == 12
    assert sum(report.feedback_comments for report in reports) == 6
    assert not Message.objects.filter(purged_at__isnull=True).exists()


@pytest.mark.django_db
def test_an_unfinished_answer_past_the_cutoff_is_stopped_rather_than_generated(
    help_kb, staff, client
) -> None:
    conversation, pending = conversation_start(
        user_id=staff.pk, knowledge_base=help_kb, text=QUESTION
    )
    age(conversation.pk, days=40)

    purge_now()

    pending.refresh_from_db()
    assert pending.status == "stopped" and pending.purged_at is not None
    client.force_login(staff)
    html = client.get(reverse("chat:conversation", args=[conversation.pk])).content.decode()
    assert "sse-connect" not in html


@pytest.mark.django_db
def test_the_chat_page_shows_the_purged_notice_instead_of_the_texts(help_kb, staff, client) -> None:
    answer = answered(help_kb, staff)
    age(answer.conversation_id, days=40)
    purge_now()
    client.force_login(staff)

    response = client.get(reverse("chat:conversation", args=[answer.conversation_id]))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Question removed after 40 days under the retention policy." in html
    assert "Answer removed after 40 days under the retention policy." in html
    assert QUESTION not in html and "$59" not in html
    assert f"Conversation {answer.conversation_id}" in html
    assert reverse("chat:regenerate", args=[answer.pk]) not in html
    home = client.get(reverse("chat:home"))
    assert home.status_code == 200 and QUESTION not in home.content.decode()


@pytest.mark.django_db
def test_the_rest_conversation_endpoint_shows_the_purged_notice(help_kb) -> None:
    client, _, _ = api_client(help_kb.account, ["answer", "read"])
    body = client.post(
        "/api/v1/answers", {"question": QUESTION}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    ).json()
    age(body["conversation_id"], days=40)
    purge_now()

    messages = client.get(f"/api/v1/conversations/{body['conversation_id']}/messages")
    listed = client.get("/api/v1/conversations").json()
    replayed = client.post(
        "/api/v1/answers", {"question": QUESTION}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )

    assert messages.status_code == 200
    question, answer = messages.json()
    assert question["content"] == answer["content"] == ""
    assert question["purged_at"] and answer["purged_at"]
    assert question["notice"] == "Question removed after 40 days under the retention policy."
    assert answer["notice"] == "Answer removed after 40 days under the retention policy."
    assert all(citation["snippet"] == "" for citation in answer["citations"])
    assert [c["title"] for c in listed] == [""]
    assert replayed.status_code == 200
    assert replayed.json()["answer"] == "" and replayed.json()["notice"].startswith("Answer")
    assert replayed.json()["usage"] == body["usage"]


@pytest.mark.django_db
def test_a_purged_answer_cannot_be_rated_or_regenerated(help_kb, staff) -> None:
    answer = answered(help_kb, staff)
    age(answer.conversation_id, days=40)
    purge_now()
    answer.refresh_from_db()

    with pytest.raises(FeedbackRejected, match="retention policy"):
        feedback_give(message=answer, user_id=staff.pk, rating="up")
    with pytest.raises(ValueError, match="retention policy"):
        answer_regenerate(message=answer)


@pytest.mark.django_db
def test_a_conversation_continued_after_the_purge_is_titled_by_its_new_question(
    help_kb, staff
) -> None:
    answer = answered(help_kb, staff)
    age(answer.conversation_id, days=40)
    purge_now()
    conversation = Conversation.objects.get(pk=answer.conversation_id)

    _, follow_up = question_ask(conversation=conversation, text="How do refunds work?")
    list(answer_stream(message_id=follow_up.pk, cancelled=lambda: False))

    follow_up.refresh_from_db()
    conversation.refresh_from_db()
    assert conversation.title == "How do refunds work?"
    assert follow_up.status == "done" and follow_up.content and follow_up.purged_at is None


@pytest.mark.django_db
def test_the_dry_run_prints_counts_and_changes_nothing(help_kb, staff) -> None:
    answer = answered(help_kb, staff)
    age(answer.conversation_id, days=40)
    out = io.StringIO()

    call_command("purge_conversations", "--days", "30", "--dry-run", stdout=out)

    printed = out.getvalue()
    assert "messages: 2" in printed and "feedback comments: 1" in printed
    assert "conversation titles: 1" in printed and "Dry run: nothing was changed." in printed
    assert not Message.objects.filter(purged_at__isnull=False).exists()
    assert Feedback.objects.get(message=answer).comment == COMMENT
    assert Conversation.objects.get(pk=answer.conversation_id).title == QUESTION
    assert SemanticCacheEntry.objects.exists()


@pytest.mark.django_db
def test_the_command_purges_with_its_own_days(help_kb, staff) -> None:
    answer = answered(help_kb, staff)
    age(answer.conversation_id, days=40)

    call_command("purge_conversations", "--days", "50", stdout=io.StringIO())
    kept = Message.objects.get(pk=answer.pk).purged_at
    out = io.StringIO()
    call_command("purge_conversations", "--days", "35", stdout=out)

    assert kept is None
    assert Message.objects.get(pk=answer.pk).purged_at is not None
    assert "messages: 2" in out.getvalue()


@pytest.mark.django_db
def test_the_log_line_has_counts_and_no_content(help_kb, staff, caplog) -> None:
    answer = answered(help_kb, staff)
    age(answer.conversation_id, days=40)

    with caplog.at_level("INFO", logger="cairn.retention"):
        purge_now()

    (record,) = [r for r in caplog.records if r.name == "cairn.retention"]
    assert "messages=2" in record.getMessage() and "feedback_comments=1" in record.getMessage()
    assert QUESTION not in record.getMessage() and COMMENT not in record.getMessage()
    assert json.dumps(record.args, default=str).count("Growth") == 0
