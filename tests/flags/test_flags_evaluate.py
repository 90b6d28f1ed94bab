"""`manage.py evaluate --variant KEY=VARIANT`: the golden set once per variant, side by side
with today's answers (control). A few questions of the demo golden set on its billing
article, to stay fast."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from llm.providers.registry import reset_providers
from tests.support.fake_llm import Reply, running_fake_llm

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]
QUESTION_LINES = (2, 9, 21)  # Growth plan price, refund payout, mobile app (unanswerable)


@pytest.fixture
def golden(tmp_path) -> tuple[Path, Path]:
    """Three questions of the demo golden set and the one article that answers two."""
    lines = (REPO / "tests" / "golden" / "questions.jsonl").read_text().splitlines()
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(lines[n - 1] for n in QUESTION_LINES) + "\n")
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(REPO / "kb" / "demo" / "documents" / "billing-and-refunds.md", docs)
    return questions, docs


def test_evaluate_runs_the_golden_set_under_each_variant_side_by_side(settings, golden, tmp_path):
    questions, docs = golden
    report = tmp_path / "report.json"
    out = io.StringIO()

    # The variant sends the simple route to a model that answers without citing anything
    # (so every answer is withheld as unsupported); control is the extractive answerer.
    with running_fake_llm() as server:
        settings.CAIRN_OPENAI_COMPATIBLE_BASE_URL = server.openai_base_url
        settings.CAIRN_LLM_RETRIES = 0
        reset_providers()
        server.default = Reply(text="Ledgerly is great.")
        try:
            call_command(
                "evaluate", questions=questions, docs=docs, mode="keyword", json=report,
                variant=["route_chain:simple=openai_compatible:eval-model"], stdout=out,
            )  # fmt: skip
        finally:
            reset_providers()

    text = out.getvalue()
    assert "variants:" in text
    header = text[text.index("variants:") :].splitlines()[1]
    assert header.split() == ["control", "route_chain:simple=openai_compatible:eval-model"]
    data = json.loads(report.read_text())
    control, variant = data["variants"]
    assert control["label"] == "control" and control["flags"] == {}
    assert variant["flags"] == {"route_chain:simple": "openai_compatible:eval-model"}
    # The variant really ran on its chain: the fake model was asked, and only by it.
    assert server.requests and {r.body["model"] for r in server.requests} == {"eval-model"}
    assert control["answers"]["answer_contains"] == 1.0
    assert control["answers"]["false_abstention_rate"] == 0.0
    assert variant["answers"]["false_abstention_rate"] == 1.0
    assert data["answers"] == {**control["answers"], "cases": data["answers"]["cases"]}
    false_abstention = next(line for line in text.splitlines() if line.startswith("false abst"))
    assert false_abstention.split()[-2:] == ["0.000", "1.000"]


def test_a_variant_is_checked_as_the_admin_checks_it(golden):
    questions, docs = golden

    with pytest.raises(CommandError, match="no answer prompt 'v99'"):
        call_command("evaluate", questions=questions, docs=docs, variant=["prompt_version=v99"])
    with pytest.raises(CommandError, match="expected KEY=VARIANT"):
        call_command("evaluate", questions=questions, docs=docs, variant=["prompt_version"])
    with pytest.raises(CommandError, match="give it too"):
        call_command("evaluate", from_db=True, variant=["prompt_version=v1"])
