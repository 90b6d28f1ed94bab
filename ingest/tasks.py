"""Celery tasks: thin wrappers that take ids and call services."""

from __future__ import annotations

import logging

from config.celery_app import app
from ingest.services.pipeline import TransientIngestError, document_ingest
from ingest.services.recovery import documents_reap
from kb.tasks import task_retry_countdown

logger = logging.getLogger(__name__)


@app.task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=10,  # the real cap is CAIRN_INGEST_MAX_ATTEMPTS, counted on the document
    name="ingest.tasks.document_ingest_task",
)
def document_ingest_task(self, document_id: int) -> str:  # type: ignore[no-untyped-def]
    try:
        return document_ingest(document_id=document_id).value
    except TransientIngestError as exc:
        raise self.retry(countdown=task_retry_countdown(self.request.retries), exc=exc) from exc


@app.task(name="ingest.tasks.documents_reap_task", ignore_result=True)
def documents_reap_task() -> dict[str, int]:
    result = documents_reap()
    return {"requeued": len(result.requeued), "failed": len(result.failed)}
