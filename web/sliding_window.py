"""Sliding-window rate counters in Django's cache: never more than the rate in any span of
the rate's window, wherever that span starts.

A fixed window (what django-ratelimit counts) starts its count over at each boundary, so a
burst that straddles one gets about twice the rate through. Here the window is cut into
``SLICES`` slices, each a counter of its own; a hit counts in the current slice and is
judged against the sum of the slices that overlap the last window. The oldest of those is
counted whole although part of it is already older than the window, so the count errs
towards refusing: the effective window is between the rate's window and one slice longer,
never shorter.

Atomic enough over several processes: the current slice goes up with ``cache.add`` and
``cache.incr`` (SET NX and INCR on Redis), and each hit is judged by the value its own
increment returned, so of N concurrent hits exactly as many pass as the rate has room for.
The older slices no longer change. The local-memory cache increments under its lock; the
database cache does not, which only matters with several processes.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

SLICES = 10  # the window's resolution: the window may run up to a tenth longer than its rate

# The clock the counters read, in seconds since the epoch. Tests set it to walk a burst
# across a window boundary without sleeping.
clock: Callable[[], float] = time.time

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Rate:
    """``limit`` hits per ``window`` seconds."""

    limit: int
    window: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        """django-ratelimit's rate syntax: ``10/m``, ``100/5m``, ``1000/h``, ``5/d``."""
        match = _RATE.match(text)
        if match is None:
            raise ImproperlyConfigured(
                f"Rate {text!r} is not of the form <count>/<unit> (unit s, m, h or d, "
                "optionally with a multiple: 100/5m)."
            )
        count, multiple, unit = match.groups()
        window = int(multiple or 1) * _UNIT_SECONDS[unit.lower()]
        if window <= 0:
            raise ImproperlyConfigured(f"Rate {text!r} has an empty window.")
        return cls(limit=int(count), window=window)


@dataclass(frozen=True)
class WindowCount:
    """One hit counted: the hits in the window with it, and whether it is over the rate.
    ``retry_after`` is the seconds until one more hit would pass (0 when this one did)."""

    count: int
    allowed: bool
    retry_after: float


def _slice_key(group: str, value: str, rate: Rate, index: int) -> str:
    # Hashed: the value may be a user name, which must not shape the cache key
    # (length, spaces, control characters) nor be readable in the cache.
    digest = hashlib.sha256(value.encode()).hexdigest()[:32]
    return f"sliding:{group}:{rate.window}:{digest}:{index}"


def _increment(key: str, timeout: int) -> int:
    cache.add(key, 0, timeout)
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr: this hit is its first
        cache.add(key, 1, timeout)
        return 1


def window_hit(*, group: str, value: str, rate: Rate) -> WindowCount:
    """Count one hit for ``value`` in ``group`` and judge it against ``rate``.

    Every hit counts, refused or not, so a client that keeps knocking keeps being refused
    until it has been quiet long enough (``retry_after``). ``retry_after`` assumes no
    other hits meanwhile; it is exact for the slices, at most a slice longer than a
    perfect sliding log would say.
    """
    now = clock()
    width = rate.window / SLICES
    current = math.floor(now / width)
    timeout = math.ceil(rate.window + 2 * width) + 1
    indices = range(current - SLICES, current)
    keys = {index: _slice_key(group, value, rate, index) for index in indices}
    own = _increment(_slice_key(group, value, rate, current), timeout)
    stored = cache.get_many(list(keys.values()))
    counts = [(index, int(stored.get(keys[index], 0))) for index in indices]
    counts.append((current, own))
    total = sum(count for _, count in counts)
    if total <= rate.limit:
        return WindowCount(count=total, allowed=True, retry_after=0.0)
    return WindowCount(count=total, allowed=False, retry_after=_wait(counts, rate, now, width))


def _wait(counts: list[tuple[int, int]], rate: Rate, now: float, width: float) -> float:
    """Seconds until enough of the oldest slices have left the window for one more hit."""
    if rate.limit <= 0:
        return float(rate.window)
    to_leave = sum(count for _, count in counts) + 1 - rate.limit
    left = 0
    for index, count in counts:  # oldest first
        left += count
        if left >= to_leave:
            # slice ``index`` stops counting once the current slice is index + SLICES + 1
            return max(0.0, (index + SLICES + 1) * width - now)
    return float(rate.window)  # not reached: all slices leaving always makes room
