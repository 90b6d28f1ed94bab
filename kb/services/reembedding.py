"""Re-embedding a knowledge base with another model, without downtime.

New vectors are written to ``Chunk.embedding_next`` in small batches while
searches keep using ``Chunk.embedding`` and the old model; when every chunk has
its new vector, one transaction copies them over and switches the knowledge
base's model. Documents ingested meanwhile are embedded with both models.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from kb.embeddings.base import EmbeddingError
from kb.embeddings.inputs import chunk_embedding_input
from kb.embeddings.registry import get_embedder, is_supported_model
from kb.embeddings.usage import embedding_context
from kb.models import EMBEDDING_DIMENSION, Chunk, KnowledgeBase

logger = logging.getLogger(__name__)

BATCH_SIZE = 256


class ReembeddingRejected(Exception):
    """The requested model cannot be used; the message says why."""


@dataclass(frozen=True)
class ReembedProgress:
    state: str  # "idle", "running" or "switched"
    remaining: int


def knowledge_base_reembed_start(*, knowledge_base: KnowledgeBase, model_id: str) -> bool:
    """Begin re-embedding with ``model_id``; False if it already uses that model."""
    if not is_supported_model(model_id):
        raise ReembeddingRejected(f"unknown embedding model {model_id!r}")
    if get_embedder(model_id).dimension != EMBEDDING_DIMENSION:
        raise ReembeddingRejected(f"{model_id} does not produce {EMBEDDING_DIMENSION} dimensions")
    with transaction.atomic():
        locked = KnowledgeBase.objects.select_for_update().get(pk=knowledge_base.pk)
        if locked.embedding_model == model_id:
            locked.reembedding_model = ""
            locked.reembedding_started_at = None
            locked.save(update_fields=["reembedding_model", "reembedding_started_at", "updated_at"])
            return False
        Chunk.objects.filter(knowledge_base=locked).update(embedding_next=None)
        locked.reembedding_model = model_id
        locked.reembedding_started_at = timezone.now()
        locked.save(update_fields=["reembedding_model", "reembedding_started_at", "updated_at"])
        from kb.tasks import knowledge_base_reembed_task

        transaction.on_commit(lambda: knowledge_base_reembed_task.delay(locked.pk))
    logger.info("knowledge base %s: re-embedding with %s", locked.pk, model_id)
    return True


def knowledge_base_reembed_step(
    *, knowledge_base_id: int, batch_size: int = BATCH_SIZE
) -> ReembedProgress:
    """Embed one batch of chunks with the new model; switch when none is left.

    Raises EmbeddingError (transient ones are retried by the task).
    """
    knowledge_base = KnowledgeBase.objects.filter(pk=knowledge_base_id).first()
    if knowledge_base is None or not knowledge_base.reembedding_model:
        return ReembedProgress("idle", 0)
    model_id = knowledge_base.reembedding_model
    batch = list(
        Chunk.objects.filter(knowledge_base_id=knowledge_base_id, embedding_next__isnull=True)
        .order_by("pk")
        .values_list("pk", "heading_path", "text")[:batch_size]
    )
    if batch:
        inputs = [chunk_embedding_input(heading_path=h, text=t) for _, h, t in batch]
        with embedding_context(account_id=knowledge_base.account_id, feature="reembedding"):
            vectors = get_embedder(model_id).embed(inputs)
        Chunk.objects.bulk_update(
            [Chunk(pk=pk, embedding_next=vectors[i]) for i, (pk, _, _) in enumerate(batch)],
            ["embedding_next"],
            batch_size=batch_size,
        )
    remaining = Chunk.objects.filter(
        knowledge_base_id=knowledge_base_id, embedding_next__isnull=True
    ).count()
    if remaining:
        return ReembedProgress("running", remaining)
    return _switch(knowledge_base_id, model_id)


def _switch(knowledge_base_id: int, model_id: str) -> ReembedProgress:
    with transaction.atomic():
        locked = KnowledgeBase.objects.select_for_update().get(pk=knowledge_base_id)
        if locked.reembedding_model != model_id:
            return ReembedProgress("idle", 0)  # cancelled or restarted with another model
        chunks = Chunk.objects.filter(knowledge_base_id=knowledge_base_id)
        if chunks.filter(embedding_next__isnull=True).exists():  # ingested meanwhile
            return ReembedProgress("running", 1)
        chunks.update(embedding=F("embedding_next"), embedding_next=None)
        locked.embedding_model = model_id
        locked.reembedding_model = ""
        locked.reembedding_started_at = None
        locked.content_version = F("content_version") + 1
        locked.save(
            update_fields=[
                "embedding_model",
                "reembedding_model",
                "reembedding_started_at",
                "content_version",
                "updated_at",
            ]
        )
    logger.info("knowledge base %s: switched to %s", knowledge_base_id, model_id)
    return ReembedProgress("switched", 0)


__all__ = [
    "EmbeddingError",
    "ReembedProgress",
    "ReembeddingRejected",
    "knowledge_base_reembed_start",
    "knowledge_base_reembed_step",
]
