"""Sliding-window counters: at most the rate in any span of the window, wherever it starts,
window boundaries included; the wait they give is the wait that works."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.support.clock import MIDNIGHT, HandClock, hand_clock_install
from tests.support.processes import REPO_ROOT, manage_env
from web.sliding_window import SLICES, Rate, window_hit

TEST_REDIS = "redis://127.0.0.1:6379/13"

PER_MINUTE = Rate(limit=100, window=60)


@pytest.fixture
def hand_clock(monkeypatch) -> HandClock:
    return hand_clock_install(monkeypatch)


def hit(value: str = "203.0.113.8", rate: Rate = PER_MINUTE):
    return window_hit(group="test", value=value, rate=rate)


def test_a_burst_straddling_a_window_boundary_gets_no_more_than_the_rate(hand_clock) -> None:
    # 104 hits in the 10 s around a minute boundary: a fixed window let all 104 through
    passed = 0
    for i in range(104):
        hand_clock.at(MIDNIGHT + 60 - 5 + i * 10 / 104)
        passed += hit().allowed

    assert passed == 100


def test_no_span_of_the_window_ever_holds_more_than_the_rate(hand_clock) -> None:
    # Bursts of 60 hits in 1.5 s every 35 s for ten minutes, drifting across boundaries
    allowed: list[float] = []
    for burst in range(18):
        for i in range(60):
            hand_clock.at(MIDNIGHT + 58 + burst * 35 + i * 0.025)
            if hit().allowed:
                allowed.append(hand_clock.now)

    busiest = max(sum(1 for t in allowed if end - 60 < t <= end) for end in allowed)
    assert busiest == 100
    assert len(allowed) > 5 * 100  # the quota comes back as old hits leave the window


def test_the_wait_given_is_enough_and_not_more_than_a_slice_too_long(hand_clock) -> None:
    rate = Rate(limit=3, window=60)
    for _ in range(3):
        assert hit(rate=rate).allowed
    hand_clock.advance(20)

    refused = hit(rate=rate)
    hand_clock.advance(refused.retry_after)
    after_the_wait = hit(rate=rate)

    assert not refused.allowed
    assert 40 <= refused.retry_after <= 40 + 60 / SLICES  # the first three leave at 60 s
    assert after_the_wait.allowed


def test_refused_hits_count_so_knocking_keeps_the_door_shut(hand_clock) -> None:
    rate = Rate(limit=2, window=60)
    results = []
    for _ in range(10):  # one a minute... minus a second: always inside the last window
        results.append(hit(rate=rate).allowed)
        hand_clock.advance(30)

    assert results == [True, True] + [False] * 8


def test_each_value_and_group_counts_apart(hand_clock) -> None:
    rate = Rate(limit=1, window=60)

    first = hit("a", rate)
    other_value = hit("b", rate)
    other_group = window_hit(group="other", value="a", rate=rate)
    again = hit("a", rate)

    assert first.allowed and other_value.allowed and other_group.allowed
    assert not again.allowed


def test_values_need_not_make_valid_cache_keys(hand_clock) -> None:
    name = "user name with spaces\n" + "x" * 300  # a user name as typed into a form

    assert hit(name, Rate(limit=1, window=60)).allowed
    assert not hit(name, Rate(limit=1, window=60)).allowed


def test_concurrent_hits_in_one_process_pass_exactly_the_rate() -> None:
    rate = Rate(limit=50, window=3600)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: hit("shared", rate).allowed, range(200)))

    assert sum(results) == 50


HITS_IN_ANOTHER_PROCESS = """
import sys, time
import django
django.setup()
from web.sliding_window import Rate, window_hit
group, start = sys.argv[1], float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))  # every process starts hitting at once
rate = Rate(limit=30, window=3600)
print(sum(window_hit(group=group, value="shared", rate=rate).allowed for _ in range(25)))
"""


def test_concurrent_hits_from_several_processes_pass_exactly_the_rate_through_redis() -> None:
    group = f"test-{uuid.uuid4().hex[:8]}"
    start = str(time.time() + 8)  # after the slowest Django start-up
    env = manage_env(REDIS_URL=TEST_REDIS, DJANGO_SETTINGS_MODULE="config.settings")

    processes = [
        subprocess.Popen(
            [sys.executable, "-c", HITS_IN_ANOTHER_PROCESS, group, start],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(4)
    ]
    passed = [int(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in processes]

    assert sum(passed) == 30  # of 100 hits, the rate's worth, however they interleaved


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("10/m", Rate(10, 60)),
        ("100/5m", Rate(100, 300)),
        ("1000/h", Rate(1000, 3600)),
        ("5/d", Rate(5, 86400)),
        ("3/s", Rate(3, 1)),
        (" 20 / M ", Rate(20, 60)),
    ],
)
def test_rates_are_written_as_for_django_ratelimit(text, rate) -> None:
    assert Rate.parse(text) == rate


@pytest.mark.parametrize("text", ["10", "10/w", "ten/m", "10/0m", "/m"])
def test_a_malformed_rate_is_a_configuration_error(text) -> None:
    with pytest.raises(ImproperlyConfigured):
        Rate.parse(text)
