"""Celery tasks of the kb app: thin wrappers around services."""

from __future__ import annotations

import random

from config.celery_app import app
from kb.embeddings.base import EmbeddingError
from kb.services.reembedding import knowledge_base_reembed_step
from kb.services.units import knowledge_base_units_embed

RETRY_BASE_SECONDS = 30
RETRY_CAP_SECONDS = 600


def task_retry_countdown(retries: int) -> int:
    """Seconds before a task's next try: exponential backoff with full jitter,
    1..min(cap, base x 2^retries), so many failed tasks do not retry in step."""
    return random.randint(1, min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2**retries))  # noqa: S311


@app.task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=20,
    name="kb.tasks.knowledge_base_reembed_task",
)
def knowledge_base_reembed_task(self, knowledge_base_id: int) -> str:  # type: ignore[no-untyped-def]
    """Re-embed one batch, then queue the next: short tasks survive restarts."""
    try:
        progress = knowledge_base_reembed_step(knowledge_base_id=knowledge_base_id)
    except EmbeddingError as exc:
        if not exc.transient:
            raise
        raise self.retry(countdown=task_retry_countdown(self.request.retries), exc=exc) from exc
    if progress.state == "running":
        knowledge_base_reembed_task.delay(knowledge_base_id)
    elif progress.state == "switched":  # searches now want the new model's unit vectors
        units_embed_task.delay(knowledge_base_id)
    return progress.state


@app.task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=5,
    name="kb.tasks.units_embed_task",
)
def units_embed_task(self, knowledge_base_id: int, document_id: int | None = None) -> int:  # type: ignore[no-untyped-def]
    """Embed and store the quotable units of a document's chunks (all the knowledge
    base's without ``document_id``), so searches read them instead (kb.services.units)."""
    try:
        return knowledge_base_units_embed(
            knowledge_base_id=knowledge_base_id, document_id=document_id
        )
    except EmbeddingError as exc:
        if not exc.transient:
            raise
        raise self.retry(countdown=task_retry_countdown(self.request.retries), exc=exc) from exc
