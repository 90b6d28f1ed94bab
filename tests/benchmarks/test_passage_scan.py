"""benchmarks/passage_scan.py runs: its smoke mode on the demo documents ends on one JSON
line with the false flags per corpus and the recall per planted set. No timing is
asserted here."""

from __future__ import annotations

import json

from benchmarks.passage_scan import measure, parse_args, report


def test_the_smoke_mode_prints_a_table_and_one_json_line(capsys) -> None:
    args = parse_args(["--corpus", "kb/demo/documents", "--limit", "5"])

    report(measure(args), args)

    lines = capsys.readouterr().out.strip().splitlines()
    line = json.loads(lines[-1])
    assert line["benchmark"] == "passage_scan" and line["limit"] == 5
    (corpus,) = line["benign"].values()
    assert 0 < corpus["chunks"] <= 5 and corpus["false_flags"] == 0
    assert line["recall"]["planted (tests/data)"] == 1.0
    assert 0 <= line["recall"]["question injections"] <= 1
    assert any(row.startswith("planted instructions") for row in lines)
