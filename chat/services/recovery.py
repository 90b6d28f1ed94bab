"""Answers whose process died mid-stream: the reaper fails them and frees their budget holds.

An answer is written by the web process that claimed it (``answer_stream``); that process
stamps ``Message.progress_at`` when it claims the answer and then every few seconds, from
one thread for all the answers it is writing, for as long as it lives. A process killed
mid-answer (SIGKILL, out of memory, a forced restart) leaves the answer ``streaming`` and
its budget hold reserved; the reaper, run by Celery beat, fails every answer without a
sign of life for CAIRN_ANSWER_STALE_SECONDS, settles its hold at what the ledger says was
really spent, and so lets it be regenerated.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper, Sum
from django.db.models.functions import Coalesce, Now
from django.utils import timezone

from chat.models import Message
from chat.services.budgets import budget_settle
from llm.models import LlmCall

logger = logging.getLogger(__name__)

ABANDONED_TEXT = (
    "This answer was lost: the server writing it stopped (a restart or a crash) before it "
    "finished. Regenerate it to ask again."
)
HEARTBEAT_MAX_SECONDS = 5.0


def answer_heartbeat_seconds() -> float:
    """How often a live process stamps its answers: often enough that a few missed stamps
    are still far from CAIRN_ANSWER_STALE_SECONDS, and at most every 5 s."""
    return min(HEARTBEAT_MAX_SECONDS, settings.CAIRN_ANSWER_STALE_SECONDS / 4)


class _Heartbeat:
    """The answers this process is writing, and a daemon thread that stamps their
    ``progress_at`` every answer_heartbeat_seconds(): one UPDATE for all of them.

    The sign of life is the process's, not the tokens': a model thinking before its first
    token, or a CPU busy with ten retrievals at once, is no reason to reap. The stamp skips
    rows another transaction holds (SKIP LOCKED), so it never waits on anyone.
    """

    def __init__(self) -> None:
        self._writing: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextmanager
    def writing(self, message_id: int) -> Iterator[None]:
        with self._lock:
            self._writing[message_id] += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="cairn-answer-heartbeat", daemon=True
                )
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._writing[message_id] -= 1
                if self._writing[message_id] <= 0:
                    del self._writing[message_id]

    def _run(self) -> None:
        while True:
            time.sleep(answer_heartbeat_seconds())
            with self._lock:
                ids = list(self._writing)
            if not ids:
                continue
            try:
                with transaction.atomic():
                    alive = Message.objects.select_for_update(skip_locked=True).filter(
                        pk__in=ids, status=Message.Status.STREAMING
                    )
                    stamped = Message.objects.filter(pk__in=alive.values("pk"))
                    stamped.update(progress_at=Now())  # the database's clock, as the reaper's
            except Exception:
                logger.exception("answer heartbeat: could not stamp %s", ids)
            finally:
                connection.close()  # not held between stamps


answer_heartbeat = _Heartbeat()


@dataclass
class AnswerReapResult:
    failed: list[int] = field(default_factory=list)  # answers marked abandoned
    settled: list[str] = field(default_factory=list)  # request ids whose holds were settled


def answer_spent(*, request_id: str) -> tuple[int, int, Decimal]:
    """(input tokens, output tokens, cost) of the ledger rows of ``request_id``."""
    if not request_id:
        return 0, 0, Decimal(0)
    usage = LlmCall.objects.filter(request_id=request_id).aggregate(
        input_tokens=Sum("input_tokens"), output_tokens=Sum("output_tokens"), cost=Sum("cost")
    )
    return usage["input_tokens"] or 0, usage["output_tokens"] or 0, usage["cost"] or Decimal(0)


def answers_reap(*, stale_seconds: int | None = None) -> AnswerReapResult:
    """Fail the answers whose process stopped; settle their holds from the ledger.

    Abandoned means: ``pending`` or ``streaming`` with no sign of life (``progress_at``,
    else ``created_at``) for ``stale_seconds``. Each becomes ``failed`` with the problem
    ``abandoned`` and a sentence saying so; what its ledger rows cost replaces its hold
    (nothing spent: the hold is released). Runs periodically (Celery beat); safe to run
    anywhere, any number of times at once: rows are claimed with SKIP LOCKED, and a live
    process's heartbeat, a conditional UPDATE on the same row, either lands first (the
    answer is no longer stale) or finds the answer failed and stops generating.
    """
    stale_seconds = settings.CAIRN_ANSWER_STALE_SECONDS if stale_seconds is None else stale_seconds
    now = timezone.now()
    # The database's clock, as the stamps': web and worker hosts' clocks may disagree.
    cutoff = ExpressionWrapper(
        Now() - timedelta(seconds=stale_seconds), output_field=DateTimeField()
    )
    result = AnswerReapResult()
    with transaction.atomic():
        abandoned = (
            Message.objects.select_for_update(skip_locked=True)
            .filter(role=Message.Role.ASSISTANT, status__in=Message.UNFINISHED_STATUSES)
            .alias(last_sign_of_life=Coalesce("progress_at", "created_at"))
            .filter(last_sign_of_life__lt=cutoff)
            .order_by("pk")
        )
        for message in abandoned:
            input_tokens, output_tokens, cost = answer_spent(request_id=message.request_id)
            message.status = Message.Status.FAILED
            message.problem = Message.Problem.ABANDONED
            message.content = ABANDONED_TEXT
            message.input_tokens, message.output_tokens, message.cost = (
                input_tokens,
                output_tokens,
                cost,
            )
            message.completed_at = now
            message.save(
                update_fields=[
                    "status", "problem", "content", "input_tokens", "output_tokens", "cost",
                    "completed_at",
                ]
            )  # fmt: skip
            result.failed.append(message.pk)
            if message.request_id and budget_settle(
                request_id=message.request_id, tokens=input_tokens + output_tokens, cost=cost
            ):
                result.settled.append(message.request_id)
    if result.failed:
        logger.warning(
            "answer reaper: failed %s abandoned answer(s) %s, settled %s hold(s)",
            len(result.failed), result.failed, len(result.settled),
        )  # fmt: skip
    return result
