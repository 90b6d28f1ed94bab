"""The hybrid channel's second stage: rerank the fused pool sentence by sentence.

Fusion ranks whole chunks, but a question is answered by one sentence of one chunk:
a chunk whose best sentence matches the question closely in meaning *and* in words
beats a chunk that is only broadly on the topic. So the first
CAIRN_RERANK_POOL fused hits are re-scored from signals that cost no model call
beyond the embeddings of their quotable units (kb.units, kb.embeddings.texts):

- where fusion, the vector channel and the keyword channel ranked the chunk;
- the chunk's cosine similarity with the question;
- the best and second-best unit similarity;
- the IDF-weighted share of the question's content words in the chunk and in its
  best unit (IDF over the pool, so no corpus statistics are needed);
- the best unit's similarity plus its word coverage (one unit doing both).

The weights are a logistic regression fitted by ``manage.py answerer_fit`` on
golden questions, cross-validated by article (docs/evaluation.md); they live in
``rerank_weights.json`` with the data they came from. Without that file, or with
CAIRN_SEARCH_RERANK off, fusion's order stands.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from kb.embeddings.texts import texts_embed
from kb.linear import LinearModel
from kb.search.terms import content_terms
from kb.units import chunk_units, text_terms

WEIGHTS_FILE = Path(__file__).with_name("rerank_weights.json")
FEATURES = (
    "fused_rank_prior",
    "vector_rank_prior",
    "keyword_rank_prior",
    "chunk_similarity",
    "unit_best_similarity",
    "unit_second_similarity",
    "chunk_coverage",
    "unit_best_coverage",
    "unit_best_similarity_plus_coverage",
)


class RerankCandidate(Protocol):
    """What the reranker needs of a hit (kb.selectors.search.SearchHit has it)."""

    @property
    def vector_rank(self) -> int | None: ...
    @property
    def keyword_rank(self) -> int | None: ...
    @property
    def vector_similarity(self) -> float | None: ...


@dataclass(frozen=True)
class CandidateText:
    """A pooled chunk's text as the reranker reads it."""

    text: str
    title: str
    heading_path: str
    embedding: npt.NDArray[np.float32] | None
    knowledge_base_id: int | None = None  # where its unit vectors are stored (kb.embeddings.texts)


@lru_cache(maxsize=4)
def rerank_model(path: Path = WEIGHTS_FILE) -> LinearModel | None:
    """The fitted reranker, or None when no weights were fitted for these features."""
    model = LinearModel.load(path)
    return model if model is not None and model.features == FEATURES else None


def _prior(rank: int | None) -> float:
    """1 for a channel's first hit, falling with rank; 0 when the channel missed it."""
    return 0.0 if rank is None else 1.0 / rank


def rerank_features(
    *,
    question: str,
    question_vector: npt.NDArray[np.floating],
    hits: Sequence[RerankCandidate],
    texts: Sequence[CandidateText],
    embedding_model: str,
) -> npt.NDArray[np.float64]:
    """One row of FEATURES per pooled hit, in pool order (fusion rank = position + 1)."""
    question_terms = set(content_terms(question))
    units = [chunk_units(t.text, title=t.title, heading_path=t.heading_path) for t in texts]
    unit_terms = [[u.terms for u in us] for us in units]
    chunk_terms = [text_terms(f"{t.title} {t.heading_path} {t.text}") for t in texts]
    pool = len(texts)
    idf = {
        term: math.log(1.0 + (pool + 1) / (1 + sum(term in terms for terms in chunk_terms)))
        for term in question_terms
    }
    total = sum(idf.values()) or 1.0
    flat = [u.semantic_text for us in units for u in us]
    owners = [t.knowledge_base_id for t, us in zip(texts, units, strict=True) for _ in us]
    vectors = (
        texts_embed(embedding_model, flat, knowledge_base_id=owners)
        if flat
        else np.zeros((0, 1), np.float32)
    )
    q = np.asarray(question_vector, dtype=np.float32)
    rows = np.zeros((pool, len(FEATURES)), dtype=np.float64)
    offset = 0
    for index, (hit, text) in enumerate(zip(hits, texts, strict=True)):
        count = len(units[index])
        similarities = (
            (vectors[offset : offset + count] @ q).astype(np.float64) if count else np.zeros(1)
        )
        offset += count
        coverages = np.asarray(
            [sum(idf[t] for t in question_terms & terms) / total for terms in unit_terms[index]]
            or [0.0]
        )
        ordered = np.sort(similarities)[::-1]
        if hit.vector_similarity is not None:
            chunk_similarity = float(hit.vector_similarity)
        elif text.embedding is not None:
            chunk_similarity = float(np.dot(np.asarray(text.embedding, dtype=np.float32), q))
        else:
            chunk_similarity = float(ordered[0])
        rows[index] = (
            1.0 / (index + 1),
            _prior(hit.vector_rank),
            _prior(hit.keyword_rank),
            chunk_similarity,
            float(ordered[0]),
            float(ordered[1]) if len(ordered) > 1 else 0.0,
            sum(idf[t] for t in question_terms & chunk_terms[index]) / total,
            float(coverages.max()),
            float(np.max(similarities[: len(coverages)] + coverages[: len(similarities)])),
        )
    return rows


def rerank_order(model: LinearModel, rows: npt.NDArray[np.float64]) -> list[int]:
    """Pool positions, best first; ties keep fusion's order."""
    scores = model.scores(rows)
    return sorted(range(len(rows)), key=lambda i: (-scores[i], i))
