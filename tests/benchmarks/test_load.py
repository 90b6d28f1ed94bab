"""benchmarks/load.py runs: its smoke mode (one web worker, two closed-loop users, a few
open-loop questions, four streams to two answers), against the test database through
real web and worker processes, ends on one JSON line with the figures the issue asks
for. No timing is asserted here."""

from __future__ import annotations

import json

import pytest
from django.conf import settings

from benchmarks.load import measure, parse_args, report
from tests.support.worker import TEST_REDIS, _database_url, redis_queue

pytestmark = pytest.mark.django_db(transaction=True)

ARTICLE = b"""# Refunds

Annual plans can be refunded within 30 days of purchase, pro rata.
Monthly plans are not refunded, but you can cancel at any time.
"""


def test_the_smoke_mode_prints_a_table_and_one_json_line(capsys, tmp_path) -> None:
    documents = tmp_path / "documents"
    documents.mkdir()
    (documents / "refunds.md").write_bytes(ARTICLE)
    args = parse_args(["--workers", "1", "--closed-users", "2", "--closed-seconds", "2",
                       "--open-users", "3", "--open-interval", "1", "--open-seconds", "2",
                       "--fanout-answers", "2", "--fanout-connections", "4",
                       "--fanout-word-ms", "50", "--inprocess-threads", "1",
                       "--inprocess-seconds", "1", "--warmup", "1",
                       "--documents", str(documents)])  # fmt: skip

    with redis_queue() as queue:
        children = {
            "DATABASE_URL": _database_url(), "SECRET_KEY": settings.SECRET_KEY,
            "CELERY_BROKER_URL": TEST_REDIS, "REDIS_URL": None, "CAIRN_TASK_QUEUE": queue,
            "CAIRN_HTTPS": "false", "CAIRN_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        }  # fmt: skip
        report(measure(args, child_env=children, log_folder=tmp_path))

    lines = capsys.readouterr().out.strip().splitlines()
    line = json.loads(lines[-1])
    assert line["benchmark"] == "load" and line["workers"] == 1
    assert set(line["closed"]) == {"2"}
    assert set(line["closed"]["2"]) == {
        "answers_per_s",
        "errors",
        "error_kinds",
        "ttft_s",
        "total_s",
        "db_connections_max",
    }
    assert set(line["closed"]["2"]["ttft_s"]) == {"p50", "p95", "p99"}
    assert line["open"]["questions"] >= 0 and "total_s" in line["open"]
    assert line["fanout"]["answers"] == 2 and line["fanout"]["connections"] == 4
    assert line["fanout"]["errors"] == 0
    assert line["fanout"]["pool_threads_busy_max"] <= 2
    assert {"closed_throughput", "closed_ratio", "open_no_errors", "open_ttft_p95",
            "open_total_p95", "fanout_threads"} == set(line["met"])  # fmt: skip
    assert any(row.startswith("closed N=2") for row in lines)
