"""benchmarks/retrieval.py runs: its smoke mode (40 chunks of the demo documents
replicated to 1,000 then 2,000, 5 queries) in the test database, bulk-loads chunks whose
columns the Chunk model fills (its COPY once lacked safety_flags and died on NOT NULL),
times searches in a fresh process and ends on one JSON line with the issue's figures.
No timing is asserted here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import retrieval
from benchmarks.retrieval import measure, parse_args, report

# Committed data: the fresh process that times the searches reads the same database.
pytestmark = pytest.mark.django_db(transaction=True)

DEMO = Path(__file__).resolve().parents[2] / "kb" / "demo" / "documents"


@pytest.fixture(autouse=True)
def _embeddings_cached_privately(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The corpus embeddings go to the test's own folder, not benchmarks/.cache."""
    monkeypatch.setattr(retrieval, "CACHE", tmp_path / "cache")


def test_the_smoke_mode_prints_a_table_and_one_json_line(capsys) -> None:
    from kb.models import Chunk, KeywordStats

    args = parse_args(
        ["--corpus", str(DEMO), "--corpus-chunks", "40", "--sizes", "1000,2000", "--queries", "5"]
    )

    report(measure(args))

    lines = capsys.readouterr().out.strip().splitlines()
    line = json.loads(lines[-1])
    assert line["benchmark"] == "retrieval" and line["queries"] == 5
    assert [(s["chunks"], s["replicas"]) for s in line["sizes"]] == [(1000, 25), (2000, 50)]
    for size in line["sizes"]:
        assert 0 <= size["hnsw_recall_at_10"] <= 1 and size["first_query_ms"] > 0
        assert size["keyword_write_chunks_per_s"] > 0 and size["keyword_reindex_chunks_per_s"] > 0
        assert size["database_mib_per_100k"] >= size["keyword_index_mib_per_100k"] > 0
    assert line["bm25_max_abs_diff"] < 1e-6 and line["met"]["bm25_equal"] is True
    assert line["met"]["hybrid_p95_500k"] is None  # not measured at this size
    assert any(row.startswith("chunks") and "keyword p50/p95" in row for row in lines)
    # The bulk load names only what the benchmark knows; the model's defaults fill the rest,
    # and the database's triggers indexed every chunk's keywords as they were written.
    loaded = Chunk.objects.filter(account__slug="bench")
    assert loaded.count() == 2000
    assert not loaded.exclude(safety_flags=[]).exists()
    assert not loaded.exclude(injection_score=None, embedding_next=None).exists()
    assert not loaded.filter(created_at__isnull=True).exists()
    assert sum(KeywordStats.objects.values_list("chunks", flat=True)) == 2000
