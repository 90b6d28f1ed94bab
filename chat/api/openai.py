"""An OpenAI-compatible face on the knowledge bases: /v1/models and /v1/chat/completions.

The model name is a knowledge base slug, so any OpenAI client (Open WebUI, LibreChat,
the ``openai`` SDK) chats with a knowledge base. The last user message is the
question and the earlier turns are its history; system messages are ignored (the
answer prompt is Cairn's own). The earlier turns are the client's own text, "assistant"
ones included: a request is capped (CAIRN_API_MAX_MESSAGES, CAIRN_API_MAX_HISTORY_TOKENS:
400 ``too_many_messages`` / ``history_too_long``), and what of it reaches the prompt goes
through the account's injection guard (400 ``invalid_history`` when it blocks). Answers
are the same grounded, cited, checked ones as everywhere else: citations come as a
"Sources" block appended to the content and as an extra ``citations`` field, the checked
sentences (``[{text, citations, supported}]``) as an extra ``sentences`` field (on the
response, or on the final chunk of a stream). Content carries no HTML
(chat.answering.markup). Each call is kept as an API conversation.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet
from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.answering.context import Turn
from chat.answering.history import HistoryRejected, history_guard, history_limit_check
from chat.answering.markup import markdown_text_safe
from chat.answering.questions import QuestionRejected
from chat.api.limits import question_rate_check
from chat.api.serializers import answer_data
from chat.api.views import budget_refusal
from chat.models import Message
from chat.services.answers import Finished, Token, answer_stream
from chat.services.conversations import conversation_start
from chat.streaming import Heartbeat, Relay, closing_connection, event_stream_response
from kb.api.auth import request_account_ids, request_api_key
from kb.models import ApiKey, KnowledgeBase
from web.api_errors import ApplicationError, ServiceUnavailable
from web.api_schema import ERROR_HEADERS, error_responses

UNVERIFIED_NOTE = "(Cairn could not verify the answer above against the knowledge base.)"


def _knowledge_bases(request: Request) -> QuerySet[KnowledgeBase]:
    return KnowledgeBase.objects.filter(
        account_id__in=request_account_ids(request, scope=ApiKey.Scope.ANSWER)
    ).select_related("account")


def _split(messages: list[dict[str, Any]]) -> tuple[str, tuple[Turn, ...], list[str]]:
    """(the question, the earlier user/assistant turns, the texts of every earlier user and
    assistant message), from OpenAI-style messages."""
    chat = [(m["role"], _text(m.get("content"))) for m in messages
            if m.get("role") in ("user", "assistant")]  # fmt: skip
    if not chat or chat[-1][0] != "user":
        raise ApplicationError("The last message must be the user's question.", code="invalid")
    turns: list[Turn] = []
    pending_question: str | None = None
    for role, text in chat[:-1]:
        if role == "user":
            pending_question = text
        elif pending_question is not None:
            turns.append(Turn(pending_question, text))
            pending_question = None
    return chat[-1][1], tuple(turns), [text for _, text in chat[:-1]]


def _history_checked(
    messages: list[dict[str, Any]], knowledge_base: KnowledgeBase
) -> tuple[str, tuple[Turn, ...]]:
    """(the question, the history that may reach the prompt): within the request caps, and
    through the account's injection guard (chat.answering.history). Raises a 400."""
    try:
        question, turns, earlier = _split(messages)
        history_limit_check(message_count=len(messages), texts=earlier)
        account = knowledge_base.account
        history = history_guard(turns, action=account.injection_action, account_id=account.pk)
    except HistoryRejected as exc:
        raise ApplicationError(str(exc), code=exc.code) from exc
    return question, history


def _text(content: Any) -> str:
    """OpenAI content: a string, or a list of parts of which the text parts count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", "")) for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )  # fmt: skip
    return ""


def sources_block(body: dict[str, Any], *, streamed: bool = False) -> str:
    """What is appended to the answer's content: the checked citations, as a list.

    A streamed answer was shown before the citation check; if the check found nothing
    in it supported, the reader is told so (a non-streamed one is simply the abstention).
    """
    lines = []
    checked_away = body["status"] == Message.Status.ABSTAINED and body["answer"] != body.get(
        "raw_answer"
    )
    if streamed and checked_away:
        lines.append(UNVERIFIED_NOTE)
    for citation in body["citations"]:
        title = " › ".join(p for p in (citation["document_title"], citation["heading_path"]) if p)
        # Titles and sections come from documents: no markup in them either.
        lines.append(f"[{citation['n']}] {markdown_text_safe(title)} — {citation['url']}")
    if not lines:
        return ""
    heading = "Sources:" if body["citations"] else ""
    return "\n\n" + "\n".join(([heading] if heading else []) + lines)


def _usage(body: dict[str, Any]) -> dict[str, int]:
    usage = body["usage"]
    return {
        "prompt_tokens": usage["input_tokens"],
        "completion_tokens": usage["output_tokens"],
        "total_tokens": usage["input_tokens"] + usage["output_tokens"],
    }


class ModelListApi(APIView):
    required_scope = ApiKey.Scope.ANSWER

    @extend_schema(
        operation_id="openai_models_list",
        responses={200: OpenApiTypes.OBJECT, **error_responses()},
        parameters=[*ERROR_HEADERS],
    )
    def get(self, request: Request) -> Response:
        return Response(
            {
                "object": "list",
                "data": [
                    {
                        "id": kb.slug,
                        "object": "model",
                        "created": int(kb.created_at.timestamp()),
                        "owned_by": kb.account.slug,
                        "name": kb.name,
                    }
                    for kb in _knowledge_bases(request).order_by("slug")
                ],
            }
        )


class ChatCompletionCreateApi(APIView):
    required_scope = ApiKey.Scope.ANSWER

    class InputSerializer(serializers.Serializer):
        model = serializers.CharField(help_text="A knowledge base slug (GET /v1/models).")
        messages = serializers.ListField(child=serializers.DictField(), min_length=1)
        stream = serializers.BooleanField(required=False, default=False)
        stream_options = serializers.DictField(required=False)

    @extend_schema(
        operation_id="openai_chat_completions",
        request=InputSerializer,
        responses={200: OpenApiTypes.OBJECT, **error_responses(400, 404, 503)},
        parameters=[*ERROR_HEADERS],
    )
    def post(self, request: Request) -> HttpResponse | StreamingHttpResponse:
        question_rate_check(request)
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        knowledge_base = _knowledge_bases(request).filter(slug=data["model"]).first()
        if knowledge_base is None:
            raise NotFound(f"The model {data['model']!r} does not exist (GET /v1/models).")
        question, history = _history_checked(data["messages"], knowledge_base)
        api_key = request_api_key(request)
        try:
            _, answer = conversation_start(
                user_id=None if api_key else request.user.pk,
                api_key_id=api_key.pk if api_key else None,
                knowledge_base=knowledge_base,
                text=question,
            )
        except QuestionRejected as exc:
            raise ApplicationError(str(exc), code="invalid_question") from exc
        include_usage = bool((data.get("stream_options") or {}).get("include_usage"))
        if data["stream"]:
            return self._stream(request, answer, history, knowledge_base.slug, include_usage)
        for _ in answer_stream(message_id=answer.pk, cancelled=lambda: False, history=history):
            pass
        body = self._body(request, answer.pk)
        if body["problem"] == Message.Problem.BUDGET_EXHAUSTED:
            raise budget_refusal(Message.objects.get(pk=answer.pk))
        if body["problem"] == Message.Problem.PROVIDERS_DOWN:
            raise ServiceUnavailable(
                "Every language model is unavailable right now.", retry_after=30,
                extra={"answer": body["answer"]},
            )  # fmt: skip
        return Response(
            {
                "id": f"chatcmpl-{answer.pk}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": knowledge_base.slug,
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": body["answer"] + sources_block(body),
                        },
                        "finish_reason": "stop",
                    }
                ],
                "usage": _usage(body),
                "citations": body["citations"],
                "sentences": body["sentences"],
            }
        )

    @staticmethod
    def _body(request: Request, message_id: int) -> dict[str, Any]:
        message = Message.objects.get(pk=message_id)
        body = answer_data(message, absolute=request.build_absolute_uri)
        body["raw_answer"] = message.raw_content
        return body

    def _stream(
        self, request: Request, answer: Message, history: tuple[Turn, ...], model: str,
        include_usage: bool,
    ) -> StreamingHttpResponse:  # fmt: skip
        relay = Relay(
            lambda cancelled: answer_stream(
                message_id=answer.pk, cancelled=cancelled, history=history
            )
        )
        created = int(time.time())
        completion_id = f"chatcmpl-{answer.pk}"

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            data = {
                "id": completion_id, "object": "chat.completion.chunk", "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **extra,
            }  # fmt: skip
            return f"data: {json.dumps(data, cls=DjangoJSONEncoder)}\n\n"

        async def events() -> AsyncIterator[str]:
            yield chunk({"role": "assistant", "content": ""})
            async for item in relay.events(heartbeat=15.0):
                if isinstance(item, Heartbeat):
                    yield ": keep-alive\n\n"
                elif isinstance(item, Token):
                    yield chunk({"content": item.text})
                elif isinstance(item, Finished):
                    body = await sync_to_async(closing_connection(self._body))(
                        request, item.message_id
                    )
                    tail = sources_block(body, streamed=True)
                    if tail:
                        yield chunk({"content": tail})
                    yield chunk(
                        {}, "stop", citations=body["citations"], sentences=body["sentences"]
                    )
                    if include_usage:
                        usage = {
                            "id": completion_id, "object": "chat.completion.chunk",
                            "created": created, "model": model, "choices": [],
                            "usage": _usage(body),
                        }  # fmt: skip
                        yield f"data: {json.dumps(usage)}\n\n"
            yield "data: [DONE]\n\n"

        response = event_stream_response(events())
        return response
