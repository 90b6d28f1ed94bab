"""benchmarks/ingest.py runs: its smoke mode (two demo documents, one worker process)
uploads through the real service, a real Celery worker on the test database ingests
them, and the run ends on one JSON line with the issue's figures. No timing is
asserted here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.ingest import measure, parse_args, report
from tests.support.processes import STRONG_SECRET_KEY, manage_env
from tests.support.worker import TEST_REDIS, _database_url, redis_queue

pytestmark = pytest.mark.django_db(transaction=True)  # the worker sees what is committed

DEMO = Path(__file__).resolve().parents[2] / "kb" / "demo" / "documents"


def test_the_smoke_mode_prints_a_table_and_one_json_line(capsys, settings, tmp_path) -> None:
    args = parse_args(["--corpus", str(DEMO), "--limit", "2", "--concurrency", "1"])

    with redis_queue() as queue:
        worker_env = manage_env(
            DATABASE_URL=_database_url(), SECRET_KEY=STRONG_SECRET_KEY,
            CELERY_BROKER_URL=TEST_REDIS, REDIS_URL=None, CAIRN_HTTPS="false",
            CAIRN_MEDIA_ROOT=str(settings.MEDIA_ROOT), CAIRN_TASK_QUEUE=queue,
        )  # fmt: skip
        report(measure(args, worker_env=worker_env, worker_log=tmp_path / "worker.log"))

    lines = capsys.readouterr().out.strip().splitlines()
    line = json.loads(lines[-1])
    assert line["benchmark"] == "ingest" and line["concurrency"] == 1
    assert (line["documents"], line["ready"], line["failed"]) == (2, 2, 0)
    assert line["chunks"] > 0 and line["tokens"] > 0 and line["ratio"] > 0
    assert isinstance(line["met"], bool) and line["target_ratio"] == 0.8
    assert any(row.startswith("ratio pipeline/raw") for row in lines)
