"""benchmarks/cold_start.py: its report ends on one JSON line with the first latency, the
median of the others, the last, and the first's ratio to that median; and it has ten
different demo questions to ask. The
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
    assert (line["first_s"], line["median_rest_s"], line["last_s"]) == (1.2, 0.8, 1.0)
    assert line["ratio"] == 1.5  # against the median of questions 2-10, not the 10th alone
    assert line["target_ratio"] == TARGET_RATIO and line["met"] is True
    assert sum(row.lstrip().startswith(("1 ", "10 ")) for row in lines) == 2


def test_the_prepared_folder_has_no_embedding_left_for_the_worker(tmp_path, monkeypatch) -> None:
    # Ingestion queues the units' embedding after each document; prepare() stops the server
    # as soon as the documents are ready, so it stores what is left before any timing.
    from benchmarks import cold_start

    done: list[str] = []

    class Server:
        def __init__(self, home, log) -> None:
            done.append("serve")

        def wait_ready(self) -> float:
            return 1.0

        def stop(self) -> None:
            done.append("stop")

    def manage(home, *args: str) -> str:
        done.append(args[0])
        return "8 0\n" if args[0] == "shell" else ""

    monkeypatch.setattr(cold_start, "Server", Server)
    monkeypatch.setattr(cold_start, "manage", manage)

    cold_start.prepare(tmp_path / "home", tmp_path / "prepare.log")

    assert done == ["serve", "shell", "stop", "units_embed"]
