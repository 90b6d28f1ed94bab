"""The question rate limits of the API (decided in chat/ratelimits.py), answered with 429
and Retry-After in the API's error shape (budgets, per account, come on top)."""

from __future__ import annotations

from rest_framework.request import Request

from chat.ratelimits import question_limits_check
from kb.api.auth import request_api_key
from web.api_errors import RateLimited


def question_rate_check(request: Request) -> None:
    """Count one question for the caller (its API key, or its session's user, and its
    address); RateLimited (429) when a limit is exceeded."""
    api_key = request_api_key(request)
    exceeded = question_limits_check(
        request=request._request,  # noqa: SLF001 — Django's request, for its META
        user_id=None if api_key else request.user.pk,
        api_key_id=api_key.pk if api_key else None,
    )
    if exceeded is not None:
        raise RateLimited(exceeded.message, retry_after=exceeded.retry_after)
