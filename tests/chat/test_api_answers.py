"""POST /api/v1/answers (JSON), conversations and feedback through the API."""

from __future__ import annotations

import pytest
from django.urls import reverse

from chat.models import Conversation, Feedback, Message
from llm.models import LlmCall, LlmRoute
from llm.providers.registry import reset_providers
from tests.factories import make_account, make_knowledge_base
from tests.support.api import api_client, error_of
from web.sliding_window import SLICES

pytestmark = pytest.mark.django_db

ANSWERS = "/api/v1/answers"


def ask(client, question="How much does the Growth plan cost per month?", **extra):
    headers = {}
    if "idempotency_key" in extra:
        headers["HTTP_IDEMPOTENCY_KEY"] = extra.pop("idempotency_key")
    return client.post(ANSWERS, {"question": question, **extra}, format="json", **headers)


def test_an_answer_comes_with_its_citations_usage_and_provenance(help_kb) -> None:
    client, _, _ = api_client(help_kb.account, ["answer"])

    response = ask(client)

    assert response.status_code == 200
    body = response.json()
    assert body["grounded"] is True and body["status"] == "done"
    assert "$59" in body["answer"]
    citation = body["citations"][0]
    assert set(citation) == {
        "n", "document_id", "document_title", "chunk_id", "heading_path", "snippet", "url", "score"
    }  # fmt: skip
    assert "$59" in citation["snippet"] and citation["score"] > 0.45
    assert citation["url"].startswith("http://testserver/documents/")
    assert f"chunk={citation['chunk_id']}" in citation["url"]
    assert set(body["usage"]) == {"input_tokens", "output_tokens", "cost"}
    assert body["provider"] == "local" and body["cached"] == ""
    assert body["prompt_version"] == "answer/v2" and body["latency_ms"] is not None
    message = Message.objects.get(pk=body["message_id"])
    assert message.conversation_id == body["conversation_id"]
    assert message.conversation.user is None and message.conversation.api_key is not None


def test_a_conversation_continues_with_its_history(help_kb) -> None:
    client, _, _ = api_client(help_kb.account, ["answer", "read"])
    first = ask(client).json()

    follow_up = ask(client, "And per year?", conversation_id=first["conversation_id"]).json()

    assert follow_up["conversation_id"] == first["conversation_id"]
    assert "$590" in follow_up["answer"]
    messages = client.get(f"/api/v1/conversations/{first['conversation_id']}/messages").json()
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]


def test_the_knowledge_base_must_be_named_when_there_are_several(help_kb) -> None:
    make_knowledge_base(help_kb.account, "Runbooks")
    client, _, _ = api_client(help_kb.account, ["answer"])

    unnamed = ask(client)
    unknown = ask(client, knowledge_base="nope")
    named = ask(client, knowledge_base=help_kb.slug)

    assert unnamed.status_code == 400
    assert error_of(unnamed)["code"] == "knowledge_base_required"
    assert unknown.status_code == 404 and error_of(unknown)["code"] == "not_found"
    assert named.status_code == 200


def test_another_accounts_key_reaches_nothing_of_this_account(help_kb) -> None:
    owner, _, _ = api_client(help_kb.account, ["answer", "read"])
    answer = ask(owner).json()
    stranger_account = make_account("Stranger")
    make_knowledge_base(stranger_account, "Their help")
    stranger, _, _ = api_client(stranger_account, ["answer", "read"])

    by_slug = ask(stranger, knowledge_base=help_kb.slug)
    by_id = ask(stranger, knowledge_base=str(help_kb.pk))
    continued = ask(stranger, "And per year?", conversation_id=answer["conversation_id"])
    listed = stranger.get("/api/v1/conversations").json()
    messages = stranger.get(f"/api/v1/conversations/{answer['conversation_id']}/messages")
    feedback = stranger.post(
        f"/api/v1/messages/{answer['message_id']}/feedback", {"rating": "down"}, format="json"
    )

    assert by_slug.status_code == by_id.status_code == continued.status_code == 404
    assert listed == []
    assert messages.status_code == 404 and feedback.status_code == 404
    assert Feedback.objects.count() == 0


def test_a_retry_with_the_same_idempotency_key_returns_the_same_answer_charged_once(
    help_kb,
) -> None:
    client, _, _ = api_client(help_kb.account, ["answer"])
    first = ask(client, idempotency_key="retry-42").json()
    calls = LlmCall.objects.count()

    again = ask(client, idempotency_key="retry-42").json()

    assert again["message_id"] == first["message_id"]
    assert again["answer"] == first["answer"] and again["usage"] == first["usage"]
    assert LlmCall.objects.count() == calls
    assert Message.objects.filter(role="assistant").count() == 1


def test_a_question_that_fails_the_input_checks_is_a_400(help_kb, settings) -> None:
    settings.CAIRN_MAX_QUESTION_CHARS = 20
    client, _, _ = api_client(help_kb.account, ["answer"])

    response = ask(client, "x" * 21)

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_question" and "limit is 20" in error["message"]
    assert Conversation.objects.count() == 0


def test_missing_credentials_and_missing_scopes_are_refused_in_the_error_shape(help_kb) -> None:
    from rest_framework.test import APIClient

    reader, _, _ = api_client(help_kb.account, ["read"])

    anonymous = APIClient().post(ANSWERS, {"question": "Hi?"}, format="json")
    read_only = ask(reader)

    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"].startswith("Bearer")
    assert error_of(anonymous)["code"] == "not_authenticated"
    assert read_only.status_code == 403 and error_of(read_only)["code"] == "permission_denied"


def test_when_every_provider_is_down_the_answer_is_a_503_with_the_fallback(
    help_kb, settings
) -> None:
    settings.CAIRN_OPENAI_COMPATIBLE_BASE_URL = "http://127.0.0.1:9/v1"  # nothing listens
    settings.CAIRN_LLM_RETRIES = 0
    reset_providers()
    LlmRoute.objects.create(name="simple", chain="openai_compatible:gone")
    client, _, _ = api_client(help_kb.account, ["answer"])
    try:
        response = ask(client)
    finally:
        reset_providers()

    assert response.status_code == 503 and response["Retry-After"] == "30"
    error = error_of(response)
    assert error["code"] == "providers_unavailable"
    assert error["answer"] == settings.CAIRN_LLM_FALLBACK_MESSAGE


def test_feedback_through_the_api_is_recorded_once_per_key(help_kb) -> None:
    client, key, _ = api_client(help_kb.account, ["answer"])
    answer = ask(client).json()
    url = f"/api/v1/messages/{answer['message_id']}/feedback"

    client.post(url, {"rating": "up"}, format="json")
    response = client.post(url, {"rating": "down", "comment": "Wrong plan"}, format="json")

    assert response.status_code == 200
    feedback = Feedback.objects.get()
    assert (feedback.rating, feedback.comment, feedback.api_key_id) == (
        "down",
        "Wrong plan",
        key.pk,
    )


def test_a_session_user_asks_through_the_api_too(help_kb, staff, client) -> None:
    client.force_login(staff)

    response = client.post(
        reverse("api-answers"), {"question": "How do I ask for a refund?"},
        content_type="application/json",
    )  # fmt: skip

    assert response.status_code == 200
    assert Conversation.objects.get().user == staff
    assert client.get("/api/v1/conversations").json()[0]["id"] == response.json()["conversation_id"]


def test_too_many_questions_are_a_429_with_retry_after(help_kb, settings) -> None:
    # Per hour, so the window cannot roll over during the test.
    settings.CAIRN_API_KEY_RATE_LIMIT = "2/h"
    client, _, _ = api_client(help_kb.account, ["answer"])

    statuses = [ask(client, "Refunds?").status_code for _ in range(3)]
    limited = ask(client, "Refunds?")

    assert statuses == [200, 200, 429]
    # At most the hour and the slice the sliding window may overrun (web/sliding_window.py).
    assert limited.status_code == 429 and 1 <= int(limited["Retry-After"]) <= 3600 + 3600 / SLICES
    error = error_of(limited)
    assert error["code"] == "rate_limited" and error["retry_after"] == int(limited["Retry-After"])
