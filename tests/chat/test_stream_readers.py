"""Extra readers of one answer hold no generation thread: only the stream that claims an
answer takes a pool thread; every other connection to it (a reconnecting browser, a
second tab, another server's client) waits on the event loop for the answer to be
final. Real ASGI server on loopback, real HTTP clients, the fake model streaming slowly
enough that every reader connects while its answer is still being written."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType

import httpx2
import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone

from chat import streaming
from chat.models import Message
from chat.services.conversations import conversation_start
from tests.support.fake_llm import Reply, fake_llm_routes
from tests.support.live_server import running_asgi_server

pytestmark = pytest.mark.django_db(transaction=True)

ANSWER = "The Growth plan costs $59 per month or $590 per year [1]. It includes five users [1]."


@pytest.fixture
def fake_llm(settings) -> Iterator:
    with fake_llm_routes(settings) as server:
        yield server


@pytest.fixture
def live():
    with running_asgi_server() as server:
        yield server


@pytest.fixture
def roomy_pool(settings) -> str:
    """A pool far larger than the answers, so that only the code decides how many of its
    threads are used; the name prefix of its threads."""
    settings.CAIRN_ANSWER_THREADS = 64
    streaming._executor()  # made now, so that its threads can be told from an older pool's
    return streaming.pool_thread_prefix() + "_"


def session_cookies(user) -> dict[str, str]:
    browser = Client()
    browser.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    return {name: browser.cookies[name].value}


def event_names(response: httpx2.Response) -> list[str]:
    return [line[6:].strip() for line in response.iter_lines() if line.startswith("event:")]


def pool_threads(prefix: str) -> int:
    """The pool's threads serving a stream now (idle ones wait for work in the executor)."""
    frames = sys._current_frames()

    def serving(frame: FrameType | None) -> bool:
        while frame is not None:
            if frame.f_code is streaming.Relay._run.__code__:
                return True
            frame = frame.f_back
        return False

    return sum(
        1
        for thread in threading.enumerate()
        if thread.name.startswith(prefix) and serving(frames.get(thread.ident or 0))
    )


def read_concurrently(urls: list[str], cookies: dict[str, str], prefix: str) -> tuple[list, int]:
    """Read every URL's stream at once; (each stream's event names, most pool threads seen)."""
    results: list[list[str]] = [[] for _ in urls]

    def read(index: int) -> None:
        with (
            httpx2.Client(cookies=cookies, timeout=60) as client,
            client.stream("GET", urls[index]) as response,
        ):
            results[index] = event_names(response)

    readers = [threading.Thread(target=read, args=(i,)) for i in range(len(urls))]
    for reader in readers:
        reader.start()
    most = 0
    while any(reader.is_alive() for reader in readers):
        most = max(most, pool_threads(prefix))
        time.sleep(0.01)
    return results, max(most, pool_threads(prefix))


def test_forty_connections_to_four_answers_hold_at_most_four_pool_threads(
    help_kb, staff, fake_llm, live, roomy_pool
) -> None:
    fake_llm.default = Reply(text=ANSWER, chunks=20, chunk_delay=0.1)  # about 2 s an answer
    answers = [
        conversation_start(
            user_id=staff.pk, knowledge_base=help_kb, text=f"How much is Growth, take {i}?"
        )[1]
        for i in range(4)
    ]
    urls = [f"{live.url}/chat/m/{answers[i % 4].pk}/stream" for i in range(40)]

    results, most_threads = read_concurrently(urls, session_cookies(staff), roomy_pool)

    assert all(names[-1:] == ["done"] for names in results)
    assert most_threads <= 4
    assert len(fake_llm.requests) == 4  # each answer generated once, by the stream claiming it
    final = Message.objects.filter(pk__in=[a.pk for a in answers], status="done")
    assert final.count() == 4


def test_readers_of_an_answer_another_server_is_writing_wait_for_it_without_a_thread(
    help_kb, staff, live, roomy_pool
) -> None:
    """The answer was claimed elsewhere (another web process or server): nothing here
    can signal its end but the database row."""
    _, answer = conversation_start(user_id=staff.pk, knowledge_base=help_kb, text="Refunds?")
    Message.objects.filter(pk=answer.pk).update(status="streaming", progress_at=timezone.now())
    urls = [f"{live.url}/chat/m/{answer.pk}/stream"] * 10

    def finish_elsewhere() -> None:
        time.sleep(1.5)
        Message.objects.filter(pk=answer.pk).update(
            status="done",
            content="Annual plans are refunded pro rata.",
            completed_at=timezone.now(),
        )

    other_server = threading.Thread(target=finish_elsewhere)
    other_server.start()
    results, most_threads = read_concurrently(urls, session_cookies(staff), roomy_pool)
    other_server.join()

    assert results == [["done"]] * 10
    assert most_threads == 0
