"""Fit the hybrid reranker and the extractive answerer's abstention on golden questions.

    manage.py answerer_fit --docs tests/data/squad2_dev/docs \\
        --questions tests/data/squad2_dev/questions.jsonl \\
        --train-sources Huguenot.md,Steam_engine.md,... [--write]

Cross-validates by source first (chat.fitting) and prints the held-out figures of
each fold and pooled; with --write, stores the weights fitted on --train-sources
(default: every source) in kb/search/rerank_weights.json and
chat/answering/abstention_weights.json.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from chat.answering.abstention import WEIGHTS_FILE as ABSTENTION_WEIGHTS
from chat.answering.abstention import abstention_model
from chat.evaluation import NoDocuments, golden_documents_load
from chat.fitting import DEFAULT_TARGET_FALSE_ABSTENTION, Figures, answerer_fit, traces_collect
from kb.evaluation.golden import GoldenSetError, load_questions
from kb.models import Account
from kb.search.rerank import WEIGHTS_FILE as RERANK_WEIGHTS
from kb.search.rerank import rerank_model
from kb.services.documents import accounts_delete


class Command(BaseCommand):
    help = (
        "Fit the reranker and the abstention model on a golden set, cross-validated by "
        "source (document); --write stores the weights."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--docs", type=Path, required=True, help="The documents (a folder).")
        parser.add_argument("--questions", type=Path, required=True, help="Golden set (JSONL).")
        parser.add_argument(
            "--train-sources", default="",
            help="Comma-separated sources the shipped weights are fitted on (default: all).",
        )  # fmt: skip
        parser.add_argument(
            "--target-false-abstention", type=float, default=DEFAULT_TARGET_FALSE_ABSTENTION,
            help="Share of the training folds' answerable questions left unanswered at the "
            "chosen threshold.",
        )  # fmt: skip
        parser.add_argument("--no-cross-validation", action="store_true")
        parser.add_argument("--write", action="store_true", help="Store the fitted weights.")
        parser.add_argument("--json", type=Path, help="Also write the report as JSON here.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            questions = load_questions(options["questions"])
        except (GoldenSetError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        sources = {q.sources[0] for q in questions if q.sources}
        train = [s.strip() for s in options["train_sources"].split(",") if s.strip()]
        unknown = sorted(set(train) - sources)
        if unknown:
            raise CommandError(f"--train-sources: no questions of {', '.join(unknown)}")
        try:
            account, knowledge_base = golden_documents_load(options["docs"])
        except NoDocuments as exc:
            raise CommandError(str(exc)) from exc
        try:
            with tqdm(total=len(questions), desc="Asking", unit="q", disable=None) as bar:
                traces = traces_collect(
                    knowledge_base=knowledge_base, questions=questions, on_progress=bar.update
                )
            self._row_header()
            report = answerer_fit(
                knowledge_base=knowledge_base,
                traces=traces,
                train_sources=train or None,
                target_false_abstention=options["target_false_abstention"],
                cross_validate=not options["no_cross_validation"],
                label=str(options["questions"]),
                on_fold=self._row,
            )
        finally:
            accounts_delete(accounts=Account.objects.filter(pk=account.pk))
        if report.folds:
            self._row(report.pooled, label="pooled (held out)")
        if options["write"]:
            report.reranker.save(RERANK_WEIGHTS)
            report.abstention.save(ABSTENTION_WEIGHTS)
            rerank_model.cache_clear()
            abstention_model.cache_clear()
            self.stdout.write(f"wrote {RERANK_WEIGHTS} and {ABSTENTION_WEIGHTS}")
        result = {
            "folds": [asdict(f) for f in report.folds],
            "pooled": asdict(report.pooled) if report.folds else None,
            "threshold": report.abstention.meta["threshold"],
            "train_sources": report.abstention.meta["sources"],
        }
        if options["json"]:
            options["json"].write_text(json.dumps(result, indent=2))
        self.stdout.write(json.dumps(result["pooled"]))

    def _row_header(self) -> None:
        self.stdout.write(
            f"{'held out':<26}{'ans':>5}{'unans':>6}{'hit@1':>7}{'hit@5':>7}"
            f"{'contains':>9}{'abstain':>8}{'false':>7}"
        )

    def _row(self, figures: Figures, label: str = "") -> None:
        name = label or ",".join(figures.sources)
        self.stdout.write(
            f"{name:<26}{figures.answerable:>5}{figures.unanswerable:>6}"
            f"{figures.answer_hit_at_1:>7.3f}{figures.answer_hit_at_5:>7.3f}"
            f"{figures.answer_contains:>9.3f}{figures.abstention:>8.3f}"
            f"{figures.false_abstention:>7.3f}"
        )
