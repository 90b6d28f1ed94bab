"""benchmarks/semantic_cache.py runs: its smoke mode, in the test database, ends on one
JSON line with the figures the issue asks for. No timing is asserted here."""

from __future__ import annotations

import json

import pytest

from benchmarks.semantic_cache import measure, parse_args, report

pytestmark = pytest.mark.django_db


def test_the_smoke_mode_prints_a_table_and_one_json_line(capsys) -> None:
    args = parse_args(["--questions", "12", "--wordings", "2"])

    report(measure(args))

    lines = capsys.readouterr().out.strip().splitlines()
    line = json.loads(lines[-1])
    assert line["benchmark"] == "semantic_cache" and 0 < line["questions"] <= 12
    assert line["different_answer_served"] <= line["different_answer_pairs"]
    assert line["paraphrases"] > 0 and 0 <= line["paraphrase_hit_share"] <= 1
    assert set(line["met"]) == {"no_wrong_pairs", "paraphrases", "latency"}
    # CPU time beside wall time (a shared machine's load moves the latter), and the lookup
    # without the embedding that retrieval has already made in the pipeline.
    assert {"semantic_hit_cpu_p95_ms", "lookup_p95_ms", "load_average"} <= set(line)
    assert any(row.startswith("paraphrased wordings") for row in lines)
