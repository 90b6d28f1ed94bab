"""Chat pages and htmx endpoints: thin, each parses input, calls one service or selector,
and renders. The answer stream itself is in chat/sse.py."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from chat.answering.questions import QuestionRejected
from chat.models import Conversation, Message
from chat.ratelimits import question_limits_check
from chat.selectors.budgets import budget_standing
from chat.selectors.conversations import (
    conversation_for_user,
    conversation_messages,
    conversations_for_user,
    knowledge_base_for_user,
    knowledge_bases_for_user,
    message_for_user,
)
from chat.services import conversations as conversation_services
from chat.services.answers import answer_budget_check, answer_stream
from chat.services.answers import answer_regenerate as regenerate
from chat.services.answers import answer_stop as stop
from chat.services.feedback import FeedbackRejected
from chat.services.feedback import feedback_give as give_feedback

RECENT_CONVERSATIONS = 50


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _page_context(request: HtmxHttpRequest, **extra: object) -> dict[str, object]:
    knowledge_bases = list(knowledge_bases_for_user(user=request.user))
    conversation = extra.get("conversation")
    account_id = (
        conversation.account_id
        if isinstance(conversation, Conversation)
        else (knowledge_bases[0].account_id if knowledge_bases else None)
    )
    return {
        "conversations": conversations_for_user(user=request.user)[:RECENT_CONVERSATIONS],
        "knowledge_bases": knowledge_bases,
        "max_question_chars": settings.CAIRN_MAX_QUESTION_CHARS,
        "budget": None
        if account_id is None
        else budget_standing(account_id=account_id, user_id=request.user.pk),
        **extra,
    }


def _composer_error(
    request: HtmxHttpRequest, error: str, status: int, template: str
) -> HttpResponse:
    """The form again with its error: in place for htmx, the whole page otherwise."""
    if request.htmx:
        response = render(request, "chat/_composer_error.html", {"error": error}, status=status)
        response["HX-Retarget"] = "#composer-error"
        response["HX-Reswap"] = "innerHTML"
        return response
    return render(request, template, _page_context(request, error=error), status=status)


@login_required
@require_GET
def home(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "chat/home.html", _page_context(request))


@login_required
@require_POST
def conversation_start(request: HtmxHttpRequest) -> HttpResponse:
    if exceeded := question_limits_check(request=request, user_id=request.user.pk):
        error = _composer_error(request, exceeded.message, 429, "chat/home.html")
        return _retry_after(error, exceeded.retry_after)
    try:
        knowledge_base_id = int(request.POST.get("knowledge_base", ""))
    except ValueError:
        return _composer_error(request, "Choose a knowledge base.", 400, "chat/home.html")
    knowledge_base = knowledge_base_for_user(user=request.user, knowledge_base_id=knowledge_base_id)
    if refused := answer_budget_check(
        account_id=knowledge_base.account_id, user_id=request.user.pk,
        question=request.POST.get("question", ""),
    ):  # fmt: skip
        error = _composer_error(request, str(refused), 429, "chat/home.html")
        return _retry_after(error, refused.retry_after)
    try:
        conversation, _ = conversation_services.conversation_start(
            user_id=int(request.user.pk or 0), knowledge_base=knowledge_base,
            text=request.POST.get("question", ""),
        )  # fmt: skip
    except QuestionRejected as exc:
        return _composer_error(request, str(exc), 400, "chat/home.html")
    url = reverse("chat:conversation", args=[conversation.pk])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@login_required
@require_GET
def conversation_detail(request: HtmxHttpRequest, conversation_id: int) -> HttpResponse:
    conversation = conversation_for_user(user=request.user, conversation_id=conversation_id)
    return render(request, "chat/conversation.html", _conversation_context(request, conversation))


def _conversation_context(
    request: HtmxHttpRequest, conversation: Conversation
) -> dict[str, object]:
    return _page_context(
        request,
        conversation=conversation,
        messages=conversation_messages(conversation=conversation, user=request.user),
    )


@login_required
@require_POST
def question_ask(request: HtmxHttpRequest, conversation_id: int) -> HttpResponse:
    conversation = conversation_for_user(user=request.user, conversation_id=conversation_id)
    if exceeded := question_limits_check(request=request, user_id=request.user.pk):
        error = _conversation_error(request, conversation, exceeded.message, 429)
        return _retry_after(error, exceeded.retry_after)
    if refused := answer_budget_check(
        account_id=conversation.account_id, user_id=request.user.pk,
        question=request.POST.get("question", ""),
    ):  # fmt: skip
        error = _conversation_error(request, conversation, str(refused), 429)
        return _retry_after(error, refused.retry_after)
    try:
        asked, answer = conversation_services.question_ask(
            conversation=conversation, text=request.POST.get("question", "")
        )
    except QuestionRejected as exc:
        return _conversation_error(request, conversation, str(exc), 400)
    if not request.htmx:
        return redirect(reverse("chat:conversation", args=[conversation.pk]))
    return render(request, "chat/conversation.html#exchange", {"asked": asked, "answer": answer})


def _retry_after(response: HttpResponse, seconds: int) -> HttpResponse:
    response["Retry-After"] = str(seconds)
    return response


def _conversation_error(
    request: HtmxHttpRequest, conversation: Conversation, error: str, status: int
) -> HttpResponse:
    if request.htmx:
        return _composer_error(request, error, status, "chat/conversation.html")
    context = _conversation_context(request, conversation)
    return render(request, "chat/conversation.html", {**context, "error": error}, status=status)


@login_required
@require_GET
def message_detail(request: HtmxHttpRequest, message_id: int) -> HttpResponse:
    """One message. Without JavaScript, following the placeholder's link waits for the
    answer here and then shows it in its conversation."""
    message = message_for_user(user=request.user, message_id=message_id)
    if request.htmx:
        return render(request, "chat/conversation.html#message", {"message": message})
    if message.role == Message.Role.ASSISTANT and not message.is_final:
        for _ in answer_stream(message_id=message.pk, cancelled=lambda: False):
            pass
    url = reverse("chat:conversation", args=[message.conversation_id])
    return redirect(f"{url}#message-{message.pk}")


@login_required
@require_POST
def answer_stop(request: HtmxHttpRequest, message_id: int) -> HttpResponse:
    stop(message=message_for_user(user=request.user, message_id=message_id))
    return HttpResponse(status=204)


@login_required
@require_POST
def answer_regenerate(request: HtmxHttpRequest, message_id: int) -> HttpResponse:
    message = message_for_user(user=request.user, message_id=message_id)
    try:
        answer = regenerate(message=message)
    except ValueError:
        return HttpResponse("Only a finished answer can be regenerated.", status=409)
    if not request.htmx:
        return redirect(reverse("chat:conversation", args=[message.conversation_id]))
    return render(request, "chat/conversation.html#message", {"message": answer})


@login_required
@require_POST
def feedback_give(request: HtmxHttpRequest, message_id: int) -> HttpResponse:
    message = message_for_user(user=request.user, message_id=message_id)
    error = ""
    try:
        give_feedback(
            message=message, user_id=int(request.user.pk or 0),
            rating=request.POST.get("rating", ""), comment=request.POST.get("comment", ""),
        )  # fmt: skip
    except FeedbackRejected as exc:
        error = str(exc)
    message = message_for_user(user=request.user, message_id=message_id)  # fresh feedback
    if not request.htmx:
        url = reverse("chat:conversation", args=[message.conversation_id])
        return redirect(f"{url}#message-{message.pk}")
    return render(
        request,
        "chat/conversation.html#feedback",
        {"message": message, "feedback_error": error, "ask_comment": not error},
        status=400 if error else 200,
    )
