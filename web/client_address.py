"""The address a request came from, honouring ``CAIRN_TRUSTED_PROXIES`` reverse proxies.

The one rule for the audit log and the rate limits (``chat.ratelimits.client_ip``):
each proxy appends the address it was called from to X-Forwarded-For, so with N proxies
the client is the Nth entry from the right; anything further left was written by the
client and is ignored, so a made-up entry never changes the answer.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str | None:
    """The client's IP address, or None when none is known or it is not an address.

    With 0 proxies, or a header shorter than N or unreadable there, it is REMOTE_ADDR
    (empty for a Unix socket without a proxy header, hence None).
    """
    remote = _valid(request.META.get("REMOTE_ADDR") or "")
    proxies = max(0, int(settings.CAIRN_TRUSTED_PROXIES))
    if proxies == 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if len(forwarded) < proxies:
        return remote
    return _valid(forwarded[-proxies]) or remote


def _valid(candidate: str) -> str | None:
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None
