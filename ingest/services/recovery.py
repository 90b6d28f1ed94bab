"""Getting stuck documents moving again: the reaper and manual retries."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from config.dispatch import enqueue_on_commit
from kb.models import Document

logger = logging.getLogger(__name__)


@dataclass
class ReapResult:
    requeued: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


def _enqueue(document_id: int) -> None:
    enqueue_on_commit("ingest.tasks.document_ingest_task", document_id)


def documents_reap(*, stale_seconds: int | None = None) -> ReapResult:
    """Requeue documents that stopped moving; fail those out of attempts.

    Stuck means: ``processing`` with no progress for ``stale_seconds`` (its
    worker died or hangs), or ``pending`` that long (its message was lost).
    Runs periodically (Celery beat); safe to run anywhere, any number of times.
    """
    stale_seconds = settings.CAIRN_INGEST_STALE_SECONDS if stale_seconds is None else stale_seconds
    cutoff = timezone.now() - timedelta(seconds=stale_seconds)
    result = ReapResult()
    stuck = Q(
        status__in=[Document.Status.PROCESSING, Document.Status.PENDING], updated_at__lt=cutoff
    )
    with transaction.atomic():
        for document in Document.objects.select_for_update(skip_locked=True).filter(stuck):
            if document.attempts >= settings.CAIRN_INGEST_MAX_ATTEMPTS:
                reason = document.error or "the worker stopped while processing it"
                document.status = Document.Status.FAILED
                document.error = (
                    f"gave up after {document.attempts} attempts; last problem: {reason}"
                )
                document.save(update_fields=["status", "error", "updated_at"])
                result.failed.append(document.pk)
                continue
            if document.status == Document.Status.PROCESSING:
                document.error = "the worker stopped while processing it; requeued"
            document.status = Document.Status.PENDING
            document.save(update_fields=["status", "error", "updated_at"])
            _enqueue(document.pk)
            result.requeued.append(document.pk)
    if result.requeued or result.failed:
        logger.warning("reaper: requeued %s, failed %s", result.requeued, result.failed)
    return result


def documents_retry(*, documents: Iterable[Document]) -> list[int]:
    """Queue failed (or stuck) documents again with a fresh attempt count."""
    ids = [document.pk for document in documents if document.status != Document.Status.READY]
    with transaction.atomic():
        Document.objects.filter(pk__in=ids).exclude(status=Document.Status.READY).update(
            status=Document.Status.PENDING,
            attempts=0,
            error="",
            chunks_embedded=0,
            updated_at=timezone.now(),
        )
        for document_id in ids:
            _enqueue(document_id)
    return ids
