"""benchmarks/recovery.py runs: its smoke mode (two answers, a reaper every 2 s), against
the test database through real web and worker processes, ends on one JSON line with the
figures the issue asks for. No timing is asserted here."""

from __future__ import annotations

import json

import pytest
from django.conf import settings

from benchmarks.recovery import measure, parse_args, report
from tests.support.worker import TEST_REDIS, _database_url, redis_queue

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_smoke_mode_prints_a_table_and_one_json_line(capsys, tmp_path) -> None:
    args = parse_args(["--answers", "2", "--interval", "2", "--stale", "2", "--soak", "1",
                       "--word-ms", "3000"])  # fmt: skip

    with redis_queue() as queue:
        children = {
            "DATABASE_URL": _database_url(), "SECRET_KEY": settings.SECRET_KEY,
            "CELERY_BROKER_URL": TEST_REDIS, "REDIS_URL": None, "CAIRN_TASK_QUEUE": queue,
            "CAIRN_HTTPS": "false", "CAIRN_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        }  # fmt: skip
        report(measure(args, child_env=children, log_folder=tmp_path))

    lines = capsys.readouterr().out.strip().splitlines()
    line = json.loads(lines[-1])
    assert line["benchmark"] == "recovery" and line["answers"] == 2
    assert 0 < line["streaming_at_kill"] <= 2 and line["failed_while_live"] == 0
    assert line["regenerated_answered"] == line["streaming_at_kill"]
    assert set(line["met"]) == {"all_streaming", "live_left_alone", "recovery_time", "regenerated"}
    assert any(row.startswith("regenerate accepted") for row in lines)
