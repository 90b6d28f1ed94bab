"""A clock for the sliding-window rate counters that tests move by hand (no sleeping)."""

from __future__ import annotations

import pytest

from web import sliding_window

DAY = 86400
MIDNIGHT = 20_000 * DAY  # a day's start, so also a minute's and an hour's


class HandClock:
    """Seconds since the epoch, moved only by ``at`` and ``advance``."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def at(self, now: float) -> None:
        self.now = now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def hand_clock_install(monkeypatch: pytest.MonkeyPatch) -> HandClock:
    """Make the rate counters read a hand clock, starting at ``MIDNIGHT``, for one test."""
    clock = HandClock(float(MIDNIGHT))
    monkeypatch.setattr(sliding_window, "clock", clock)
    return clock
