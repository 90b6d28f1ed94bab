"""The keyword channel's BM25 equals rank_bm25.BM25Okapi under the same tokenisation."""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from kb.search.bm25 import MAX_SEGMENTS, Bm25Index, Bm25Params
from kb.search.tokenize import ENGLISH_STOP_WORDS, tokenize

DEMO = Path(__file__).resolve().parent.parent.parent / "kb" / "demo" / "documents"
QUERIES = [
    "refund enterprise plan",
    "How do I export invoices to CSV?",
    "the the invoice invoice",  # repeated terms count twice, as in rank_bm25
    "webhook signature verification secret",
    "zzzz unknown words only",
    "plan",  # frequent term: its idf may be floored at epsilon x mean idf
]


def demo_corpus() -> list[str]:
    paragraphs: list[str] = []
    for path in sorted(DEMO.glob("*.md")) + sorted(DEMO.glob("*.txt")):
        paragraphs += [p.strip() for p in re.split(r"\n\s*\n", path.read_text()) if p.strip()]
    return paragraphs


DEFAULT_PARAMS = Bm25Params()


def build(texts: list[str], params: Bm25Params = DEFAULT_PARAMS, stop=frozenset()) -> Bm25Index:
    index = Bm25Index(params)
    index.add((i, tokenize(text, stop_words=stop)) for i, text in enumerate(texts))
    return index


def dense(index: Bm25Index, query: list[str], n: int) -> np.ndarray:
    scores = np.zeros(n)
    for chunk_id, score in index.scores(query).items():
        scores[chunk_id] = score
    return scores


@pytest.mark.parametrize("stop", [frozenset(), ENGLISH_STOP_WORDS])
@pytest.mark.parametrize("params", [Bm25Params(), Bm25Params(k1=0.9, b=0.4, epsilon=0.25)])
def test_scores_equal_rank_bm25(params, stop) -> None:
    texts = demo_corpus()
    assert len(texts) > 100
    reference = BM25Okapi(
        [tokenize(t, stop_words=stop) for t in texts], k1=params.k1, b=params.b,
        epsilon=params.epsilon,
    )  # fmt: skip
    index = build(texts, params, stop)

    for query in QUERIES:
        terms = tokenize(query, stop_words=stop)
        expected = reference.get_scores(terms)
        assert np.allclose(dense(index, terms, len(texts)), expected, atol=1e-6, rtol=0), query


def test_negative_idf_is_floored_like_rank_bm25() -> None:
    texts = ["common alpha", "common beta", "common gamma", "delta"]
    reference = BM25Okapi([tokenize(t) for t in texts])
    index = build(texts)

    assert reference.idf["common"] == pytest.approx(reference.epsilon * reference.average_idf)
    assert np.allclose(dense(index, ["common"], 4), reference.get_scores(["common"]), atol=1e-9)


def test_removing_chunks_keeps_statistics_exact() -> None:
    texts = demo_corpus()
    index = build(texts)
    rng = random.Random(3)
    removed = set(rng.sample(range(len(texts)), len(texts) // 3))

    index.remove(removed)

    kept = [i for i in range(len(texts)) if i not in removed]
    reference = BM25Okapi([tokenize(texts[i]) for i in kept])
    for query in QUERIES:
        terms = tokenize(query)
        ours = index.scores(terms)
        expected = reference.get_scores(terms)
        for position, chunk_id in enumerate(kept):
            assert ours.get(chunk_id, 0.0) == pytest.approx(expected[position], abs=1e-6)
        assert not removed & set(ours)


def test_many_small_additions_merge_into_the_same_index() -> None:
    texts = demo_corpus()
    whole = build(texts)
    incremental = Bm25Index()
    batches = [range(i, min(i + 15, len(texts))) for i in range(0, len(texts), 15)]
    for batch in batches:
        incremental.add((i, tokenize(texts[i])) for i in batch)

    assert len(batches) > MAX_SEGMENTS and len(incremental.segments) <= MAX_SEGMENTS
    for query in QUERIES:
        terms = tokenize(query)
        a, b = whole.scores(terms), incremental.scores(terms)
        assert a.keys() == b.keys()
        assert all(a[key] == pytest.approx(b[key], abs=1e-9) for key in a)


def test_top_orders_best_first_and_respects_allowed_ids() -> None:
    others = [f"unrelated text number {i} about shipping" for i in range(6)]
    index = build(["refund refund refund policy", "refund policy", *others])

    top = index.top(tokenize("refund"), k=5)
    allowed = index.top(tokenize("refund"), k=5, allowed={1})

    assert [hit.chunk_id for hit in top] == [0, 1]
    assert [hit.chunk_id for hit in allowed] == [1]


def test_tokenisation_is_unicode_aware_and_case_insensitive() -> None:
    assert tokenize("Straße STRASSE Café") == ["strasse", "strasse", "café"]
    assert tokenize("v4.2 — Größe: 10€") == ["v4", "2", "grösse", "10"]
    assert tokenize("日本語のテキスト") == ["日本語のテキスト"]
