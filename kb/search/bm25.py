"""An exact BM25 (Okapi) keyword index in memory, built from segments.

Scores equal ``rank_bm25.BM25Okapi(corpus, k1, b, epsilon).get_scores(query)``
over the same tokens (a test holds them to 1e-6): idf = ln((N - df + 0.5) /
(df + 0.5)), negative idfs floored at epsilon x the mean idf of the
vocabulary, and each query term counted as often as it occurs.

Why in memory and in segments: scoring is a few numpy operations over the
postings of the query's terms, about 1 ms for 100k chunks; new chunks arrive as
a small new segment instead of a rebuild, and deleted chunks are masked out
with their terms' document frequencies decremented, so statistics stay exact.
Segments are merged when there are too many.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

MAX_SEGMENTS = 8


@dataclass(frozen=True)
class Bm25Params:
    k1: float = 1.5
    b: float = 0.75
    epsilon: float = 0.25


class _Segment:
    """Immutable postings (term -> chunks) and forward lists (chunk -> terms)."""

    def __init__(self, chunk_ids: IntArray, doc_terms: list[Counter[int]]) -> None:
        self.chunk_ids = chunk_ids
        self.alive = np.ones(len(chunk_ids), dtype=bool)
        self.doc_len = np.array([sum(c.values()) for c in doc_terms], dtype=np.float64)
        # Forward lists (CSR): what a deleted chunk contributed to document frequencies.
        sizes = np.array([len(c) for c in doc_terms], dtype=np.int64)
        self.fwd_ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.fwd_term = np.fromiter(
            (t for c in doc_terms for t in c), dtype=np.int64, count=int(sizes.sum())
        )
        fwd_tf = np.fromiter(
            (f for c in doc_terms for f in c.values()), dtype=np.float64, count=int(sizes.sum())
        )
        fwd_doc = np.repeat(np.arange(len(doc_terms), dtype=np.int64), sizes)
        # Postings (CSR by term), from the forward lists sorted by term.
        order = np.argsort(self.fwd_term, kind="stable")
        self.post_term = self.fwd_term[order]
        self.post_doc = fwd_doc[order]
        self.post_tf = fwd_tf[order]
        self.terms, starts = np.unique(self.post_term, return_index=True)
        self.term_start = starts.astype(np.int64)
        self.term_end = np.append(starts[1:], len(self.post_term)).astype(np.int64)

    def postings(self, term: int) -> tuple[IntArray, FloatArray]:
        i = int(np.searchsorted(self.terms, term))
        if i >= len(self.terms) or self.terms[i] != term:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        start, end = self.term_start[i], self.term_end[i]
        return self.post_doc[start:end], self.post_tf[start:end]

    def doc_terms(self, doc: int) -> IntArray:
        return self.fwd_term[self.fwd_ptr[doc] : self.fwd_ptr[doc + 1]]

    def live_docs(self) -> list[Counter[int]]:
        """Term counts of the chunks not removed, in segment order (for merging)."""
        order = np.argsort(self.post_doc, kind="stable")
        terms, tfs, docs = self.post_term[order], self.post_tf[order], self.post_doc[order]
        bounds = np.searchsorted(docs, np.arange(len(self.chunk_ids) + 1))
        result = []
        for i in np.flatnonzero(self.alive).tolist():
            span = slice(bounds[i], bounds[i + 1])
            pairs = zip(terms[span].tolist(), tfs[span].astype(np.int64).tolist(), strict=True)
            result.append(Counter(dict(pairs)))
        return result

    @property
    def postings_count(self) -> int:
        return len(self.post_term)


@dataclass(frozen=True)
class Bm25Hit:
    chunk_id: int
    score: float


class Bm25Index:
    """BM25 over a mutable set of chunks: add and remove by chunk id."""

    def __init__(self, params: Bm25Params = Bm25Params()) -> None:
        self.params = params
        self.vocabulary: dict[str, int] = {}
        self.df = np.zeros(0, dtype=np.int64)
        self.segments: list[_Segment] = []
        self.location: dict[int, tuple[int, int]] = {}  # chunk id -> (segment, doc)
        self.total_length = 0.0
        self._idf: FloatArray | None = None

    # --- size and statistics --------------------------------------------------

    @property
    def corpus_size(self) -> int:
        return len(self.location)

    @property
    def postings_count(self) -> int:
        return sum(segment.postings_count for segment in self.segments)

    def idf(self) -> FloatArray:
        """idf per term id, with rank_bm25's epsilon floor (recomputed after changes)."""
        if self._idf is None:
            n = self.corpus_size
            present = self.df > 0
            raw = np.log(n - self.df + 0.5) - np.log(self.df + 0.5)
            average = float(raw[present].mean()) if present.any() else 0.0
            idf = np.where(raw < 0, self.params.epsilon * average, raw)
            self._idf = np.where(present, idf, 0.0)
        return self._idf

    # --- changes ----------------------------------------------------------------

    def add(self, documents: Iterable[tuple[int, Sequence[str]]]) -> int:
        """Add chunks as (chunk id, terms); a chunk id already present is replaced."""
        ids: list[int] = []
        doc_terms: list[Counter[int]] = []
        for chunk_id, terms in documents:
            if chunk_id in self.location:
                self.remove([chunk_id])
            counts: Counter[int] = Counter()
            for term in terms:
                term_id = self.vocabulary.get(term)
                if term_id is None:
                    term_id = self.vocabulary[term] = len(self.vocabulary)
                counts[term_id] += 1
            ids.append(chunk_id)
            doc_terms.append(counts)
        if not ids:
            return 0
        if len(self.vocabulary) > len(self.df):
            grown = np.zeros(len(self.vocabulary), dtype=np.int64)
            grown[: len(self.df)] = self.df
            self.df = grown
        segment = _Segment(np.array(ids, dtype=np.int64), doc_terms)
        self._add_segment(segment)
        if len(self.segments) > MAX_SEGMENTS:
            self._merge()
        return len(ids)

    def _add_segment(self, segment: _Segment) -> None:
        number = len(self.segments)
        self.segments.append(segment)
        for doc, chunk_id in enumerate(segment.chunk_ids.tolist()):
            self.location[chunk_id] = (number, doc)
        np.add.at(self.df, segment.fwd_term, 1)
        self.total_length += float(segment.doc_len.sum())
        self._idf = None

    def remove(self, chunk_ids: Iterable[int]) -> int:
        removed = 0
        for chunk_id in chunk_ids:
            place = self.location.pop(chunk_id, None)
            if place is None:
                continue
            segment = self.segments[place[0]]
            segment.alive[place[1]] = False
            np.subtract.at(self.df, segment.doc_terms(place[1]), 1)
            self.total_length -= float(segment.doc_len[place[1]])
            removed += 1
        if removed:
            self._idf = None
        return removed

    def _merge(self) -> None:
        """Fold all segments into one, dropping removed chunks."""
        ids: list[int] = []
        docs: list[Counter[int]] = []
        for segment in self.segments:
            ids.extend(segment.chunk_ids[segment.alive].tolist())
            docs.extend(segment.live_docs())
        self.segments, self.location = [], {}
        self.df = np.zeros(len(self.vocabulary), dtype=np.int64)
        self.total_length = 0.0
        if ids:
            self._add_segment(_Segment(np.array(ids, dtype=np.int64), docs))

    # --- queries -----------------------------------------------------------------

    def score_arrays(self, query_terms: Sequence[str]) -> tuple[IntArray, FloatArray]:
        """(chunk ids, BM25 scores) of every live chunk containing a query term."""
        n = self.corpus_size
        if n == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        k1, b = self.params.k1, self.params.b
        avgdl = self.total_length / n
        idf = self.idf()
        term_ids = [self.vocabulary[t] for t in query_terms if t in self.vocabulary]
        all_ids: list[IntArray] = []
        all_scores: list[FloatArray] = []
        for segment in self.segments:
            size = len(segment.chunk_ids)
            totals = np.zeros(size, dtype=np.float64)
            touched = np.zeros(size, dtype=bool)
            for term_id in term_ids:
                docs, tf = segment.postings(term_id)
                if not len(docs):
                    continue
                norm = k1 * (1 - b + b * segment.doc_len[docs] / avgdl)
                # One term's postings hold each chunk once, so fancy-index addition is exact.
                totals[docs] += idf[term_id] * (tf * (k1 + 1) / (tf + norm))
                touched[docs] = True
            touched &= segment.alive
            hit = np.flatnonzero(touched)
            if len(hit):
                all_ids.append(segment.chunk_ids[hit])
                all_scores.append(totals[hit])
        if not all_ids:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        return np.concatenate(all_ids), np.concatenate(all_scores)

    def scores(self, query_terms: Sequence[str]) -> dict[int, float]:
        """BM25 score of every chunk that contains a query term (others score 0)."""
        ids, values = self.score_arrays(query_terms)
        return dict(zip(ids.tolist(), values.tolist(), strict=True))

    def top(
        self, query_terms: Sequence[str], k: int, allowed: set[int] | None = None
    ) -> list[Bm25Hit]:
        """The ``k`` best chunks (optionally only ids in ``allowed``), best first."""
        ids, values = self.score_arrays(query_terms)
        if allowed is not None and len(ids):
            keep = np.isin(ids, np.fromiter(allowed, dtype=np.int64, count=len(allowed)))
            ids, values = ids[keep], values[keep]
        if len(ids) > k:
            # Partition on (-score, id) ranks without sorting everything.
            part = np.argpartition(-values, k - 1)[:k]
            cutoff = values[part].min()
            candidates = np.flatnonzero(values >= cutoff)  # keep ties at the cutoff
            ids, values = ids[candidates], values[candidates]
        order = np.lexsort((ids, -values))[:k]
        return [Bm25Hit(int(ids[i]), float(values[i])) for i in order]
