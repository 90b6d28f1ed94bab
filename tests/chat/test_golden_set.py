"""The CI gate: retrieval and answers on the golden set must not regress.

Thresholds sit just under the figures measured when they were set; raise them
when quality improves, never lower them to make a change pass.

- retrieval (2026-11-22): hybrid hit@5 0.963, MRR@10 0.940 on 82 answerable questions;
- answers with the extractive answerer (2026-11-22): answer-contains 0.841, citation
  precision 0.947, abstention 0.692 (13 unanswerable), false abstention 0.073.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parent.parent.parent
MIN_HYBRID_HIT_AT_5 = 0.93
MIN_HYBRID_MRR_AT_10 = 0.90
# The floors were 0.7 / 0.9 / 0.6 / 0.15; raised to just under what was measured.
ANSWER_GATES = {
    "min_answer_contains": 0.80,
    "min_citation_precision": 0.92,
    "min_abstention": 0.65,
    "max_false_abstention": 0.10,
}


def test_retrieval_and_answers_on_the_golden_set_hold_their_level(tmp_path) -> None:
    report = tmp_path / "golden.json"

    call_command(
        "evaluate",
        docs=REPO / "kb" / "demo" / "documents",
        questions=REPO / "tests" / "golden" / "questions.jsonl",
        json=report,
        min_hit_at_5=MIN_HYBRID_HIT_AT_5,
        min_mrr=MIN_HYBRID_MRR_AT_10,
        answers=True,
        **ANSWER_GATES,
        stdout=io.StringIO(),
    )

    result = json.loads(report.read_text())
    modes = {m["mode"]: m for m in result["modes"]}
    assert set(modes) == {"hybrid", "vector", "keyword"}
    assert modes["hybrid"]["questions"] >= 60
    # Fusion earns its keep: hybrid is at least as good at rank 1 as either channel alone.
    assert modes["hybrid"]["hit_at_1"] >= max(
        modes["vector"]["hit_at_1"], modes["keyword"]["hit_at_1"]
    )
    answers = result["answers"]
    assert answers["answerable"] >= 60 and answers["unanswerable"] >= 10
    assert len(answers["cases"]) == answers["questions"]
