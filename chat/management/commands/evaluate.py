"""Measure retrieval on a golden question set: hit@k, MRR, nDCG and latency per mode."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from chat.answering.extractive import ExtractiveAnswerer
from chat.evaluation import AnswerReport, answers_evaluate
from chat.llm.providers.registry import configured_providers
from ingest.management.commands.ingest import collect_files
from ingest.services.pipeline import document_ingest
from ingest.services.uploads import UploadRejected, document_create
from kb.evaluation.golden import GoldenQuestion, GoldenSetError, load_questions
from kb.evaluation.metrics import ModeReport
from kb.evaluation.runner import retrieval_evaluate
from kb.models import Account, KnowledgeBase
from kb.selectors.knowledge_bases import KnowledgeBaseNotFound, knowledge_base_by_slug
from kb.selectors.search import MODES, SearchMode
from kb.services.accounts import account_ensure, knowledge_base_ensure
from kb.services.documents import accounts_delete


class Command(BaseCommand):
    help = (
        "Evaluate retrieval on a golden set (JSONL) in vector, keyword and hybrid modes; "
        "with --answers, the answers too."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--questions", required=True, type=Path, help="Golden set (JSONL).")
        parser.add_argument("--docs", type=Path, help="Load these documents into a throwaway kb.")
        parser.add_argument("--kb", help="Use this existing knowledge base instead (slug).")
        parser.add_argument("--account", help="Account slug of --kb, if ambiguous.")
        parser.add_argument("--mode", default="all", choices=["all", *MODES])
        parser.add_argument("--json", type=Path, help="Also write the report as JSON here.")
        parser.add_argument("--min-hit-at-5", type=float, help="Fail if hybrid hit@5 is lower.")
        parser.add_argument("--min-mrr", type=float, help="Fail if hybrid MRR@10 is lower.")
        parser.add_argument(
            "--answers", action="store_true",
            help="Also answer every question through the pipeline (the configured routes).",
        )  # fmt: skip
        parser.add_argument("--min-answer-contains", type=float)
        parser.add_argument("--min-citation-precision", type=float)
        parser.add_argument("--min-abstention", type=float, help="On unanswerable questions.")
        parser.add_argument("--max-false-abstention", type=float, help="On answerable ones.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            questions = load_questions(options["questions"])
        except (GoldenSetError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        try:
            self._run(questions, options)
        except KnowledgeBaseNotFound as exc:
            raise CommandError(str(exc)) from exc

    def _run(self, questions: list[GoldenQuestion], options: dict[str, Any]) -> None:
        if bool(options["docs"]) == bool(options["kb"]):
            raise CommandError("give either --docs DIR (a throwaway knowledge base) or --kb SLUG")
        modes: list[SearchMode] = list(MODES) if options["mode"] == "all" else [options["mode"]]
        throwaway: Account | None = None
        try:
            if options["docs"]:
                throwaway, knowledge_base = self._load(options["docs"])
            else:
                knowledge_base = knowledge_base_by_slug(
                    slug=options["kb"], account_slug=options["account"]
                )
            with tqdm(total=len(questions), desc="Asking", unit="q", disable=None) as bar:
                reports = retrieval_evaluate(
                    account=knowledge_base.account,
                    knowledge_bases=[knowledge_base],
                    questions=questions,
                    modes=modes,
                    on_progress=bar.update,
                )
            answers = self._answers(knowledge_base, questions) if options["answers"] else None
        finally:
            if throwaway is not None:
                accounts_delete(accounts=Account.objects.filter(pk=throwaway.pk))
        self._print(reports)
        if answers is not None:
            self._print_answers(answers)
        if options["json"]:
            report: dict[str, Any] = {
                "questions": len(questions),
                "modes": [r.as_dict() for r in reports],
            }
            if answers is not None:
                report["answers"] = answers.as_dict(with_cases=True)
            options["json"].write_text(json.dumps(report, indent=2))
        failures = self._gate(reports, options["min_hit_at_5"], options["min_mrr"])
        if answers is not None:
            failures += self._gate_answers(answers, options)
        if failures:
            raise CommandError("evaluation below its gates: " + "; ".join(failures))

    @staticmethod
    def _answers(knowledge_base: KnowledgeBase, questions: list[GoldenQuestion]) -> AnswerReport:
        # The extractive answerer paces its words for readers; evaluation needs no pacing.
        providers = {**configured_providers(), "local": ExtractiveAnswerer(token_delay=0.0)}
        with tqdm(total=len(questions), desc="Answering", unit="q", disable=None) as bar:
            return answers_evaluate(
                knowledge_base=knowledge_base, questions=questions, providers=providers,
                on_progress=bar.update,
            )  # fmt: skip

    def _print_answers(self, report: AnswerReport) -> None:
        abstention = "-" if report.abstention_rate is None else f"{report.abstention_rate:.3f}"
        self.stdout.write(
            f"answers: {report.answerable} answerable, {report.unanswerable} unanswerable; "
            f"answer-contains {report.answer_contains:.3f}, "
            f"citation precision {report.citation_precision:.3f}, "
            f"abstention {abstention}, false abstention {report.false_abstention_rate:.3f}, "
            f"TTFT p50 {report.ttft_p50_ms:.0f} ms, p95 {report.ttft_p95_ms:.0f} ms"
        )

    @staticmethod
    def _gate_answers(report: AnswerReport, options: dict[str, Any]) -> list[str]:
        failures = []
        if (low := options["min_answer_contains"]) is not None and report.answer_contains < low:
            failures.append(f"answer-contains {report.answer_contains:.3f} < {low}")
        low = options["min_citation_precision"]
        if low is not None and report.citation_precision < low:
            failures.append(f"citation precision {report.citation_precision:.3f} < {low}")
        low = options["min_abstention"]
        if low is not None and (report.abstention_rate or 0.0) < low:
            failures.append(f"abstention {report.abstention_rate or 0.0:.3f} < {low}")
        high = options["max_false_abstention"]
        if high is not None and report.false_abstention_rate > high:
            failures.append(f"false abstention {report.false_abstention_rate:.3f} > {high}")
        return failures

    def _load(self, folder: Path) -> tuple[Account, KnowledgeBase]:
        account = account_ensure(slug=f"eval-{uuid.uuid4().hex[:8]}", name="Evaluation")
        knowledge_base = knowledge_base_ensure(account=account, slug="golden", name="Golden set")
        files = collect_files([str(folder)])
        if not files:
            raise CommandError(f"{folder}: no supported documents")
        for path, source in tqdm(files, desc="Loading", unit="doc", disable=None):
            with path.open("rb") as handle:
                try:
                    document = document_create(
                        knowledge_base=knowledge_base,
                        upload=File(handle, name=path.name),
                        source=path.name,
                    ).document
                except UploadRejected as exc:
                    self.stderr.write(f"skipped {source}: {exc.reason}")
                    continue
            document_ingest(document_id=document.pk)
        return account, knowledge_base

    def _print(self, reports: list[ModeReport]) -> None:
        header = f"{'mode':<8}{'n':>4}{'hit@1':>8}{'hit@5':>8}{'hit@10':>8}{'MRR@10':>8}"
        header += f"{'nDCG@10':>9}{'p50 ms':>8}{'p95 ms':>8}"
        self.stdout.write(header)
        for r in reports:
            ndcg = f"{r.ndcg_at_10:.3f}" if r.ndcg_at_10 is not None else "-"
            self.stdout.write(
                f"{r.mode:<8}{r.questions:>4}{r.hit_at_1:>8.3f}{r.hit_at_5:>8.3f}"
                f"{r.hit_at_10:>8.3f}{r.mrr_at_10:>8.3f}{ndcg:>9}"
                f"{r.latency_p50_ms:>8.1f}{r.latency_p95_ms:>8.1f}"
            )
        first = reports[0]
        if first.unanswerable:
            flagged = ", ".join(
                f"{r.mode} {r.unanswerable_nothing_relevant:.2f}"
                for r in reports
                if r.unanswerable_nothing_relevant is not None
            )
            self.stdout.write(
                f"unanswerable questions: {first.unanswerable} (excluded above); "
                f"share flagged 'nothing relevant': {flagged}"
            )

    @staticmethod
    def _gate(reports: list[ModeReport], min_hit: float | None, min_mrr: float | None) -> list[str]:
        hybrid = next((r for r in reports if r.mode == "hybrid"), None)
        failures: list[str] = []
        if hybrid is None:
            return failures
        if min_hit is not None and hybrid.hit_at_5 < min_hit:
            failures.append(f"hybrid hit@5 {hybrid.hit_at_5:.3f} < {min_hit}")
        if min_mrr is not None and hybrid.mrr_at_10 < min_mrr:
            failures.append(f"hybrid MRR@10 {hybrid.mrr_at_10:.3f} < {min_mrr}")
        return failures
