"""Retention: the text of old questions and answers is removed, the usage figures stay.

What is removed, field by field (everything else is kept):

* ``Message.content``, ``Message.raw_content`` and ``Message.sentences`` (the question,
  the checked answer, the answer as the model streamed it, the checked answer's
  sentences): blanked; ``purged_at`` is set so pages and the API say the text was
  removed under the retention policy instead of showing nothing.
  Kept: role, question link, status, problem, superseded, route, provider, model,
  cached, prompt version, request id, tokens, cost, timings, retry_at, the injection
  score and flag (numbers, not text), and the idempotency key (the client's own token).
* Unfinished answers (``pending``/``streaming`` at the cutoff: abandoned long ago)
  become ``stopped``, or their page would start generating an answer to a question
  that is no longer there.
* ``Citation.excerpt`` (the copy of the cited passage): blanked. Kept: document and
  chunk links, document title, section, number, kind, support score — the knowledge
  base's own metadata, which still says which sources answers relied on.
* ``Feedback.comment``: blanked. Kept: the rating and who gave it.
* ``Conversation.title`` (always the first words of a question): blanked on every
  conversation with a message purged now, so the page falls back to
  "Conversation <id>". A later question titles it again, and that title goes when
  that question does.
* ``SemanticCacheEntry`` rows (a question, its answer and the question's embedding)
  created before the cutoff: deleted. The exact answer cache lives in the Django cache
  for ``CAIRN_ANSWER_CACHE_TTL`` seconds only.
* Not touched: ``LlmCall`` (the ledger holds no text), ``Budget``, ``BudgetWindow``,
  ``BudgetReservation`` (figures only), ``LlmRoute``.

Every write is a bulk UPDATE (or DELETE) on a batch of ids: messages are claimed
``WHERE purged_at IS NULL`` (rows locked elsewhere are skipped, not waited for), the
other tables only where text is left. So a run can stop anywhere, run again, or run
beside another, and each change is counted once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from chat.models import Citation, Conversation, Feedback, Message
from chat.selectors.retention import UNFINISHED, PurgeReport
from llm.models import SemanticCacheEntry

logger = logging.getLogger("cairn.retention")

BATCH_SIZE = 500


def retention_cutoff(*, days: int | None = None, now: datetime | None = None) -> datetime | None:
    """The moment before which text is removed: ``days`` (default CAIRN_RETENTION_DAYS)
    before ``now``; None when the policy keeps everything (0 days)."""
    days = settings.CAIRN_RETENTION_DAYS if days is None else days
    if days <= 0:
        return None
    return (now or timezone.now()) - timedelta(days=days)


@transaction.atomic
def _messages_purge(*, ids: list[int], now: datetime) -> PurgeReport:
    # Rows another purge (or a live answer) holds are skipped rather than waited for:
    # the next run takes whatever is left.
    claimed = list(
        Message.objects.select_for_update(skip_locked=True)
        .filter(pk__in=ids, purged_at__isnull=True)
        .values_list("pk", "conversation_id")
    )
    if not claimed:
        return PurgeReport()
    message_ids = [pk for pk, _ in claimed]
    conversation_ids = {conversation_id for _, conversation_id in claimed}
    unfinished = Message.objects.filter(pk__in=message_ids, status__in=UNFINISHED).update(
        status=Message.Status.STOPPED, completed_at=Coalesce("completed_at", now)
    )
    return PurgeReport(
        messages=Message.objects.filter(pk__in=message_ids, purged_at__isnull=True).update(
            content="", raw_content="", sentences=[], purged_at=now
        ),
        unfinished_answers=unfinished,
        citations=Citation.objects.filter(message_id__in=message_ids)
        .exclude(excerpt="")
        .update(excerpt=""),
        feedback_comments=Feedback.objects.filter(message_id__in=message_ids)
        .exclude(comment="")
        .update(comment=""),
        # A queryset update leaves updated_at alone: purging does not reorder the list.
        conversation_titles=Conversation.objects.filter(pk__in=conversation_ids)
        .exclude(title="")
        .update(title=""),
    )


def _cache_entries_purge(*, older_than: datetime, batch_size: int) -> int:
    deleted = 0
    while True:
        ids = list(
            SemanticCacheEntry.objects.filter(created_at__lt=older_than)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return deleted
        deleted += SemanticCacheEntry.objects.filter(pk__in=ids).delete()[0]


def conversations_purge(*, older_than: datetime, batch_size: int = BATCH_SIZE) -> PurgeReport:
    """Remove the text of every message created before ``older_than`` (see the module
    docstring for what goes and what stays); returns what this run changed.

    Works through the messages in batches of ``batch_size`` ids, one short transaction
    each, so memory stays flat and a killed run keeps what it finished. Idempotent:
    a second run over the same cutoff changes nothing.
    """
    now = timezone.now()
    report = PurgeReport()
    last_id = 0
    while True:
        ids = list(
            Message.objects.filter(
                purged_at__isnull=True, created_at__lt=older_than, pk__gt=last_id
            )
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            break
        last_id = ids[-1]  # ids skipped as locked are not revisited by this run
        report += _messages_purge(ids=ids, now=now)
    report.cache_entries = _cache_entries_purge(older_than=older_than, batch_size=batch_size)
    logger.info("retention purge before %s: %s", older_than.isoformat(), report.summary())
    return report
