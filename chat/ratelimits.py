"""Question rate limits: the one place that decides whether a question may be asked now.

Three fixed-window counters (django-ratelimit) in Django's cache: per user
(CAIRN_CHAT_RATE_LIMIT), per API key (CAIRN_API_KEY_RATE_LIMIT) and per client address
(CAIRN_IP_RATE_LIMIT). The cache is Redis in production, so every web process shares the
counters; in the embedded mode it is the memory of the one web process, which is exact
because there is only one.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import get_usage

from config.client_address import client_address

IPV6_PREFIX = 64  # one client usually holds a whole /64: count it as one address

_WHAT = {
    "login": "Too many sign-in attempts",
    "user": "Too many questions in a short time",
    "api_key": "Too many questions with this API key in a short time",
    "ip": "Too many questions from this address in a short time",
}


@dataclass(frozen=True)
class LimitExceeded:
    """A question refused: which limit (``user``, ``api_key`` or ``ip``) and the whole
    seconds until its window resets (at least 1)."""

    limit: str
    retry_after: int

    @property
    def message(self) -> str:
        unit = "second" if self.retry_after == 1 else "seconds"
        return f"{_WHAT[self.limit]}. Try again in {self.retry_after} {unit}."


def client_ip(request: HttpRequest) -> str:
    """The client's address (config.client_address: the Nth X-Forwarded-For entry from
    the right behind ``CAIRN_TRUSTED_PROXIES`` proxies), else REMOTE_ADDR as given;
    empty when no address is known (a Unix socket without a proxy header)."""
    address = client_address(request)
    return address if address is not None else request.META.get("REMOTE_ADDR") or ""


def _ip_key(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/{IPV6_PREFIX}", strict=False).network_address)
    return str(ip)


def question_limits_check(
    *, request: HttpRequest, user_id: int | None, api_key_id: int | None = None
) -> LimitExceeded | None:
    """Count one question against every limit that applies and say whether it may go on.

    The user limit applies to a signed-in person, the key limit to a call with an API
    key, the address limit to both. Each applicable counter goes up once, refused or
    not, so a client hammering keeps being refused until the window ends. When several
    limits are exceeded the longest wait is returned: retrying earlier would fail again.
    An empty rate setting turns its limit off.
    """
    counters: list[tuple[str, str, str]] = []
    if user_id is not None:
        counters.append(("user", f"user:{user_id}", settings.CAIRN_CHAT_RATE_LIMIT))
    if api_key_id is not None:
        counters.append(("api_key", f"key:{api_key_id}", settings.CAIRN_API_KEY_RATE_LIMIT))
    address = client_ip(request)
    if address:
        counters.append(("ip", f"ip:{_ip_key(address)}", settings.CAIRN_IP_RATE_LIMIT))

    exceeded: LimitExceeded | None = None
    for limit, value, rate in counters:
        if not rate:
            continue
        usage = get_usage(
            request, group=f"chat.questions.{limit}", key=lambda _group, _request, v=value: v,
            rate=rate, increment=True,
        )  # fmt: skip
        if usage is None or not usage["should_limit"]:
            continue
        wait = max(1, int(usage["time_left"]))
        if exceeded is None or wait > exceeded.retry_after:
            exceeded = LimitExceeded(limit=limit, retry_after=wait)
    return exceeded


def login_attempt_check(*, request: HttpRequest, username: str) -> LimitExceeded | None:
    """Count one sign-in attempt per client address and per user name
    (CAIRN_LOGIN_RATE_LIMIT each), so neither one address guessing many passwords nor
    many addresses guessing one account's get far."""
    rate = settings.CAIRN_LOGIN_RATE_LIMIT
    if not rate:
        return None
    exceeded: LimitExceeded | None = None
    keys = [f"user:{username.strip().casefold()}"]
    if address := client_ip(request):
        keys.append(f"ip:{_ip_key(address)}")
    for value in keys:
        usage = get_usage(
            request, group="login", key=lambda _group, _request, v=value: v,
            rate=rate, increment=True,
        )  # fmt: skip
        if usage is not None and usage["should_limit"]:
            wait = max(1, int(usage["time_left"]))
            if exceeded is None or wait > exceeded.retry_after:
                exceeded = LimitExceeded(limit="login", retry_after=wait)
    return exceeded
