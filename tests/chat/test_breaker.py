"""Circuit breakers: closed → open → half-open, with state shared between processes."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from django.core.cache import caches

from llm.breaker import CircuitBreaker
from tests.support.processes import REPO_ROOT, manage_env

TEST_REDIS = "redis://127.0.0.1:6379/14"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, key: str | None = None) -> CircuitBreaker:
    return CircuitBreaker(
        key or uuid.uuid4().hex,
        threshold=3,
        cooldown_seconds=30,
        cache=caches["default"],
        clock=clock,
    )


def test_it_opens_after_the_threshold_of_consecutive_failures() -> None:
    clock = Clock()
    b = breaker(clock)

    b.record_failure()
    b.record_failure()
    assert b.state() == "closed" and b.allow()
    b.record_failure()

    assert b.state() == "open" and not b.allow()


def test_a_success_resets_the_failure_count() -> None:
    clock = Clock()
    b = breaker(clock)
    b.record_failure()
    b.record_failure()

    b.record_success()
    b.record_failure()
    b.record_failure()

    assert b.state() == "closed"


def test_after_the_cool_down_one_probe_passes_and_decides() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.record_failure()

    clock.now += 31
    assert b.state() == "half_open"
    assert b.allow() is True
    assert b.allow() is False, "only one probe at a time"

    b.record_failure()  # the probe failed: open again for a full cool-down
    assert b.state() == "open"
    clock.now += 31
    assert b.allow()
    b.record_success()  # the probe succeeded
    assert b.state() == "closed" and b.allow()


@pytest.fixture
def redis_cache(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": TEST_REDIS,
            "KEY_PREFIX": "cairn",
        }
    }
    yield caches["default"]


OTHER_PROCESS = """
import django, sys
django.setup()
from llm.breaker import CircuitBreaker
b = CircuitBreaker(sys.argv[1], threshold=3, cooldown_seconds=30)
if sys.argv[2] == "fail":
    for _ in range(3):
        b.record_failure()
print(b.state())
"""


def other_process(key: str, action: str) -> str:
    env = manage_env(REDIS_URL=TEST_REDIS, DJANGO_SETTINGS_MODULE="config.settings")
    done = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS, key, action],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


def test_state_is_shared_between_processes_through_redis(redis_cache) -> None:
    key = f"openai:gpt-test-{uuid.uuid4().hex[:6]}"
    here = CircuitBreaker(key, threshold=3, cooldown_seconds=30)

    # Given another web process that saw the provider fail three times
    assert other_process(key, "fail") == "open"

    # Then this process does not call it either
    assert here.state() == "open" and not here.allow()

    # And when this process sees it recover, the other one knows
    here.record_success()
    assert other_process(key, "look") == "closed"
