"""Starting conversations and asking questions: the question and its answer's placeholder."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from chat.answering.questions import question_clean, question_guard
from chat.models import Conversation, Message
from kb.models import KnowledgeBase

TITLE_CHARS = 80


def _title(question: str) -> str:
    line = " ".join(question.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


@transaction.atomic
def question_ask(
    *, conversation: Conversation, text: str, idempotency_key: str = ""
) -> tuple[Message, Message]:
    """Record a question and the pending answer whose stream the page then opens.

    Raises QuestionRejected (nothing written) when the question fails the input checks.
    """
    question = question_clean(text)
    account = conversation.account
    guard = question_guard(question, action=account.injection_action, account_id=account.pk)
    asked = Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content=question,
        injection_score=guard.injection_score, flagged=guard.flagged,
    )  # fmt: skip
    answer = Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        question=asked,
        status=Message.Status.PENDING,
        idempotency_key=idempotency_key,
    )
    if not conversation.title:
        conversation.title = _title(question)
    conversation.updated_at = timezone.now()
    conversation.save(update_fields=["title", "updated_at"])
    return asked, answer


@transaction.atomic
def conversation_start(
    *,
    user_id: int | None,
    knowledge_base: KnowledgeBase,
    text: str,
    api_key_id: int | None = None,
    idempotency_key: str = "",
) -> tuple[Conversation, Message]:
    """A new conversation with its first question (validated before anything is written).

    A conversation belongs to a user (the browser) or, through the API, to an API key's
    account (``user_id`` None, ``api_key_id`` set).
    """
    question = question_clean(text)
    account = knowledge_base.account
    question_guard(question, action=account.injection_action, account_id=account.pk)  # early
    conversation = Conversation.objects.create(
        account_id=knowledge_base.account_id, user_id=user_id, api_key_id=api_key_id,
        knowledge_base=knowledge_base,
    )  # fmt: skip
    _, answer = question_ask(
        conversation=conversation, text=question, idempotency_key=idempotency_key
    )
    return conversation, answer


@transaction.atomic
def agent_message_add(*, conversation: Conversation, text: str, author_name: str = "") -> Message:
    """A person's message in the asker's conversation (a support agent's reply to an
    escalated question): role ``agent``, final at once, never sent to a model.

    ``author_name`` (the agent as the asker sees them, "Support — <name>") is kept in
    ``model``, the field that says who wrote an answer. Kept out of what answers are made
    of: the history of follow-ups reads assistant answers only, and feedback rates
    assistant answers only.
    """
    text = text.strip()
    if not text:
        raise ValueError("An agent message needs text.")
    message = Message.objects.create(
        conversation=conversation, role=Message.Role.AGENT, status=Message.Status.DONE,
        content=text, completed_at=timezone.now(), model=" ".join(author_name.split())[:200],
    )  # fmt: skip
    conversation.updated_at = timezone.now()
    conversation.save(update_fields=["updated_at"])
    return message
