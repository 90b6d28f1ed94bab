"""benchmarks/halfvec.py runs: its smoke mode (40 chunks of the SQuAD articles spread to
2,000 rows, 5 queries, both index kinds), in the test database, ends on one JSON line with
recall, size and latency per variant. No timing is asserted here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import halfvec
from benchmarks.halfvec import measure, parse_args, report

pytestmark = pytest.mark.django_db


def test_the_smoke_mode_prints_a_table_and_one_json_line(
    capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(halfvec, "CACHE", tmp_path / "cache")
    args = parse_args([
        "--chunks", "2000", "--corpus-chunks", "40", "--queries", "5", "--ef-search", "40",
        "--variants", "vector:16:64,halfvec:16:64",
    ])  # fmt: skip

    report(measure(args))

    lines = capsys.readouterr().out.strip().splitlines()
    line = json.loads(lines[-1])
    assert line["benchmark"] == "halfvec" and line["queries"] == 5
    assert line["chunks"] == 2000 and 0 < line["searched_chunks"] < 2000
    assert [(r["storage"], r["ef_search"]) for r in line["results"]] == [
        ("vector", 40),
        ("halfvec", 40),
    ]
    for result in line["results"]:
        assert result["uses_index"] and 0 <= result["recall_at_10"] <= 1
        assert result["index_mib"] > 0
    assert len(line["halfvec"]["comparisons"]) == 1
    assert any(row.strip().startswith("halfvec m=16 efc=64") for row in lines)
