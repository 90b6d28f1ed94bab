"""Provider failures, classified once so that retry and fallback logic stays generic."""

from __future__ import annotations

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


class ProviderError(Exception):
    """A provider call failed.

    ``retryable``: the same call may succeed later (429, 5xx, 529, connection
    errors, first-token timeouts). ``retry_after``: seconds the provider asked us
    to wait, if it said. ``error_class`` is a short stable name for the ledger.
    """

    def __init__(
        self,
        message: str,
        *,
        error_class: str,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


class FirstTokenTimeout(ProviderError):
    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"no first token within {seconds:g} s",
            error_class="first_token_timeout",
            retryable=True,
        )


def error_class_for_status(status: int) -> str:
    if status == 429:
        return "rate_limited"
    if status == 529:
        return "overloaded"
    if status >= 500:
        return "server_error"
    if status in (401, 403):
        return "auth_error"
    if status == 400:
        return "bad_request"
    return f"http_{status}"
