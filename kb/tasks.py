"""Celery tasks of the kb app: thin wrappers around services."""

from __future__ import annotations

import random

from config.celery_app import app
from kb.embeddings.base import EmbeddingError
from kb.services.reembedding import knowledge_base_reembed_step


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
        countdown = random.randint(1, min(600, 30 * 2**self.request.retries))  # noqa: S311
        raise self.retry(countdown=countdown, exc=exc) from exc
    if progress.state == "running":
        knowledge_base_reembed_task.delay(knowledge_base_id)
    return progress.state
