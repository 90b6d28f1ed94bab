"""Answers survive a crash: an answer whose web process dies mid-stream is failed by the
reaper (Celery beat), its budget hold settled at what the ledger says was spent, and it can
be regenerated; a live answer keeps its claim, and a process that wakes up after its answer
was reaped does not bring it back."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import httpx2
import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from chat.models import Budget, BudgetReservation, BudgetWindow, Message
from chat.presentation import PROBLEM_TEXTS
from chat.services.answers import Finished, Token, answer_estimate, answer_stream
from chat.services.budgets import budget_reserve
from chat.services.conversations import conversation_start
from chat.services.recovery import ABANDONED_TEXT, answers_reap
from chat.tasks import answers_reap_task
from llm.models import LlmCall
from llm.routing import classify_question
from tests.support.api import api_client
from tests.support.fake_llm import Reply, SlowFirstToken, fake_llm_routes
from tests.support.web_process import WebProcess
from tests.support.worker import Worker, redis_queue, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "How much does the Growth plan cost per month?"
ABANDONED = Message.Problem.ABANDONED


def estimate() -> int:
    return answer_estimate(QUESTION, classify_question(QUESTION))["tokens"]


def pending_answer(help_kb, staff) -> Message:
    _, answer = conversation_start(user_id=staff.pk, knowledge_base=help_kb, text=QUESTION)
    return answer


def window() -> BudgetWindow:
    return BudgetWindow.objects.get()


def ledger_tokens(request_ids: list[str]) -> int:
    rows = LlmCall.objects.filter(request_id__in=request_ids)
    return sum(row.input_tokens + row.output_tokens for row in rows)


def first_token(lines: Iterator[str]) -> str:
    """Read an SSE stream up to its first ``token`` event; return that event's data."""
    event = ""
    for line in lines:
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:") and event == "token":
            return line[5:].strip()
    raise AssertionError("the stream ended before its first token")


def both_failed() -> list[Message] | None:
    failed = list(Message.objects.filter(role="assistant", status="failed"))
    return failed if len(failed) == 2 else None


def test_answers_whose_web_server_is_killed_mid_stream_are_failed_released_and_regenerated(
    help_kb, staff, tmp_path
) -> None:
    # Given an account budget that two answers' worst-case holds nearly fill
    Budget.objects.create(account=help_kb.account, period="day", token_cap=estimate() * 5 // 2)
    chat_answer = pending_answer(help_kb, staff)
    api, _, key = api_client(help_kb.account, ["answer", "read"])
    browser = Client()
    browser.force_login(staff)
    cookie = django_settings.SESSION_COOKIE_NAME
    session = {cookie: browser.cookies[cookie].value}
    recovery = {"CAIRN_ANSWER_STALE_SECONDS": "3", "CAIRN_ANSWER_REAPER_INTERVAL_SECONDS": "1"}

    with redis_queue() as queue:
        worker = Worker(queue, tmp_path / "worker.log", **recovery)
        # A word a second: the answers are still being written when the server dies.
        web = WebProcess(
            tmp_path / "web.log", CAIRN_TASK_QUEUE=queue, CAIRN_EXTRACTIVE_TOKEN_DELAY_MS="1000",
            CAIRN_LLM_REQUEST_TIMEOUT="600", CAIRN_LLM_CALL_TIMEOUT="600",  # (paced within)
            **recovery,
        ).start()  # fmt: skip
        try:
            # When one chat stream and one API stream are mid-answer on it…
            with (
                httpx2.stream(
                    "GET", f"{web.url}{reverse('chat:stream', args=[chat_answer.pk])}",
                    cookies=session, timeout=60,
                ) as chat_stream,
                httpx2.stream(
                    "POST", f"{web.url}/api/v1/answers",
                    json={"question": QUESTION, "stream": True},
                    headers={"Authorization": f"Bearer {key}"}, timeout=60,
                ) as api_stream,
            ):  # fmt: skip
                # (the line iterators are kept: one collected would close its stream)
                chat_lines, api_lines = chat_stream.iter_lines(), api_stream.iter_lines()
                first_token(chat_lines)
                first_token(api_lines)
                being_written = Message.objects.filter(role="assistant", status="streaming")
                assert being_written.count() == 2
                assert window().tokens_reserved == 2 * estimate(), "both holds taken"
                # …and the web server is killed
                web.kill()

            # Then the reaper, on its beat (its worker starts after the crash, so that it
            # cannot have taken a live answer for a dead one), fails both
            worker.start(beat=True)
            answers = wait_for(
                both_failed, timeout=90, what="the reaper to fail both answers", log=worker.log
            )
        finally:
            web.kill()
            worker.stop()

    assert {a.problem for a in answers} == {ABANDONED}
    assert {a.content for a in answers} == {ABANDONED_TEXT}
    # Every hold is settled at what the ledger says was spent: nothing stays reserved
    request_ids = [a.request_id for a in answers]
    assert all(request_ids)
    assert not BudgetReservation.objects.filter(settled_at__isnull=True).exists()
    assert window().tokens_reserved == 0
    assert window().tokens_spent == ledger_tokens(request_ids)

    # The chat shows why, and its Regenerate asks again and is answered
    page = browser.get(reverse("chat:conversation", args=[chat_answer.conversation_id]))
    assert PROBLEM_TEXTS[ABANDONED] in page.content.decode()
    regenerated = browser.post(reverse("chat:regenerate", args=[chat_answer.pk]))
    assert regenerated.status_code == 302
    again = Message.objects.get(question_id=chat_answer.question_id, superseded=False)
    assert again.pk != chat_answer.pk and again.status == "pending"
    events = list(answer_stream(message_id=again.pk, cancelled=lambda: False))
    assert isinstance(events[-1], Finished)
    assert Message.objects.get(pk=again.pk).status == "done"

    # The API shows the failed answer with its reason, and asking again there is answered
    api_answer = next(a for a in answers if a.pk != chat_answer.pk)
    listed = api.get(f"/api/v1/conversations/{api_answer.conversation_id}/messages").json()
    shown = next(m for m in listed if m["id"] == api_answer.pk)
    assert (shown["status"], shown["problem"], shown["content"]) == (
        "failed", "abandoned", ABANDONED_TEXT,
    )  # fmt: skip
    asked = api.post(
        "/api/v1/answers",
        {"question": QUESTION, "conversation_id": api_answer.conversation_id},
        format="json",
    )
    assert asked.status_code == 200, asked.content
    assert asked.json()["status"] == "done"


def test_a_live_answer_keeps_stamping_its_progress_so_the_reaper_leaves_it(
    help_kb, staff, settings
) -> None:
    settings.CAIRN_ANSWER_STALE_SECONDS = 1  # a stamp every 0.25 s
    settings.CAIRN_EXTRACTIVE_TOKEN_DELAY_MS = 60
    answer = pending_answer(help_kb, staff)
    stream = answer_stream(message_id=answer.pk, cancelled=lambda: False)
    assert isinstance(next(stream), Token)
    assert Message.objects.get(pk=answer.pk).progress_at is not None, "stamped on claim"

    # When it has been silent (as far as the database knows) for an hour…
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Message.objects.filter(pk=answer.pk).update(progress_at=an_hour_ago)
    # …but keeps writing
    refreshed = False
    for event in stream:
        assert isinstance(event, Token), "the answer ended before stamping its progress"
        stamped = Message.objects.get(pk=answer.pk).progress_at
        if stamped is not None and stamped > an_hour_ago:
            refreshed = True
            break
    assert refreshed

    # Then a reaper with a minute's patience leaves it alone, and it finishes normally
    assert answer.pk not in answers_reap(stale_seconds=60).failed
    list(stream)
    assert Message.objects.get(pk=answer.pk).status == "done"


def test_an_answer_silent_before_its_first_token_is_kept_alive_by_its_process(
    help_kb, staff, settings
) -> None:
    # Given a model that thinks for a while before its first token
    settings.CAIRN_ANSWER_STALE_SECONDS = 1  # its process stamps it every 0.25 s
    settings.CAIRN_LLM_FIRST_TOKEN_TIMEOUT = settings.CAIRN_LLM_CALL_TIMEOUT = 30
    answer = pending_answer(help_kb, staff)
    events: list[object] = []
    with fake_llm_routes(settings) as server:
        server.script(SlowFirstToken(seconds=8, then=Reply(text="It costs $59 [1].")))
        writer = threading.Thread(
            target=lambda: events.extend(
                answer_stream(message_id=answer.pk, cancelled=lambda: False)
            )
        )
        writer.start()
        wait_for(lambda: Message.objects.get(pk=answer.pk).status == "streaming",
                 timeout=30, what="the claim")  # fmt: skip

        # When, before any token, the database thinks it has been silent for an hour
        an_hour_ago = timezone.now() - timedelta(hours=1)
        Message.objects.filter(pk=answer.pk).update(progress_at=an_hour_ago)

        def stamped_again() -> bool:
            stamp = Message.objects.get(pk=answer.pk).progress_at
            return stamp is not None and stamp > an_hour_ago

        wait_for(stamped_again, timeout=6, what="the process's next stamp")

        # Then its process's stamp says otherwise, and the reaper leaves it alone
        assert not events, "no token yet"
        assert answer.pk not in answers_reap(stale_seconds=60).failed
        writer.join(timeout=60)
    assert Message.objects.get(pk=answer.pk).status != "failed"


def test_a_process_that_wakes_up_after_its_answer_was_reaped_does_not_bring_it_back(
    help_kb, staff, settings
) -> None:
    settings.CAIRN_ANSWER_STALE_SECONDS = 1
    settings.CAIRN_EXTRACTIVE_TOKEN_DELAY_MS = 60
    Budget.objects.create(account=help_kb.account, period="day", token_cap=estimate() * 10)
    answer = pending_answer(help_kb, staff)
    stream = answer_stream(message_id=answer.pk, cancelled=lambda: False)
    next(stream)

    # When the reaper fails the answer while its process is paused…
    assert answers_reap(stale_seconds=0).failed == [answer.pk]
    # …and the process carries on
    rest = list(stream)

    # Then the reaper's verdict stands: no text, citations or status come back
    assert isinstance(rest[-1], Finished)
    reaped = Message.objects.get(pk=answer.pk)
    assert (reaped.status, reaped.problem, reaped.content) == ("failed", ABANDONED, ABANDONED_TEXT)
    assert not reaped.citations.exists()
    # and its hold was settled once, at what the ledger says was spent
    reservation = BudgetReservation.objects.get(request_id=reaped.request_id)
    assert reservation.settled_at is not None
    assert window().tokens_reserved == 0
    assert window().tokens_spent == reservation.settled_tokens
    assert reservation.settled_tokens <= ledger_tokens([reaped.request_id])


def _abandoned(help_kb, staff, *, request_id: str, silent_for: timedelta) -> Message:
    answer = pending_answer(help_kb, staff)
    Message.objects.filter(pk=answer.pk).update(
        status="streaming", request_id=request_id, progress_at=timezone.now() - silent_for
    )
    return Message.objects.get(pk=answer.pk)


def test_the_hold_is_settled_at_what_the_ledger_says_was_spent(help_kb, staff) -> None:
    # Given an answer that had spent 150 tokens and a cent when its process died
    Budget.objects.create(account=help_kb.account, period="day", token_cap=100_000)
    dead = _abandoned(help_kb, staff, request_id="dead-1", silent_for=timedelta(minutes=10))
    budget_reserve(account_id=help_kb.account_id, user_id=staff.pk, request_id="dead-1",
                   tokens=5000, cost=Decimal("0.5"))  # fmt: skip
    for tokens_in, tokens_out, cost in ((100, 0, "0.001"), (20, 30, "0.009")):
        LlmCall.objects.create(
            request_id="dead-1", feature="answer", provider="p", model="m", status="interrupted",
            input_tokens=tokens_in, output_tokens=tokens_out, cost=Decimal(cost),
        )  # fmt: skip

    # When the reaper runs (twice: it is idempotent)
    first, second = answers_reap(), answers_reap()

    # Then the hold is replaced by the spend, and the answer records it
    assert (first.failed, first.settled) == ([dead.pk], ["dead-1"])
    assert (second.failed, second.settled) == ([], [])
    spent = window()
    assert (spent.tokens_reserved, spent.cost_reserved) == (0, Decimal(0))
    assert (spent.tokens_spent, spent.cost_spent) == (150, Decimal("0.01"))
    dead.refresh_from_db()
    assert (dead.input_tokens, dead.output_tokens, dead.cost) == (120, 30, Decimal("0.01"))


def test_only_unfinished_answers_silent_for_the_stale_time_are_reaped(
    help_kb, staff, settings
) -> None:
    settings.CAIRN_ANSWER_STALE_SECONDS = 120
    long_ago = timezone.now() - timedelta(minutes=5)
    never_started = pending_answer(help_kb, staff)  # its stream was never opened
    Message.objects.filter(pk=never_started.pk).update(created_at=long_ago)
    silent = _abandoned(help_kb, staff, request_id="silent", silent_for=timedelta(minutes=3))
    live = _abandoned(help_kb, staff, request_id="live", silent_for=timedelta(seconds=10))
    just_asked = pending_answer(help_kb, staff)
    finished = pending_answer(help_kb, staff)
    Message.objects.filter(pk=finished.pk).update(status="done", created_at=long_ago)

    reaped = answers_reap_task.apply().get()

    assert reaped == {"failed": 2, "settled": 0}  # neither had taken a hold
    statuses = dict(Message.objects.filter(role="assistant").values_list("pk", "status"))
    assert statuses == {
        never_started.pk: "failed", silent.pk: "failed", live.pk: "streaming",
        just_asked.pk: "pending", finished.pk: "done",
    }  # fmt: skip
    beat = django_settings.CELERY_BEAT_SCHEDULE["reap-abandoned-answers"]
    assert beat["task"] == answers_reap_task.name


def test_reapers_running_at_once_fail_and_settle_each_answer_once(help_kb, staff) -> None:
    Budget.objects.create(account=help_kb.account, period="day", token_cap=100_000)
    dead = []
    for n in range(8):
        request_id = f"dead-{n}"
        dead.append(
            _abandoned(help_kb, staff, request_id=request_id, silent_for=timedelta(hours=1))
        )
        budget_reserve(account_id=help_kb.account_id, user_id=staff.pk, request_id=request_id,
                       tokens=1000, cost=Decimal(0))  # fmt: skip
        LlmCall.objects.create(request_id=request_id, feature="answer", provider="p", model="m",
                               status="interrupted", input_tokens=10)  # fmt: skip
    results = []
    start = threading.Barrier(3)

    def reap() -> None:
        try:
            start.wait()
            results.append(answers_reap())
        finally:
            connection.close()

    threads = [threading.Thread(target=reap) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    failed = [pk for result in results for pk in result.failed]
    settled = [rid for result in results for rid in result.settled]
    assert len(results) == 3
    assert sorted(failed) == sorted(m.pk for m in dead), "each answer failed exactly once"
    assert sorted(settled) == sorted(m.request_id for m in dead), "each hold settled once"
    assert (window().tokens_reserved, window().tokens_spent) == (0, 80)
