"""The keyword channel: exact Okapi BM25 over one index in PostgreSQL, shared by every process.

What is stored (kb.models, migration 0011): each chunk row carries its distinct terms
and their counts (``chunk_keywords``, computed by whoever writes the chunk), and
database triggers turn them into postings (term, chunk, tf, chunk length), document
frequencies per knowledge base and per-knowledge-base statistics (chunks, total
length), in the chunk's own transaction. So a search sees a document's keywords
exactly when it sees its vectors, a deleted chunk's keywords vanish with it, and no
process holds a copy of the corpus or tokenises one in a request.

How a query is scored (``keyword_search``): one query reads the statistics and the
query terms' document frequencies of the asker's knowledge bases; idf is computed
here as rank_bm25 does (ln((N - df + 0.5) / (df + 0.5)), negative values floored at
epsilon x the vocabulary's mean idf, each query term counted as often as it occurs);
a second query sums the postings' contributions in SQL and keeps the best ``k``.
Scores equal ``rank_bm25.BM25Okapi.get_scores`` over the same tokens (tests hold
them to 1e-6). Statistics are per knowledge base, as if each were its own corpus.

The only per-process state is the vocabulary's mean idf per (knowledge base,
statistics version), needed when a query term is in more than half the chunks.

A change of tokenisation (``KEYWORD_SCHEME``) or of CAIRN_BM25_STOP_WORDS leaves
chunks indexed under the old scheme searchable until `manage.py keyword_reindex`
(kb.services.keywords) re-indexes them online, in batches.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from kb.embeddings.inputs import chunk_embedding_input
from kb.search.tokenize import stop_words_for, tokenize

TOKENIZER_VERSION = 1  # bump when kb.search.tokenize changes what it returns
EPSILON = 0.25  # rank_bm25's floor for negative idf, as a fraction of the mean idf


@dataclass(frozen=True)
class KeywordHit:
    chunk_id: int
    score: float


def keyword_scheme() -> str:
    """The tokenisation chunks are indexed with now: tokenizer version and stop words."""
    return f"v{TOKENIZER_VERSION}:{settings.CAIRN_BM25_STOP_WORDS or 'none'}"


def chunk_search_text(*, heading_path: str, text: str) -> str:
    """What the keyword channel indexes: the same text the vector channel embeds."""
    return chunk_embedding_input(heading_path=heading_path, text=text)


def query_terms(query: str) -> list[str]:
    return tokenize(query, stop_words=stop_words_for(settings.CAIRN_BM25_STOP_WORDS))


def chunk_keywords(*, heading_path: str, text: str) -> dict[str, object]:
    """The keyword columns of a chunk row (``Chunk(**chunk_keywords(...))``): its distinct
    terms, sorted, their counts, and the scheme that made them."""
    counts = Counter(query_terms(chunk_search_text(heading_path=heading_path, text=text)))
    terms = sorted(counts)
    return {
        "keyword_terms": terms,
        "keyword_tfs": [counts[term] for term in terms],
        "keyword_scheme": keyword_scheme(),
    }


@dataclass(frozen=True)
class _Corpus:
    knowledge_base_id: int
    chunks: int
    total_length: int
    version: int


_STATISTICS_SQL = """
SELECT s.knowledge_base_id, s.chunks, s.total_length, s.version, t.id, t.term, t.df
  FROM kb_keywordstats s
  JOIN kb_knowledgebase k ON k.id = s.knowledge_base_id AND k.account_id = %s
  LEFT JOIN kb_keywordterm t ON t.knowledge_base_id = s.knowledge_base_id AND t.term = ANY (%s)
 WHERE s.knowledge_base_id = ANY (%s) AND s.chunks > 0
"""

# contribution = idf * qtf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * doc_len / avgdl)),
# with weight = idf * qtf * (k1 + 1), base = k1 * (1 - b), slope = k1 * b / avgdl.
_SCORES_SQL = """
SELECT p.chunk_id, sum(w.weight * p.tf / (p.tf + w.base + w.slope * p.doc_len)) AS score
  FROM unnest(%s::integer[], %s::float8[], %s::float8[], %s::float8[])
       AS w (term_id, weight, base, slope)
  JOIN kb_keywordposting p ON p.term_id = w.term_id
 GROUP BY p.chunk_id
 ORDER BY score DESC, p.chunk_id
 LIMIT %s
"""

_MEAN_IDF_SQL = """
SELECT avg(ln((%s - df + 0.5) / (df + 0.5))) FROM kb_keywordterm
 WHERE knowledge_base_id = %s AND df > 0
"""


class _MeanIdfCache:
    """Mean idf of a knowledge base's vocabulary per statistics version (a few floats)."""

    def __init__(self, size: int = 1024) -> None:
        self._values: OrderedDict[tuple[int, int], float] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, corpus: _Corpus) -> float:
        key = (corpus.knowledge_base_id, corpus.version)
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
        with connection.cursor() as cursor:
            cursor.execute(_MEAN_IDF_SQL, [corpus.chunks, corpus.knowledge_base_id])
            value = float(cursor.fetchone()[0] or 0.0)
        with self._lock:
            self._values[key] = value
            while len(self._values) > self._size:
                self._values.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


mean_idf_cache = _MeanIdfCache()


def keyword_search(
    *, account_id: int, knowledge_base_ids: Sequence[int], query: str, k: int
) -> list[KeywordHit]:
    """The best ``k`` chunks by BM25 of ``account_id``'s knowledge bases among
    ``knowledge_base_ids`` (others are ignored), best first, ties by chunk id."""
    counts = Counter(query_terms(query))
    if not counts or not knowledge_base_ids or k <= 0:
        return []
    with connection.cursor() as cursor:
        cursor.execute(_STATISTICS_SQL, [account_id, list(counts), list(knowledge_base_ids)])
        rows = cursor.fetchall()
    corpora: dict[int, _Corpus] = {}
    found: dict[int, list[tuple[int, str, int]]] = {}
    for kb_id, chunks, total_length, version, term_id, term, df in rows:
        corpora[kb_id] = _Corpus(kb_id, chunks, total_length, version)
        if term_id is not None:
            found.setdefault(kb_id, []).append((term_id, term, df))
    k1, b = settings.CAIRN_BM25_K1, settings.CAIRN_BM25_B
    term_ids: list[int] = []
    weights: list[float] = []
    bases: list[float] = []
    slopes: list[float] = []
    for kb_id, terms in found.items():
        corpus = corpora[kb_id]
        n, avgdl = corpus.chunks, corpus.total_length / corpus.chunks
        for term_id, term, df in terms:
            idf = math.log(n - df + 0.5) - math.log(df + 0.5)
            if idf < 0:
                idf = EPSILON * mean_idf_cache.get(corpus)
            term_ids.append(term_id)
            weights.append(idf * counts[term] * (k1 + 1))
            bases.append(k1 * (1 - b))
            slopes.append(k1 * b / avgdl if avgdl else 0.0)
    if not term_ids:
        return []
    with connection.cursor() as cursor:
        cursor.execute(_SCORES_SQL, [term_ids, weights, bases, slopes, k])
        return [KeywordHit(int(chunk_id), float(score)) for chunk_id, score in cursor.fetchall()]
