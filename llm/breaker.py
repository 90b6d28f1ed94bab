"""Circuit breakers per provider and model, with their state in the shared cache.

closed → (threshold consecutive failures) → open → (cool-down passes) → half-open:
one probe call at a time is let through; its success closes the breaker, its
failure opens it again. The state lives in Django's cache — Redis in
production — so a second web process does not hammer a provider the first one
already saw fail.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from django.core.cache import BaseCache, caches

BreakerState = Literal["closed", "open", "half_open"]
_PREFIX = "cairn:breaker:"


class CircuitBreaker:
    def __init__(
        self,
        key: str,
        *,
        threshold: int,
        cooldown_seconds: float,
        cache: BaseCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.threshold = max(threshold, 1)
        self.cooldown = cooldown_seconds
        self._cache = cache or caches["default"]
        self._clock = clock
        self._failures = f"{_PREFIX}{key}:failures"
        self._open_until = f"{_PREFIX}{key}:open_until"
        self._probe = f"{_PREFIX}{key}:probe"

    @property
    def _ttl(self) -> int:
        # Long enough to outlive a cool-down; short enough that a breaker forgotten by
        # every process eventually resets itself.
        return int(max(self.cooldown * 10, 60))

    def state(self) -> BreakerState:
        open_until = self._cache.get(self._open_until)
        if open_until is None:
            return "closed"
        return "open" if self._clock() < float(open_until) else "half_open"

    def allow(self) -> bool:
        """May a call go to this provider now? In half-open, only one caller gets a yes."""
        state = self.state()
        if state == "closed":
            return True
        if state == "open":
            return False
        return bool(self._cache.add(self._probe, 1, timeout=int(max(self.cooldown, 1))))

    def record_success(self) -> None:
        self._cache.delete_many([self._failures, self._open_until, self._probe])

    def record_failure(self) -> None:
        if self.state() == "half_open":
            self._open()
            return
        self._cache.add(self._failures, 0, timeout=self._ttl)
        try:
            failures = self._cache.incr(self._failures)
        except ValueError:  # expired between add and incr
            self._cache.set(self._failures, 1, timeout=self._ttl)
            failures = 1
        if failures >= self.threshold:
            self._open()

    def _open(self) -> None:
        self._cache.set(self._open_until, self._clock() + self.cooldown, timeout=self._ttl)
        self._cache.delete_many([self._failures, self._probe])
