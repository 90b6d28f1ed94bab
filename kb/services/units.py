"""Embedding the quotable units of a knowledge base's chunks ahead of searches.

Hybrid search reranks its first hits by their units' vectors, the extractive answerer
scores the same units (kb.units), and the citation check then embeds the sentences an
answer quotes from them (kb.units.Unit.quoted_texts); all read them through
kb.embeddings.texts, which finds them in the TextEmbedding table once this has run.
Ingestion queues it for each document that becomes ready (kb.tasks.units_embed_task), so
the document never waits for it; ``manage.py units_embed`` fills existing knowledge bases
and prunes rows no chunk needs.

Only models that run in this process are filled ahead: for a third-party embedding API
every unit would be billed whether or not a search ever needs it, so those stay lazy
(texts_embed stores each vector the first time a search needs it) unless asked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.db.models import QuerySet

from kb.embeddings.privacy import embedding_model_is_local
from kb.embeddings.texts import text_digest, texts_store
from kb.embeddings.usage import embedding_context
from kb.models import Chunk, KnowledgeBase, TextEmbedding
from kb.units import chunk_units

logger = logging.getLogger(__name__)

BATCH_SIZE = 256  # units embedded and stored per round


def knowledge_base_units_embed(
    *, knowledge_base_id: int, document_id: int | None = None, api_models: bool = False
) -> int:
    """Store the vectors of every unit of the knowledge base's chunks (only ``document_id``'s
    if given) for its model and the one it is being re-embedded with, skipping those
    already stored; the number of rows written. Idempotent."""
    knowledge_base = KnowledgeBase.objects.filter(pk=knowledge_base_id).first()
    if knowledge_base is None:
        return 0
    models = [knowledge_base.embedding_model, knowledge_base.reembedding_model]
    models = [m for m in dict.fromkeys(models) if m and (api_models or embedding_model_is_local(m))]
    written = 0
    with embedding_context(account_id=knowledge_base.account_id, feature="units"):
        for model_id in models:
            for batch in _unit_batches(_chunks(knowledge_base, document_id)):
                written += texts_store(
                    knowledge_base_id=knowledge_base.pk, model_id=model_id, texts=batch
                )
    return written


def knowledge_base_units_prune(*, knowledge_base_id: int) -> int:
    """Delete the knowledge base's stored vectors that no unit of its chunks has, with its
    current models (left by deleted documents, older versions, a former model, citation
    checks); the number deleted."""
    knowledge_base = KnowledgeBase.objects.filter(pk=knowledge_base_id).first()
    if knowledge_base is None:
        return 0
    models = [m for m in (knowledge_base.embedding_model, knowledge_base.reembedding_model) if m]
    kept: set[bytes] = set()
    for batch in _unit_batches(_chunks(knowledge_base, None)):
        kept.update(text_digest(text) for text in batch)
    rows = TextEmbedding.objects.filter(knowledge_base_id=knowledge_base.pk)
    stale = rows.exclude(model_id__in=models).delete()[0]
    doomed = [
        pk
        for pk, digest in rows.filter(model_id__in=models).values_list("pk", "digest").iterator()
        if bytes(digest) not in kept
    ]
    for start in range(0, len(doomed), 1000):
        TextEmbedding.objects.filter(pk__in=doomed[start : start + 1000]).delete()
    return stale + len(doomed)


def _chunks(knowledge_base: KnowledgeBase, document_id: int | None) -> QuerySet[Chunk]:
    chunks = Chunk.objects.filter(
        account_id=knowledge_base.account_id, knowledge_base_id=knowledge_base.pk
    )
    if document_id is not None:
        chunks = chunks.filter(document_id=document_id)
    return chunks.order_by("pk")


def _unit_batches(chunks: QuerySet[Chunk]) -> Iterator[list[str]]:
    """The units' embedded texts (kb.units.Unit.embedded_texts: what is scored, and what
    an answer quoting them shows the citation check), BATCH_SIZE at a time."""
    batch: list[str] = []
    rows = chunks.values_list("text", "heading_path", "document__title").iterator(2000)
    for text, heading_path, title in rows:
        for unit in chunk_units(text, title=title, heading_path=heading_path):
            batch.extend(unit.embedded_texts)
        if len(batch) >= BATCH_SIZE:
            yield batch
            batch = []
    if batch:
        yield batch
