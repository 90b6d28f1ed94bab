"""THROWAWAY (extractive tuning): the real pipeline's answer metrics. Delete me."""

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parent.parent.parent


def test_print_answer_metrics(tmp_path) -> None:
    out = io.StringIO()
    report = tmp_path / "r.json"
    call_command(
        "evaluate",
        docs=REPO / "kb" / "demo" / "documents",
        questions=REPO / "tests" / "golden" / "questions.jsonl",
        json=report,
        answers=True,
        stdout=out,
    )
    print(out.getvalue())
    data = json.loads(report.read_text())["answers"]
    Path("/tmp/tune/pipeline_cases.json").write_text(json.dumps(data, indent=1))
