"""Re-embedding a knowledge base with another model, without downtime.

New vectors are written to ``Chunk.embedding_next`` in small batches while searches keep
using ``Chunk.embedding`` and the old model. Documents ingested meanwhile are embedded with
both models (``ingest.services.pipeline`` writes their ``embedding_next`` only if the
knowledge base still re-embeds with the model it used, and retries otherwise), so once every
chunk has its new vector no chunk lacks one. Then the swap copies the new vectors over.

Why the swap looks like this:

- **One transaction**, so searches see every old vector or every new one, never a mix: the
  query is embedded with the knowledge base's model, and until the commit that is the old one.
- **In batches, without the knowledge base's row lock**: ingestion's swap-in takes that lock,
  so holding it while 100k rows are rewritten would stop uploads becoming ready for as long.
  The lock is taken only at the end, for a last pass over the chunks ingestion committed
  while the batches ran (it holds the lock between its model check and its commit, so once
  we hold it every such chunk is visible) and the model switch.
- **Lock order**: the swap locks chunk rows, then the knowledge base. Ingestion locks the rows
  its new version replaces before the knowledge base too, so the two cannot deadlock; a
  re-uploaded document whose old chunks the swap holds waits for the swap's commit.

Every other write of ``embedding_next`` (a batch of new vectors, clearing stale ones) is a
short statement; those that must not race a switch of model check it under the same lock,
held for one batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from config.dispatch import enqueue_on_commit
from kb.embeddings.base import EmbeddingError
from kb.embeddings.inputs import chunk_embedding_input
from kb.embeddings.privacy import EmbeddingModelRefused, embedding_model_check
from kb.embeddings.registry import get_embedder, is_supported_model
from kb.embeddings.usage import embedding_context
from kb.models import EMBEDDING_DIMENSION, Chunk, KnowledgeBase

logger = logging.getLogger(__name__)

BATCH_SIZE = 256  # chunks embedded per task
SWAP_BATCH_SIZE = 1000  # chunks copied per statement of the swap
CLEAR_BATCH_SIZE = 1000  # stale vectors of an abandoned re-embedding cleared per statement


class ReembeddingRejected(Exception):
    """The requested model cannot be used; the message says why."""


class _Abandoned(Exception):
    """The re-embedding was cancelled or restarted while the swap ran: roll it back."""


@dataclass(frozen=True)
class ReembedProgress:
    state: str  # "idle", "running" or "switched"
    remaining: int


def knowledge_base_reembed_start(*, knowledge_base: KnowledgeBase, model_id: str) -> bool:
    """Begin re-embedding with ``model_id``; False if it already uses that model (which
    cancels a re-embedding in progress).

    Raises ReembeddingRejected for an unknown model, a wrong dimension, or an API model
    for an account that allows local providers only.
    """
    if not is_supported_model(model_id):
        raise ReembeddingRejected(f"unknown embedding model {model_id!r}")
    try:
        embedding_model_check(account=knowledge_base.account, model_id=model_id)
    except EmbeddingModelRefused as exc:
        raise ReembeddingRejected(str(exc)) from exc
    if get_embedder(model_id).dimension != EMBEDDING_DIMENSION:
        raise ReembeddingRejected(f"{model_id} does not produce {EMBEDDING_DIMENSION} dimensions")
    # First stop whatever re-embedding runs: from then on nobody writes embedding_next.
    with transaction.atomic():
        locked = KnowledgeBase.objects.select_for_update().get(pk=knowledge_base.pk)
        locked.reembedding_model = ""
        locked.reembedding_started_at = None
        locked.save(update_fields=["reembedding_model", "reembedding_started_at", "updated_at"])
        if locked.embedding_model == model_id:
            return False
    # Vectors an abandoned re-embedding left behind are another model's: clear them in
    # short statements (none after a re-embedding that finished: the swap clears them).
    _stale_vectors_clear(knowledge_base.pk)
    with transaction.atomic():
        locked = KnowledgeBase.objects.select_for_update().get(pk=knowledge_base.pk)
        # Normally nothing left; a concurrent start could have left some.
        Chunk.objects.filter(knowledge_base=locked, embedding_next__isnull=False).update(
            embedding_next=None
        )
        locked.reembedding_model = model_id
        locked.reembedding_started_at = timezone.now()
        locked.save(update_fields=["reembedding_model", "reembedding_started_at", "updated_at"])
        enqueue_on_commit("kb.tasks.knowledge_base_reembed_task", locked.pk)
    logger.info("knowledge base %s: re-embedding with %s", locked.pk, model_id)
    return True


def _stale_vectors_clear(knowledge_base_id: int) -> None:
    while True:
        ids = list(
            Chunk.objects.filter(knowledge_base_id=knowledge_base_id, embedding_next__isnull=False)
            .order_by("pk")
            .values_list("pk", flat=True)[:CLEAR_BATCH_SIZE]
        )
        if not ids:
            return
        Chunk.objects.filter(pk__in=ids).update(embedding_next=None)


def knowledge_base_reembed_step(
    *,
    knowledge_base_id: int,
    batch_size: int = BATCH_SIZE,
    swap_batch_size: int = SWAP_BATCH_SIZE,
) -> ReembedProgress:
    """Embed one batch of chunks with the new model; swap when none is left.

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
            vectors = get_embedder(model_id).embed(inputs)  # slow part: no lock held
        with transaction.atomic():
            # Held for one batch's write: a cancel or restart cannot slip in between the
            # check and the write and leave this model's vectors to the next one.
            locked = KnowledgeBase.objects.select_for_update().get(pk=knowledge_base_id)
            if locked.reembedding_model != model_id:
                return ReembedProgress("idle", 0)
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
    return _swap(knowledge_base_id, model_id, batch_size=swap_batch_size)


def _swap(knowledge_base_id: int, model_id: str, *, batch_size: int) -> ReembedProgress:
    """Copy the new vectors over and switch the model, in one transaction (module docstring)."""
    try:
        with transaction.atomic():
            chunks = Chunk.objects.filter(knowledge_base_id=knowledge_base_id)
            last_pk = 0
            while True:
                ids = list(
                    chunks.filter(pk__gt=last_pk, embedding_next__isnull=False)
                    .order_by("pk")
                    .values_list("pk", flat=True)[:batch_size]
                )
                if not ids:
                    break
                chunks.filter(pk__in=ids).update(embedding=F("embedding_next"), embedding_next=None)
                last_pk = ids[-1]
            locked = KnowledgeBase.objects.select_for_update().get(pk=knowledge_base_id)
            if locked.reembedding_model != model_id:
                raise _Abandoned
            # Chunks ingestion committed while the batches ran (they have both vectors).
            chunks.filter(embedding_next__isnull=False).update(
                embedding=F("embedding_next"), embedding_next=None
            )
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
    except _Abandoned:
        return ReembedProgress("idle", 0)  # cancelled or restarted with another model
    logger.info("knowledge base %s: switched to %s", knowledge_base_id, model_id)
    return ReembedProgress("switched", 0)


__all__ = [
    "EmbeddingError",
    "ReembedProgress",
    "ReembeddingRejected",
    "knowledge_base_reembed_start",
    "knowledge_base_reembed_step",
]
