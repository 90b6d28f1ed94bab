"""The answer stream end to end: real ASGI server, real HTTP client, the official
OpenAI SDK inside talking to a fake OpenAI-compatible server on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx2
import pytest
from django.conf import settings as django_settings
from django.test import Client

from chat import streaming
from chat.models import Message
from chat.services.conversations import conversation_start
from llm.models import LlmCall
from tests.support.fake_llm import (
    Reply,
    SlowFirstToken,
    StreamError,
    fake_llm_routes,
)
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


def session_cookie(user) -> dict[str, str]:
    browser = Client()
    browser.force_login(user)
    return {
        django_settings.SESSION_COOKIE_NAME: browser.cookies[
            django_settings.SESSION_COOKIE_NAME
        ].value
    }


def session_for(user, cookies: dict[str, str] | None = None) -> httpx2.Client:
    return httpx2.Client(cookies=cookies or session_cookie(user), timeout=30)


def pending_answer(help_kb, staff, question="How much is the Growth plan?") -> Message:
    _, answer = conversation_start(user_id=staff.pk, knowledge_base=help_kb, text=question)
    return answer


def events(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """(event, data) pairs, and ("comment", text) for heartbeats, from SSE lines."""
    name, data = "message", []
    for line in lines:
        if line.startswith(":"):
            yield "comment", line[1:].strip()
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[6:] if line.startswith("data: ") else line[5:])
        elif line == "" and data:
            yield name, "\n".join(data)
            name, data = "message", []


def wait_until_final(message_id: int) -> Message:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        message = Message.objects.get(pk=message_id)
        if message.is_final:
            return message
        time.sleep(0.05)
    raise AssertionError(f"answer {message_id} never finished")


def test_the_first_token_reaches_the_client_while_the_provider_is_still_answering(
    help_kb, staff, fake_llm, live
) -> None:
    fake_llm.script(Reply(text=ANSWER, chunks=12, chunk_delay=0.15))
    answer = pending_answer(help_kb, staff)
    seen: list[tuple[str, str]] = []
    provider_busy_at_first_token = None

    with (
        session_for(staff) as client,
        client.stream("GET", f"{live.url}/chat/m/{answer.pk}/stream") as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-accel-buffering"] == "no"
        for event in events(response.iter_lines()):
            if event[0] == "token" and provider_busy_at_first_token is None:
                # Neither has the fake server finished writing, nor has the gateway
                # recorded the call (it does so when the call ends).
                provider_busy_at_first_token = fake_llm.streams_completed == 0 and not (
                    LlmCall.objects.filter(feature="answer").exists()
                )
            seen.append(event)

    assert provider_busy_at_first_token is True
    tokens = [data for name, data in seen if name == "token"]
    assert len(tokens) >= 6 and "".join(tokens) == ANSWER
    assert seen[-1][0] == "done" and 'class="cite"' in seen[-1][1]
    finished = Message.objects.get(pk=answer.pk)
    assert finished.status == "done" and finished.provider == "openai_compatible"
    assert finished.citations.filter(kind="cited").count() == 1


def test_a_client_that_goes_away_stops_the_provider_call_and_keeps_the_partial_answer(
    help_kb, staff, fake_llm, live
) -> None:
    fake_llm.script(Reply(text=ANSWER * 4, chunks=60, chunk_delay=0.1))
    answer = pending_answer(help_kb, staff)

    with (
        session_for(staff) as client,
        client.stream("GET", f"{live.url}/chat/m/{answer.pk}/stream") as response,
    ):
        received = 0
        for name, _ in events(response.iter_lines()):
            received += name == "token"
            if received == 3:
                break  # leaving the block closes the connection

    stopped = wait_until_final(answer.pk)
    assert stopped.status == "stopped"
    assert 0 < len(stopped.raw_content) < len(ANSWER * 4)
    assert fake_llm.client_disconnected.wait(5), "the provider call was never closed"
    assert fake_llm.streams_completed == 0
    assert (
        LlmCall.objects.get(request_id=stopped.request_id, feature="answer").status == "cancelled"
    )


def test_heartbeats_keep_a_waiting_stream_alive(help_kb, staff, fake_llm, live, settings) -> None:
    settings.CAIRN_SSE_HEARTBEAT_SECONDS = 0.05
    fake_llm.script(SlowFirstToken(0.6, then=Reply(text=ANSWER)))
    answer = pending_answer(help_kb, staff)

    with (
        session_for(staff) as client,
        client.stream("GET", f"{live.url}/chat/m/{answer.pk}/stream") as response,
    ):
        names = [name for name, _ in events(response.iter_lines())]

    first_token = names.index("token")
    assert "comment" in names[:first_token]
    assert names[-1] == "done"


def test_a_provider_failing_mid_answer_ends_the_stream_with_an_error_event(
    help_kb, staff, fake_llm, live
) -> None:
    fake_llm.script(StreamError(after_chunks=2, text=ANSWER, chunks=6))
    answer = pending_answer(help_kb, staff)

    with (
        session_for(staff) as client,
        client.stream("GET", f"{live.url}/chat/m/{answer.pk}/stream") as response,
    ):
        seen = list(events(response.iter_lines()))

    names = [name for name, _ in seen]
    assert names.count("token") >= 1
    assert names[-2:] == ["failed", "done"]
    assert "interrupted" in dict(seen)["failed"]
    failed = Message.objects.get(pk=answer.pk)
    assert failed.status == "failed" and failed.problem == "interrupted"


def test_a_second_stream_for_a_finished_answer_just_shows_it(
    help_kb, staff, fake_llm, live
) -> None:
    fake_llm.script(Reply(text=ANSWER))
    answer = pending_answer(help_kb, staff)
    with session_for(staff) as client:
        url = f"{live.url}/chat/m/{answer.pk}/stream"
        with client.stream("GET", url) as first:
            list(first.iter_lines())
        with client.stream("GET", url) as second:
            replay = [name for name, _ in events(second.iter_lines())]

    assert replay == ["done"]
    assert len(fake_llm.requests) == 1


def test_only_the_asker_may_open_an_answer_stream(help_kb, staff, live) -> None:
    from tests.factories import make_user

    answer = pending_answer(help_kb, staff)
    colleague = make_user(staff=False, account=help_kb.account, role="staff")
    url = f"{live.url}/chat/m/{answer.pk}/stream"

    assert httpx2.get(url, timeout=10).status_code == 403
    with session_for(colleague) as client:
        assert client.get(url).status_code == 404
    assert Message.objects.get(pk=answer.pk).status == "pending"


def test_many_open_streams_share_a_bounded_pool_of_generating_threads(
    help_kb, staff, fake_llm, live, settings
) -> None:
    """Twelve readers at once, two generation threads: the waiting streams hold no thread,
    and every answer still arrives."""
    settings.CAIRN_ANSWER_THREADS = 2
    streaming._executor()  # the pool of two, made now, so its threads can be told apart
    prefix = streaming.pool_thread_prefix()
    fake_llm.default = Reply(text=ANSWER, chunks=8, chunk_delay=0.05)
    answers = [
        pending_answer(help_kb, staff, f"How much is the Growth plan, take {i}?") for i in range(12)
    ]
    most_generating = 0
    finished: list[str] = []

    def read(answer: Message) -> None:
        with (
            session_for(staff) as client,
            client.stream("GET", f"{live.url}/chat/m/{answer.pk}/stream") as response,
        ):
            finished.extend(name for name, _ in events(response.iter_lines()) if name == "done")

    readers = [threading.Thread(target=read, args=(answer,)) for answer in answers]
    for reader in readers:
        reader.start()
    while any(reader.is_alive() for reader in readers):
        generating = [t for t in threading.enumerate() if t.name.startswith(prefix + "_")]
        most_generating = max(most_generating, len(generating))
        time.sleep(0.01)

    assert finished == ["done"] * 12
    assert most_generating <= 2
    assert Message.objects.filter(pk__in=[a.pk for a in answers], status="done").count() == 12
