"""benchmarks/retrieval.py runs: its smoke mode (40 chunks of the demo documents
replicated to 2,000, 5 queries), in the test database, bulk-loads chunks whose columns
the Chunk model fills (its COPY once lacked safety_flags and died on NOT NULL) and
ends on one JSON line with the issue's figures. No timing is asserted here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import retrieval
from benchmarks.retrieval import measure, parse_args, report

pytestmark = pytest.mark.django_db

DEMO = Path(__file__).resolve().parents[2] / "kb" / "demo" / "documents"


@pytest.fixture(autouse=True)
def _embeddings_cached_privately(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The corpus embeddings go to the test's own folder, not benchmarks/.cache; the
    keyword indexes built over the benchmark's knowledge bases are dropped after."""
    from kb.search.keyword import keyword_indexes

    monkeypatch.setattr(retrieval, "CACHE", tmp_path / "cache")
    yield
    keyword_indexes.clear()


def test_the_smoke_mode_prints_a_table_and_one_json_line(capsys) -> None:
    from kb.models import Chunk

    args = parse_args(
        ["--corpus", str(DEMO), "--corpus-chunks", "40", "--target", "2000", "--queries", "5"]
    )

    report(measure(args))

    lines = capsys.readouterr().out.strip().splitlines()
    line = json.loads(lines[-1])
    assert line["benchmark"] == "retrieval" and line["queries"] == 5
    assert (line["chunks"], line["corpus_chunks"], line["replicas"]) == (2000, 40, 50)
    assert 0 <= line["hnsw_recall_at_10"] <= 1 and line["bm25_max_abs_diff"] < 1e-6
    assert set(line["met"]) == {"p95", "recall", "bm25"}
    assert any(row.startswith("hybrid latency p50/p95/p99") for row in lines)
    # The bulk load names only what the benchmark knows; the model's defaults fill the rest.
    loaded = Chunk.objects.filter(account__slug="bench")
    assert loaded.count() == line["chunks"]
    assert not loaded.exclude(safety_flags=[]).exists()
    assert not loaded.exclude(injection_score=None, embedding_next=None).exists()
    assert not loaded.filter(created_at__isnull=True).exists()
