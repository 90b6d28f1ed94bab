"""`manage.py evaluate`: retrieval metrics per mode on a question file."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from kb.evaluation.golden import GoldenQuestion
from kb.evaluation.metrics import RetrievedChunk, first_hit_rank, ndcg_at_k
from kb.models import Account

pytestmark = pytest.mark.django_db


def test_hits_count_answer_strings_or_expected_sources() -> None:
    question = GoldenQuestion("q", answers=("14 Days",), sources=("refunds.md",))
    chunks = [
        RetrievedChunk("Shipping takes 2 days.", "faq/shipping.md"),
        RetrievedChunk("Paid within 14\n days.", "other.md"),
        RetrievedChunk("Anything", "handbook/refunds.md"),
    ]

    assert first_hit_rank(chunks, question, 10) == 2
    assert first_hit_rank(chunks[:1], question, 10) is None
    assert ndcg_at_k(chunks, question, 10) == pytest.approx(1 / 2)  # 1/log2(4) / 1


def test_evaluate_reports_every_mode_and_gates_on_hybrid(tmp_path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "refunds.md").write_text("# Refunds\n\nRefunds are paid within 14 days.\n")
    (docs / "sso.md").write_text("# Single sign-on\n\nOkta connects over SAML 2.0.\n")
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        "\n".join(
            json.dumps(row)
            for row in [
                {
                    "question": "How long do refunds take?",
                    "answers": ["14 days"],
                    "sources": ["refunds.md"],
                },
                {"question": "Which identity providers work?", "answers": ["Okta"]},
                {"question": "Is there a Windows Phone app?", "answerable": False},
            ]
        )  # fmt: skip
    )
    out = io.StringIO()
    report = tmp_path / "report.json"

    call_command(
        "evaluate", questions=questions, docs=docs, json=report, min_hit_at_5=0.9, stdout=out
    )

    text = out.getvalue()
    for mode in ("vector", "keyword", "hybrid"):
        assert f"\n{mode}" in text or text.startswith(mode) or f"{mode} " in text
    assert "unanswerable questions: 1 (excluded above)" in text
    data = json.loads(report.read_text())
    hybrid = next(m for m in data["modes"] if m["mode"] == "hybrid")
    assert hybrid["questions"] == 2 and hybrid["hit_at_5"] == 1.0 and hybrid["mrr_at_10"] == 1.0
    assert not Account.objects.filter(slug__startswith="eval-").exists(), "throwaway kb removed"

    with pytest.raises(CommandError, match="evaluation below its gates: hybrid MRR@10 1.000 < 1.1"):
        call_command("evaluate", questions=questions, docs=docs, min_mrr=1.1, stdout=io.StringIO())


def test_a_malformed_question_file_names_the_line(tmp_path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"question": "ok", "answers": ["x"]}\nnot json\n')

    with pytest.raises(CommandError, match="q.jsonl:2: not a question line"):
        call_command("evaluate", questions=questions, docs=tmp_path)


def test_evaluate_can_use_an_existing_knowledge_base(kb, tmp_path) -> None:
    from ingest.services.pipeline import document_ingest
    from tests.factories import upload

    document = upload(kb, "refunds.md", b"# Refunds\n\nRefunds are paid within 14 days.\n").document
    document_ingest(document_id=document.pk)
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question": "when are refunds paid", "answers": ["14 days"]}))
    out = io.StringIO()

    call_command(
        "evaluate", questions=questions, kb=kb.slug, account=kb.account.slug, mode="keyword",
        stdout=out,
    )  # fmt: skip

    assert "keyword     1   1.000" in out.getvalue()
    with pytest.raises(CommandError, match="no knowledge base with slug 'nope'"):
        call_command("evaluate", questions=questions, kb="nope", stdout=io.StringIO())
