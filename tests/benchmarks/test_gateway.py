"""benchmarks/gateway.py runs: its smoke mode (5 timed calls of each kind, 4 new
wordings), in the test database against the fake server on loopback, ends on one JSON
line with the issue's figures. No timing is asserted here."""

from __future__ import annotations

import json

import pytest

from benchmarks.gateway import measure, parse_args, report

pytestmark = pytest.mark.django_db


def test_the_smoke_mode_prints_a_table_and_one_json_line(capsys) -> None:
    args = parse_args(["--calls", "5", "--wordings", "4"])

    report(measure(args))

    lines = capsys.readouterr().out.strip().splitlines()
    line = json.loads(lines[-1])
    assert line["benchmark"] == "gateway" and line["calls"] == 5
    assert 0 <= line["semantic_hits"] <= 4
    assert {"ttft_overhead_p50_ms", "total_overhead_p50_ms", "exact_hit_p95_ms"} <= set(line)
    assert set(line["met"]) == {"ttft_overhead", "exact", "semantic"}
    assert any(row.startswith("exact-cache hit p50/p95") for row in lines)
