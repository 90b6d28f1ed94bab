"""The question rate limit of the API: the chat's CAIRN_CHAT_RATE_LIMIT, per API key or
per user, answered with 429 and Retry-After (budgets, per account, come on top)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import get_usage
from rest_framework.request import Request

from config.api_errors import RateLimited
from kb.api.auth import request_api_key


def question_rate_check(request: Request) -> None:
    """Count one question for the caller; RateLimited (429) when over the rate."""
    api_key = request_api_key(request)
    who = f"key:{api_key.pk}" if api_key else f"user:{request.user.pk}"

    def key(group: str, _request: HttpRequest) -> str:
        return who

    usage = get_usage(
        request._request, group="chat.questions", key=key,  # noqa: SLF001 — Django's request
        rate=settings.CAIRN_CHAT_RATE_LIMIT, method=["POST"], increment=True,
    )  # fmt: skip
    if usage is not None and usage["should_limit"]:
        raise RateLimited(
            "Too many questions in a short time; retry after the time given.",
            retry_after=max(1, int(usage["time_left"])),
        )
