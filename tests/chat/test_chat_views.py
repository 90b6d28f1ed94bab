"""The chat pages and their htmx endpoints, through Django's test client."""

from __future__ import annotations

import pytest
from django.urls import reverse

from chat.models import Conversation, Feedback, Message
from chat.services.answers import answer_stream
from chat.services.conversations import conversation_start
from tests.factories import make_account, make_knowledge_base, make_user

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def client_of(client):
    def log_in(user):
        client.force_login(user)
        return client

    return log_in


def answered(help_kb, staff, question="How much is the Growth plan?") -> Message:
    _, answer = conversation_start(user_id=staff.pk, knowledge_base=help_kb, text=question)
    list(answer_stream(message_id=answer.pk, cancelled=lambda: False))
    return Message.objects.get(pk=answer.pk)


def test_the_chat_requires_logging_in(client) -> None:
    response = client.get(reverse("chat:home"))

    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_home_page_offers_a_picker_only_when_there_are_several_knowledge_bases(
    help_kb, staff, client_of
) -> None:
    client = client_of(staff)
    single = client.get(reverse("chat:home")).content.decode()
    make_knowledge_base(help_kb.account, "Internal runbooks")
    several = client.get(reverse("chat:home")).content.decode()

    assert 'type="hidden" name="knowledge_base"' in single and "<select" not in single
    assert '<select name="knowledge_base"' in several and "Internal runbooks" in several


def test_asking_first_question_starts_a_conversation_and_redirects_to_it(
    help_kb, staff, client_of
) -> None:
    response = client_of(staff).post(
        reverse("chat:conversation_start"),
        {"knowledge_base": help_kb.pk, "question": "  How do refunds work?  "},
        **HTMX,
    )

    conversation = Conversation.objects.get(user=staff)
    assert response["HX-Redirect"] == reverse("chat:conversation", args=[conversation.pk])
    assert conversation.title == "How do refunds work?"
    question, answer = conversation.messages.order_by("id")
    assert question.content == "How do refunds work?" and answer.status == "pending"


def test_asking_in_a_conversation_returns_the_question_and_a_streaming_placeholder(
    help_kb, staff, client_of
) -> None:
    answer = answered(help_kb, staff)

    response = client_of(staff).post(
        reverse("chat:ask", args=[answer.conversation_id]), {"question": "And per year?"}, **HTMX
    )

    html = response.content.decode()
    pending = Message.objects.filter(status="pending").get()
    assert response.status_code == 200
    assert "And per year?" in html
    assert f'sse-connect="{reverse("chat:stream", args=[pending.pk])}"' in html


def test_an_oversized_question_is_refused_with_a_message_and_nothing_is_written(
    help_kb, staff, client_of, settings
) -> None:
    settings.CAIRN_MAX_QUESTION_CHARS = 50
    answer = answered(help_kb, staff)
    before = Message.objects.count()

    response = client_of(staff).post(
        reverse("chat:ask", args=[answer.conversation_id]), {"question": "x" * 51}, **HTMX
    )

    assert response.status_code == 400
    assert response["HX-Retarget"] == "#composer-error"
    assert "51 characters long; the limit is 50" in response.content.decode()
    assert Message.objects.count() == before


def test_too_many_questions_are_refused_until_the_rate_allows(
    help_kb, staff, client_of, settings
) -> None:
    settings.CAIRN_CHAT_RATE_LIMIT = "2/m"
    client = client_of(staff)
    url = reverse("chat:conversation_start")

    statuses = [
        client.post(url, {"knowledge_base": help_kb.pk, "question": f"Q{i}?"}, **HTMX).status_code
        for i in range(3)
    ]

    assert statuses == [200, 200, 429]
    assert Conversation.objects.filter(user=staff).count() == 2


def test_conversations_of_other_people_and_accounts_are_not_found(
    help_kb, staff, client_of
) -> None:
    answer = answered(help_kb, staff)
    colleague = make_user(staff=False, account=help_kb.account, role="staff")
    stranger_kb = make_knowledge_base(make_account("Other"), "Other help")
    client = client_of(colleague)

    assert (
        client.get(reverse("chat:conversation", args=[answer.conversation_id])).status_code == 404
    )
    assert (
        client.post(reverse("chat:feedback", args=[answer.pk]), {"rating": "up"}).status_code == 404
    )
    assert (
        client.post(
            reverse("chat:conversation_start"),
            {"knowledge_base": stranger_kb.pk, "question": "Hello?"},
        ).status_code
        == 404
    )


def test_the_conversation_page_reads_without_javascript(help_kb, staff, client_of) -> None:
    answer = answered(help_kb, staff)

    html = (
        client_of(staff)
        .get(reverse("chat:conversation", args=[answer.conversation_id]))
        .content.decode()
    )

    assert "How much is the Growth plan?" in html
    assert 'class="cite"' in html and "?chunk=" in html
    assert "sse-connect" not in html  # a finished answer is plain HTML


def test_thumbs_down_then_a_comment_is_recorded_once_per_user(help_kb, staff, client_of) -> None:
    answer = answered(help_kb, staff)
    client = client_of(staff)
    url = reverse("chat:feedback", args=[answer.pk])

    first = client.post(url, {"rating": "down"}, **HTMX).content.decode()
    client.post(url, {"rating": "down", "comment": "It missed the annual price."}, **HTMX)

    assert 'name="comment"' in first
    feedback = Feedback.objects.get()
    assert (feedback.rating, feedback.comment) == ("down", "It missed the annual price.")
    assert feedback.user == staff


def test_regenerate_replaces_the_answer_with_a_new_pending_one(help_kb, staff, client_of) -> None:
    answer = answered(help_kb, staff)

    response = client_of(staff).post(reverse("chat:regenerate", args=[answer.pk]), **HTMX)

    replacement = Message.objects.get(status="pending")
    assert replacement.question_id == answer.question_id
    assert Message.objects.get(pk=answer.pk).superseded
    assert f'id="message-{replacement.pk}"' in response.content.decode()


def test_stopping_an_answer_that_never_started_ends_it(help_kb, staff, client_of) -> None:
    _, answer = conversation_start(user_id=staff.pk, knowledge_base=help_kb, text="Refunds?")

    response = client_of(staff).post(reverse("chat:stop", args=[answer.pk]), **HTMX)

    assert response.status_code == 204
    assert Message.objects.get(pk=answer.pk).status == "stopped"


def test_without_javascript_the_placeholder_link_waits_for_the_answer(
    help_kb, staff, client_of
) -> None:
    _, answer = conversation_start(user_id=staff.pk, knowledge_base=help_kb, text="Refunds?")

    response = client_of(staff).get(reverse("chat:message", args=[answer.pk]))

    assert response.status_code == 302 and response["Location"].endswith(f"#message-{answer.pk}")
    assert Message.objects.get(pk=answer.pk).is_final
