"""Conversations and messages a user may see: their own, in accounts they still belong to."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from django.http import Http404

from chat.models import Citation, Conversation, Feedback, Message
from kb.models import KnowledgeBase
from kb.selectors.accounts import AnyUser, accounts_for_user


def knowledge_bases_for_user(*, user: AnyUser) -> QuerySet[KnowledgeBase]:
    """The knowledge bases ``user`` may ask questions of."""
    return (
        KnowledgeBase.objects.filter(account__in=accounts_for_user(user=user))
        .select_related("account")
        .order_by("account__name", "name")
    )


def knowledge_base_for_user(*, user: AnyUser, knowledge_base_id: int) -> KnowledgeBase:
    try:
        return knowledge_bases_for_user(user=user).get(pk=knowledge_base_id)
    except KnowledgeBase.DoesNotExist as exc:
        raise Http404("No such knowledge base.") from exc


def conversations_for_user(*, user: AnyUser) -> QuerySet[Conversation]:
    """The user's conversations, newest activity first."""
    if not user.is_authenticated:
        return Conversation.objects.none()
    return Conversation.objects.filter(
        user_id=int(user.pk), account__in=accounts_for_user(user=user)
    ).select_related("knowledge_base")


def conversation_for_user(*, user: AnyUser, conversation_id: int) -> Conversation:
    try:
        return conversations_for_user(user=user).select_related("account").get(pk=conversation_id)
    except Conversation.DoesNotExist as exc:
        raise Http404("No such conversation.") from exc


def _with_display_relations(messages: QuerySet[Message], user: AnyUser) -> QuerySet[Message]:
    return messages.prefetch_related(
        Prefetch("citations", queryset=Citation.objects.order_by("kind", "number")),
        Prefetch(
            "feedback", queryset=Feedback.objects.filter(user_id=int(user.pk or 0)), to_attr="mine"
        ),
    )


def conversation_messages(*, conversation: Conversation, user: AnyUser) -> QuerySet[Message]:
    """What the conversation page shows: questions and their current answers."""
    return _with_display_relations(
        conversation.messages.filter(superseded=False).order_by("created_at", "id"), user
    )


def message_for_user(*, user: AnyUser, message_id: int) -> Message:
    """One message of one of the user's conversations (404 otherwise)."""
    if not user.is_authenticated:
        raise Http404("No such message.")
    messages = Message.objects.filter(
        conversation__user_id=int(user.pk),
        conversation__account__in=accounts_for_user(user=user),
    ).select_related("conversation", "conversation__knowledge_base", "conversation__account")
    try:
        return _with_display_relations(messages, user).get(pk=message_id)
    except Message.DoesNotExist as exc:
        raise Http404("No such message.") from exc
