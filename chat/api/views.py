"""/api/v1/answers, conversations and feedback: thin DRF views over the chat services.

``POST answers`` answers in JSON, or as Server-Sent Events with ``stream: true`` or
``Accept: text/event-stream``: ``token`` events, then ``citation`` events, ``usage``,
``error`` when the answer failed, and ``done`` with the whole answer. An
``Idempotency-Key`` header makes a retry return the same answer, charged once.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import renderers, serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.answering.questions import QuestionRejected
from chat.api.limits import question_rate_check
from chat.api.serializers import (
    AnswerOutputSerializer,
    ConversationOutputSerializer,
    MessageOutputSerializer,
    answer_data,
)
from chat.models import Conversation, Feedback, Message
from chat.selectors.budgets import budget_headers, budget_standing
from chat.services.answers import Finished, Token, answer_stream
from chat.services.conversations import conversation_start, question_ask
from chat.services.feedback import FeedbackRejected, feedback_give
from chat.streaming import (
    Heartbeat,
    answer_stream_events,
    closing_connection,
    event_stream_response,
)
from kb.api.auth import request_account_ids, request_api_key
from kb.api.views import reference_id
from kb.models import ApiKey, KnowledgeBase
from web.api_errors import (
    ApplicationError,
    Conflict,
    RateLimited,
    ServiceUnavailable,
    error_body,
)
from web.api_schema import ERROR_HEADERS, error_responses, streaming_responses

IDEMPOTENCY_WAIT_SECONDS = 120
SSE_HEARTBEAT_SECONDS = 15.0


def _knowledge_base(request: Request, reference: str | None) -> KnowledgeBase:
    """The knowledge base named by slug or id, among the caller's; the only one if unnamed."""
    available = KnowledgeBase.objects.filter(
        account_id__in=request_account_ids(request, scope=ApiKey.Scope.ANSWER)
    ).select_related("account")
    if reference in (None, ""):
        found = list(available[:2])
        if len(found) == 1:
            return found[0]
        raise ApplicationError(
            "Say which knowledge base to ask: knowledge_base is required when there are "
            "several (GET /api/v1/knowledge-bases lists them).",
            code="knowledge_base_required",
        )
    pk = reference_id(reference)
    lookup = {"pk": pk} if pk is not None else {"slug": reference}
    match = available.filter(**lookup).first()
    if match is None:
        raise NotFound(f"No knowledge base {reference!r}.")
    return match


def _conversations(request: Request) -> Any:
    """Conversations the caller may continue: an API key's account's API conversations, or
    the session user's own."""
    conversations = Conversation.objects.filter(
        account_id__in=request_account_ids(request)
    ).select_related("knowledge_base")
    if request_api_key(request) is not None:
        return conversations.filter(user__isnull=True)
    return conversations.filter(user_id=int(request.user.pk or 0))


def _idempotent_answer(request: Request, key: str) -> Message | None:
    return (
        Message.objects.filter(
            conversation__in=_conversations(request),
            idempotency_key=key,
            role=Message.Role.ASSISTANT,
        )  # fmt: skip
        .order_by("-id")
        .first()
    )


def _wait_final(message: Message) -> Message:
    deadline = time.monotonic() + IDEMPOTENCY_WAIT_SECONDS
    while not message.is_final and time.monotonic() < deadline:
        time.sleep(0.2)
        message.refresh_from_db()
    return message


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, cls=DjangoJSONEncoder)}\n\n"


def budget_refusal(answer: Message) -> RateLimited:
    """429 for a question refused by a budget, retryable when the window resets."""
    seconds = (answer.retry_at - timezone.now()).total_seconds() if answer.retry_at else 60
    return RateLimited(
        answer.content, code="budget_exhausted", retry_after=max(1, seconds),
        extra={"resets_at": answer.retry_at.isoformat() if answer.retry_at else None},
    )  # fmt: skip


_FAILURE_CODES = {
    Message.Problem.BUDGET_EXHAUSTED: "budget_exhausted",
    Message.Problem.PROVIDERS_DOWN: "providers_unavailable",
    Message.Problem.INTERRUPTED: "interrupted",
    Message.Problem.INTERNAL: "internal_error",
    Message.Problem.ABANDONED: "abandoned",
}


class EventStreamRenderer(renderers.BaseRenderer):
    """Lets clients ask for ``Accept: text/event-stream``; what it renders itself is only
    the JSON responses (errors, say), as one SSE event each."""

    media_type = "text/event-stream"
    format = "sse"
    charset = "utf-8"

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        event = "error" if isinstance(data, dict) and "error" in data else "done"
        return sse(event, data).encode()


class AnswerCreateApi(APIView):
    required_scope = ApiKey.Scope.ANSWER
    renderer_classes = [renderers.JSONRenderer, EventStreamRenderer]

    class InputSerializer(serializers.Serializer):
        question = serializers.CharField(trim_whitespace=False, allow_blank=True)
        knowledge_base = serializers.CharField(
            required=False, allow_blank=True, help_text="Slug or id; optional if only one."
        )
        conversation_id = serializers.IntegerField(required=False, help_text="Continue it.")
        stream = serializers.BooleanField(required=False, default=False)

    @extend_schema(
        operation_id="answers_create",
        request=InputSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="A retry with the same key returns the same answer.",
            ),
            *ERROR_HEADERS,
        ],  # fmt: skip
        # Stream events' data: {"text"}, a citation, the usage, an error body, or (done)
        # the whole answer as in application/json.
        responses=streaming_responses(AnswerOutputSerializer, 400, 404, 406, 409, 503),
        description="Ask a question; JSON, or Server-Sent Events with stream=true "
        "(events: token, citation, usage, error, done).",
    )
    def post(self, request: Request) -> HttpResponse | StreamingHttpResponse:
        question_rate_check(request)
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        streaming = data["stream"] or "text/event-stream" in request.headers.get("Accept", "")
        key = request.headers.get("Idempotency-Key", "").strip()[:128]
        answer = self._answer_for(request, data, key)
        if streaming:
            return self._stream(request, answer)
        if not answer.is_final:
            for _ in answer_stream(message_id=answer.pk, cancelled=lambda: False):
                pass
        answer = _wait_final(Message.objects.get(pk=answer.pk))
        body = answer_data(answer, absolute=request.build_absolute_uri)
        if answer.problem == Message.Problem.BUDGET_EXHAUSTED:
            raise budget_refusal(answer)
        if answer.problem == Message.Problem.PROVIDERS_DOWN:
            raise ServiceUnavailable(
                "Every language model is unavailable right now.", retry_after=30,
                extra={"answer": answer.content, "message_id": answer.pk},
            )  # fmt: skip
        response = Response(body)
        for name, value in _standing_headers(request).items():
            response[name] = value
        return response

    def _answer_for(self, request: Request, data: dict[str, Any], key: str) -> Message:
        """The pending answer to generate (or, for a repeated idempotency key, the first)."""
        if key:
            existing = _idempotent_answer(request, key)
            if existing is not None:
                return existing
            # Two identical requests at once: one creates, the other waits for it.
            lock = f"cairn:api-idempotency:{sorted(request_account_ids(request))}:{key}"
            if not cache.add(lock, 1, timeout=30):
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    time.sleep(0.1)
                    if (existing := _idempotent_answer(request, key)) is not None:
                        return existing
                raise Conflict("A request with this Idempotency-Key is in progress.")
        api_key = request_api_key(request)
        try:
            with transaction.atomic():
                if data.get("conversation_id"):
                    conversation = (
                        _conversations(request).filter(pk=data["conversation_id"]).first()
                    )
                    if conversation is None:
                        raise NotFound("No such conversation.")
                    _, answer = question_ask(
                        conversation=conversation, text=data["question"], idempotency_key=key
                    )
                    return answer
                _, answer = conversation_start(
                    user_id=None if api_key else request.user.pk,
                    api_key_id=api_key.pk if api_key else None,
                    knowledge_base=_knowledge_base(request, data.get("knowledge_base")),
                    text=data["question"],
                    idempotency_key=key,
                )
                return answer
        except QuestionRejected as exc:
            raise ApplicationError(str(exc), code="invalid_question") from exc

    def _stream(self, request: Request, answer: Message) -> StreamingHttpResponse:
        absolute = request.build_absolute_uri

        def final(message_id: int) -> dict[str, Any]:
            return answer_data(Message.objects.get(pk=message_id), absolute=absolute)

        async def events() -> AsyncIterator[str]:
            stream = answer_stream_events(message_id=answer.pk, heartbeat=SSE_HEARTBEAT_SECONDS)
            async for item in stream:
                if isinstance(item, Heartbeat):
                    yield ": heartbeat\n\n"
                elif isinstance(item, Token):
                    yield sse("token", {"text": item.text})
                elif isinstance(item, Finished):
                    body = await sync_to_async(closing_connection(final))(item.message_id)
                    for citation in body["citations"]:
                        yield sse("citation", citation)
                    yield sse("usage", body["usage"])
                    if (code := _FAILURE_CODES.get(body["problem"])) is not None:
                        message = body["answer"] or body["problem"]
                        yield sse("error", error_body(code, message))
                    yield sse("done", body)

        response = event_stream_response(events())
        for name, value in _standing_headers(request).items():  # before this answer's cost
            response[name] = value
        # Django would keep this request thread's connection until the stream ends: one
        # idle PostgreSQL connection per open stream (200 streams: past max_connections).
        connection.close()
        return response


def _standing_headers(request: Request) -> dict[str, str]:
    api_key = request_api_key(request)
    account_ids = request_account_ids(request, scope=ApiKey.Scope.ANSWER)
    if api_key is None and len(account_ids) != 1:
        return {}  # a session user of several accounts: per answer, not per request
    account_id = api_key.account_id if api_key else next(iter(account_ids))
    return budget_headers(
        budget_standing(account_id=account_id, user_id=None if api_key else request.user.pk)
    )


class ConversationListApi(APIView):
    required_scope = ApiKey.Scope.READ

    @extend_schema(
        operation_id="conversations_list",
        responses={200: ConversationOutputSerializer(many=True), **error_responses()},
    )
    def get(self, request: Request) -> Response:
        conversations = _conversations(request).order_by("-updated_at", "-id")[:200]
        return Response(ConversationOutputSerializer(conversations, many=True).data)


class ConversationMessagesApi(APIView):
    required_scope = ApiKey.Scope.READ

    @extend_schema(
        operation_id="conversation_messages",
        responses={200: MessageOutputSerializer(many=True), **error_responses(404)},
    )
    def get(self, request: Request, conversation_id: int) -> Response:
        conversation = _conversations(request).filter(pk=conversation_id).first()
        if conversation is None:
            raise NotFound("No such conversation.")
        messages = conversation.messages.filter(superseded=False).prefetch_related("citations")
        return Response(MessageOutputSerializer(messages, many=True).data)


class FeedbackCreateApi(APIView):
    required_scope = ApiKey.Scope.ANSWER

    class InputSerializer(serializers.Serializer):
        rating = serializers.ChoiceField(choices=Feedback.Rating.choices)
        comment = serializers.CharField(required=False, allow_blank=True, max_length=4000)

    class OutputSerializer(serializers.Serializer):
        message_id = serializers.IntegerField()
        rating = serializers.CharField()
        comment = serializers.CharField(allow_blank=True)

    @extend_schema(
        operation_id="feedback_create",
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 404, 409)},
    )
    def post(self, request: Request, message_id: int) -> Response:
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        message = Message.objects.filter(
            pk=message_id, conversation__in=_conversations(request)
        ).first()
        if message is None:
            raise NotFound("No such message.")
        api_key = request_api_key(request)
        try:
            feedback = feedback_give(
                message=message,
                user_id=None if api_key else request.user.pk,
                api_key_id=api_key.pk if api_key else None,
                **payload.validated_data,
            )
        except FeedbackRejected as exc:
            raise Conflict(str(exc)) from exc
        return Response(
            {"message_id": message.pk, "rating": feedback.rating, "comment": feedback.comment}
        )
