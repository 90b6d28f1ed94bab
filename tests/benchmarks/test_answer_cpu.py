"""benchmarks/answer_cpu.py runs: its smoke mode, in the test database, ends on one JSON
line with the figures the issue asks for. No timing is asserted here."""

from __future__ import annotations

import json

import pytest

from benchmarks.answer_cpu import measure, parse_args, report

pytestmark = pytest.mark.django_db


def test_the_smoke_mode_prints_a_table_and_one_json_line(capsys, settings) -> None:
    settings.CAIRN_EXTRACTIVE_TOKEN_DELAY_MS = 0

    report(measure(parse_args(["--questions", "3"])))

    lines = capsys.readouterr().out.strip().splitlines()
    line = json.loads(lines[-1])
    assert line["benchmark"] == "answer_cpu" and line["questions"] == 3
    assert line["answered"] + line["abstained"] == 3 and line["served_from_cache"] == 0
    assert {"cpu_p50_ms", "cpu_p95_ms", "cpu_mean_ms", "wall_p50_ms"} <= set(line)
    assert set(line["met"]) == {"cpu_p50_le_60ms"}
    assert any(row.startswith("CPU per answer") for row in lines)
