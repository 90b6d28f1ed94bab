"""Rate limits: the one place that decides whether a question may be asked, or a sign-in
attempted, now.

Sliding-window counters (web/sliding_window.py) in Django's cache, so no burst gets
more than the rate through by straddling a window boundary. Questions: per user
(CAIRN_CHAT_RATE_LIMIT), per API key (CAIRN_API_KEY_RATE_LIMIT) and per client address
(CAIRN_IP_RATE_LIMIT). Sign-ins, on the site's page and the admin's alike: per address and
user name, per address, and per user name. The cache is Redis in production, so every web
process shares the counters; in the embedded mode it is the memory of the one web process,
which is exact because there is only one.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest

from web.client_address import client_address
from web.sliding_window import Rate, window_hit

IPV6_PREFIX = 64  # one client usually holds a whole /64: count it as one address

_Counter = tuple[str, str, str]  # which counter, the value it counts for, its rate

_WHAT = {
    "login": "Too many sign-in attempts",
    "user": "Too many questions in a short time",
    "api_key": "Too many questions with this API key in a short time",
    "ip": "Too many questions from this address in a short time",
}


@dataclass(frozen=True)
class LimitExceeded:
    """A question or sign-in refused: which limit (``user``, ``api_key``, ``ip`` or
    ``login``) and the whole seconds until a retry would pass (at least 1)."""

    limit: str
    retry_after: int

    @property
    def message(self) -> str:
        unit = "second" if self.retry_after == 1 else "seconds"
        return f"{_WHAT[self.limit]}. Try again in {self.retry_after} {unit}."


def client_ip(request: HttpRequest) -> str:
    """The client's address (web.client_address: the Nth X-Forwarded-For entry from
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
    not, so a client hammering keeps being refused until it has been quiet long enough
    for its oldest questions to leave the window. When several limits are exceeded the
    longest wait is returned: retrying earlier would fail again. An empty rate setting
    turns its limit off.
    """
    counters: list[_Counter] = []
    if user_id is not None:
        counters.append(("user", f"user:{user_id}", settings.CAIRN_CHAT_RATE_LIMIT))
    if api_key_id is not None:
        counters.append(("api_key", f"key:{api_key_id}", settings.CAIRN_API_KEY_RATE_LIMIT))
    address = client_ip(request)
    if address:
        counters.append(("ip", f"ip:{_ip_key(address)}", settings.CAIRN_IP_RATE_LIMIT))
    return _counters_hit(counters, group="chat.questions", limit=None)


def login_attempt_check(*, request: HttpRequest, username: str) -> LimitExceeded | None:
    """Count one sign-in attempt, on whichever sign-in page, and say whether it may go on.

    Three limits: per address and user name, the tight one (CAIRN_LOGIN_RATE_LIMIT); per
    address, whatever the user names (CAIRN_LOGIN_IP_RATE_LIMIT); per user name, from
    every address together (CAIRN_LOGIN_USER_RATE_LIMIT). An attempt refused by either
    of the address's limits does not count for the user name, so one address hammering
    an account is stopped there and never locks its owner out elsewhere: the user name's
    count grows by at most the tight rate per address. User names count without case or
    surrounding spaces. An empty rate turns its limit off.
    """
    name = username.strip().casefold()
    address = client_ip(request)
    by_address: list[_Counter] = []
    if address:
        where = _ip_key(address)
        by_address.append(("address_user", f"{where} {name}", settings.CAIRN_LOGIN_RATE_LIMIT))
        by_address.append(("address", where, settings.CAIRN_LOGIN_IP_RATE_LIMIT))
    exceeded = _counters_hit(by_address, group="login", limit="login")
    if exceeded is None:
        by_name: list[_Counter] = [("user", name, settings.CAIRN_LOGIN_USER_RATE_LIMIT)]
        exceeded = _counters_hit(by_name, group="login", limit="login")
    return exceeded


def _counters_hit(
    counters: list[_Counter], *, group: str, limit: str | None
) -> LimitExceeded | None:
    """Count one hit on each counter (an empty rate: none); the longest wait of those
    over their rate, as the refusal of ``limit`` (None: of the counter itself)."""
    exceeded: LimitExceeded | None = None
    for counter, value, rate in counters:
        if not rate:
            continue
        hit = window_hit(group=f"{group}.{counter}", value=value, rate=Rate.parse(rate))
        if hit.allowed:
            continue
        wait = max(1, math.ceil(hit.retry_after))
        if exceeded is None or wait > exceeded.retry_after:
            exceeded = LimitExceeded(limit=limit or counter, retry_after=wait)
    return exceeded
