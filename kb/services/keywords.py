"""Re-indexing chunks for keyword search, online and in batches.

New chunks are indexed as they are written (ingestion fills their keyword columns and
the database's triggers do the rest, kb.search.keyword). This brings the others up to
the current scheme: chunks written before the index existed, or under an older
tokenizer or stop-word list. Each batch is its own short transaction, so searches and
ingestion go on meanwhile; a chunk deleted or replaced between reading and writing is
simply skipped (the UPDATE finds no row).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from django.db import transaction

from kb.models import Chunk
from kb.search.keyword import chunk_keywords, keyword_scheme

BATCH_SIZE = 500


def keywords_stale(*, knowledge_base_ids: Sequence[int] | None = None) -> int:
    """How many chunks are not indexed under the current scheme."""
    chunks = Chunk.objects.exclude(keyword_scheme=keyword_scheme())
    if knowledge_base_ids is not None:
        chunks = chunks.filter(knowledge_base_id__in=knowledge_base_ids)
    return chunks.count()


def keywords_reindex(
    *,
    knowledge_base_ids: Sequence[int] | None = None,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Index every chunk (of ``knowledge_base_ids``, default all) whose keywords are not of
    the current scheme, ``batch_size`` per transaction; the number re-indexed."""
    scheme = keyword_scheme()
    done, last = 0, 0
    while True:
        stale = Chunk.objects.filter(pk__gt=last).exclude(keyword_scheme=scheme)
        if knowledge_base_ids is not None:
            stale = stale.filter(knowledge_base_id__in=knowledge_base_ids)
        rows = list(stale.order_by("pk").values_list("pk", "heading_path", "text")[:batch_size])
        if not rows:
            return done
        updated = [
            Chunk(pk=pk, **chunk_keywords(heading_path=heading_path, text=text))
            for pk, heading_path, text in rows
        ]
        with transaction.atomic():
            Chunk.objects.bulk_update(
                updated, ["keyword_terms", "keyword_tfs", "keyword_scheme"], batch_size=batch_size
            )
        done += len(rows)
        last = rows[-1][0]
        if progress is not None:
            progress(done)
