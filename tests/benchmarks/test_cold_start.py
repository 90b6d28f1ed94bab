"""benchmarks/cold_start.py: its report ends on one JSON line with the first and last
latencies and their ratio, and it has ten different demo questions to ask. The
measurement itself starts real servers for minutes and is run by hand; no timing is
asserted here."""

from __future__ import annotations

import json

from benchmarks.cold_start import TARGET_RATIO, questions, report


def test_there_are_ten_different_answerable_demo_questions() -> None:
    asked = questions(10)

    assert len(asked) == len(set(asked)) == 10


def test_the_report_prints_a_table_and_one_json_line(capsys) -> None:
    latencies = [1.2, 0.9, 0.8, 0.8, 0.9, 0.8, 0.7, 0.8, 0.9, 1.0]

    report({"ready_s": 9.5, "questions": questions(10), "latencies_s": latencies})

    lines = capsys.readouterr().out.strip().splitlines()
    line = json.loads(lines[-1])
    assert line["benchmark"] == "cold_start" and line["questions"] == 10
    assert (line["first_s"], line["last_s"], line["ratio"]) == (1.2, 1.0, 1.2)
    assert line["target_ratio"] == TARGET_RATIO and line["met"] is True
    assert sum(row.lstrip().startswith(("1 ", "10 ")) for row in lines) == 2
