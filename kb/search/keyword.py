"""The per-process BM25 indexes of knowledge bases, kept fresh from the database.

Every web and worker process holds its own indexes (no shared state to get
wrong): on a query, a knowledge base whose ``content_version`` moved since the
index last looked (checked at most every CAIRN_BM25_REFRESH_SECONDS) loads the
chunks added since and drops the ones deleted since, so newly ingested
documents are found, and deleted ones vanish, within seconds in every process.
Memory is bounded: beyond CAIRN_BM25_MAX_POSTINGS the least recently used
knowledge bases are evicted (and rebuilt on their next query).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings

from kb.embeddings.inputs import chunk_embedding_input
from kb.models import Chunk, KnowledgeBase
from kb.search.bm25 import Bm25Hit, Bm25Index, Bm25Params
from kb.search.tokenize import stop_words_for, tokenize

LOAD_BATCH = 5000


def chunk_search_text(*, heading_path: str, text: str) -> str:
    """What the keyword channel indexes: the same text the vector channel embeds."""
    return chunk_embedding_input(heading_path=heading_path, text=text)


def query_terms(query: str) -> list[str]:
    return tokenize(query, stop_words=stop_words_for(settings.CAIRN_BM25_STOP_WORDS))


@dataclass
class _KnowledgeBaseIndex:
    index: Bm25Index
    content_version: int = -1
    max_chunk_id: int = 0
    checked_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class KeywordIndexes:
    def __init__(self) -> None:
        self._indexes: OrderedDict[int, _KnowledgeBaseIndex] = OrderedDict()
        self._lock = threading.Lock()

    def _params(self) -> Bm25Params:
        return Bm25Params(k1=settings.CAIRN_BM25_K1, b=settings.CAIRN_BM25_B)

    def search(
        self, *, account_id: int, knowledge_base_ids: Sequence[int], query: str, k: int
    ) -> list[Bm25Hit]:
        """Best ``k`` chunks by BM25 across the knowledge bases (statistics per knowledge base)."""
        terms = query_terms(query)
        if not terms:
            return []
        hits: list[Bm25Hit] = []
        for entry in self._fresh(account_id, knowledge_base_ids):
            with entry.lock:
                hits.extend(entry.index.top(terms, k))
        hits.sort(key=lambda hit: (-hit.score, hit.chunk_id))
        return hits[:k]

    def _fresh(
        self, account_id: int, knowledge_base_ids: Sequence[int]
    ) -> list[_KnowledgeBaseIndex]:
        now = time.monotonic()
        interval = settings.CAIRN_BM25_REFRESH_SECONDS
        with self._lock:
            entries = {}
            for kb_id in knowledge_base_ids:
                entry = self._indexes.get(kb_id)
                if entry is None or entry.index.params != self._params():
                    entry = self._indexes[kb_id] = _KnowledgeBaseIndex(Bm25Index(self._params()))
                self._indexes.move_to_end(kb_id)
                entries[kb_id] = entry
        due = [kb_id for kb_id, entry in entries.items() if now - entry.checked_at >= interval]
        if due:
            # Scoped by account in SQL: another tenant's knowledge base is never loaded.
            versions = dict(
                KnowledgeBase.objects.filter(pk__in=due, account_id=account_id).values_list(
                    "pk", "content_version"
                )
            )
            for kb_id in due:
                if kb_id not in versions:
                    entries.pop(kb_id)
                    continue
                entry = entries[kb_id]
                with entry.lock:
                    if entry.content_version != versions[kb_id]:
                        self._refresh(kb_id, entry, versions[kb_id])
                    entry.checked_at = now
        self._evict()
        return [entries[kb_id] for kb_id in knowledge_base_ids if kb_id in entries]

    def _refresh(self, kb_id: int, entry: _KnowledgeBaseIndex, version: int) -> None:
        chunks = Chunk.objects.filter(knowledge_base_id=kb_id)
        if entry.index.corpus_size:
            live = set(chunks.filter(pk__lte=entry.max_chunk_id).values_list("pk", flat=True))
            gone = [chunk_id for chunk_id in entry.index.location if chunk_id not in live]
            entry.index.remove(gone)
        stop_words = stop_words_for(settings.CAIRN_BM25_STOP_WORDS)
        last = entry.max_chunk_id
        while True:
            rows = list(
                chunks.filter(pk__gt=last)
                .order_by("pk")
                .values_list("pk", "heading_path", "text")[:LOAD_BATCH]
            )
            if not rows:
                break
            entry.index.add(
                (pk, tokenize(chunk_search_text(heading_path=h, text=t), stop_words=stop_words))
                for pk, h, t in rows
            )
            last = rows[-1][0]
        entry.max_chunk_id = last
        entry.content_version = version

    def _evict(self) -> None:
        budget = settings.CAIRN_BM25_MAX_POSTINGS
        with self._lock:
            total = sum(entry.index.postings_count for entry in self._indexes.values())
            while total > budget and len(self._indexes) > 1:
                _, evicted = self._indexes.popitem(last=False)
                total -= evicted.index.postings_count

    def clear(self) -> None:
        with self._lock:
            self._indexes.clear()


keyword_indexes = KeywordIndexes()
