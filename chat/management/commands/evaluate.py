"""Measure retrieval on a golden question set: hit@k, MRR, nDCG and latency per mode.

With --answers, the answers too; with --from-db, also the golden cases reviewers made
from thumbs-down answers (chat.models.GoldenCase), each on its own knowledge base. With
--variant KEY=VARIANT (repeatable), the answers once more per feature-flag variant, shown
side by side with today's (control).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from chat.evaluation import (
    AnswerReport,
    NoDocuments,
    VariantRun,
    answers_evaluate,
    answers_evaluate_variants,
    evaluation_providers,
    golden_documents_load,
)
from chat.models import GoldenCase
from chat.services.golden_cases import golden_cases_run, golden_question
from flags.models import KEY_PATTERN
from flags.registry import validator_for
from kb.evaluation.golden import GoldenQuestion, GoldenSetError, load_questions
from kb.evaluation.metrics import ModeReport
from kb.evaluation.runner import retrieval_evaluate
from kb.models import Account, KnowledgeBase
from kb.selectors.knowledge_bases import KnowledgeBaseNotFound, knowledge_base_by_slug
from kb.selectors.search import MODES, SearchMode
from kb.services.documents import accounts_delete


class Command(BaseCommand):
    help = (
        "Evaluate retrieval on a golden set (JSONL) in vector, keyword and hybrid modes; "
        "with --answers, the answers too; with --from-db, the golden cases in the database."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--questions", type=Path, help="Golden set (JSONL).")
        parser.add_argument("--docs", type=Path, help="Load these documents into a throwaway kb.")
        parser.add_argument("--kb", help="Use this existing knowledge base instead (slug).")
        parser.add_argument(
            "--account", help="Account slug of --kb, if ambiguous; with --from-db, its cases only."
        )
        parser.add_argument(
            "--from-db", action="store_true",
            help="Also run the golden cases made in the admin (those of --kb, or --account, or "
            "all), each on its own knowledge base, and record their verdicts.",
        )  # fmt: skip
        parser.add_argument("--mode", default="all", choices=["all", *MODES])
        parser.add_argument("--json", type=Path, help="Also write the report as JSON here.")
        parser.add_argument("--min-hit-at-5", type=float, help="Fail if hybrid hit@5 is lower.")
        parser.add_argument("--min-mrr", type=float, help="Fail if hybrid MRR@10 is lower.")
        parser.add_argument(
            "--min-answer-hit-at-1", type=float, help="Fail if hybrid answer hit@1 is lower."
        )
        parser.add_argument(
            "--min-answer-hit-at-5", type=float, help="Fail if hybrid answer hit@5 is lower."
        )
        parser.add_argument(
            "--answers", action="store_true",
            help="Also answer every question through the pipeline (the configured routes).",
        )  # fmt: skip
        parser.add_argument(
            "--variant", action="append", default=[], metavar="KEY=VARIANT",
            help="Also answer the golden set under this feature-flag variant (repeatable, "
            "e.g. --variant prompt_version=v1 --variant route_chain:simple=openai:gpt-4o-mini) "
            "and print each run's figures beside today's (control); implies --answers.",
        )  # fmt: skip
        parser.add_argument("--min-answer-contains", type=float)
        parser.add_argument("--min-citation-precision", type=float)
        parser.add_argument("--min-abstention", type=float, help="On unanswerable questions.")
        parser.add_argument("--max-false-abstention", type=float, help="On answerable ones.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["questions"] is None:
            if not options["from_db"]:
                raise CommandError("give --questions FILE.jsonl, --from-db, or both")
            if options["docs"]:
                raise CommandError("--docs loads documents for --questions; give both")
        options["variants"] = [self._variant(raw) for raw in options["variant"]]
        if options["variants"] and options["questions"] is None:
            raise CommandError("--variant runs the answers of --questions; give it too")
        questions: list[GoldenQuestion] = []
        if options["questions"] is not None:
            try:
                questions = load_questions(options["questions"])
            except (GoldenSetError, OSError) as exc:
                raise CommandError(str(exc)) from exc
        report: dict[str, Any] = {}
        failures: list[str] = []
        try:
            if questions:
                report, failures = self._run(questions, options)
            if options["from_db"]:
                report["golden_cases"], case_failures = self._run_cases(options)
                failures += case_failures
        except KnowledgeBaseNotFound as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            options["json"].write_text(json.dumps(report, indent=2))
        if failures:
            raise CommandError("evaluation below its gates: " + "; ".join(failures))

    def _run(
        self, questions: list[GoldenQuestion], options: dict[str, Any]
    ) -> tuple[dict[str, Any], list[str]]:
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
            runs: list[VariantRun] = []
            if options["variants"]:
                runs = self._variant_runs(knowledge_base, questions, options["variants"])
                answers: AnswerReport | None = runs[0].report
            elif options["answers"]:
                answers = self._answers(knowledge_base, questions)
            else:
                answers = None
        finally:
            if throwaway is not None:
                accounts_delete(accounts=Account.objects.filter(pk=throwaway.pk))
        self._print(reports)
        if answers is not None:
            self._print_answers(answers)
        if runs:
            self._print_variants(runs)
        report: dict[str, Any] = {
            "questions": len(questions),
            "modes": [r.as_dict() for r in reports],
        }
        if answers is not None:
            report["answers"] = answers.as_dict(with_cases=True)
        if runs:
            report["variants"] = [
                {"label": run.label, "flags": run.flags, "answers": run.report.as_dict()}
                for run in runs
            ]
        failures = self._gate(reports, options)
        if answers is not None:
            failures += self._gate_answers(answers, options)
        return report, failures

    def _run_cases(self, options: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        """The golden cases of the database, per knowledge base: the same retrieval and
        answer metrics and gates as a file's questions, then each case's verdict (recorded
        on the case, as the admin's "Run now" does)."""
        cases = GoldenCase.objects.select_related("knowledge_base__account")
        if options["kb"]:
            knowledge_base = knowledge_base_by_slug(
                slug=options["kb"], account_slug=options["account"]
            )
            cases = cases.filter(knowledge_base=knowledge_base)
        elif options["account"]:
            if not Account.objects.filter(slug=options["account"]).exists():
                raise CommandError(f"no account with slug {options['account']!r}")
            cases = cases.filter(account__slug=options["account"])
        by_knowledge_base: dict[int, list[GoldenCase]] = {}
        for case in cases.order_by("knowledge_base_id", "pk"):
            by_knowledge_base.setdefault(case.knowledge_base_id, []).append(case)
        if not by_knowledge_base:
            self.stdout.write("golden cases: none in the database")
            return [], []
        modes: list[SearchMode] = list(MODES) if options["mode"] == "all" else [options["mode"]]
        results: list[dict[str, Any]] = []
        failures: list[str] = []
        passed = total = 0
        for kb_cases in by_knowledge_base.values():
            knowledge_base = kb_cases[0].knowledge_base
            label = f"{knowledge_base.account.slug}/{knowledge_base.slug}"
            self.stdout.write(f"golden cases of {label}: {len(kb_cases)}")
            reports = retrieval_evaluate(
                account=knowledge_base.account, knowledge_bases=[knowledge_base],
                questions=[golden_question(case) for case in kb_cases], modes=modes,
            )  # fmt: skip
            with tqdm(total=len(kb_cases), desc="Answering", unit="q", disable=None) as bar:
                run = golden_cases_run(cases=kb_cases, on_progress=bar.update)
            answers = run.report()
            self._print(reports)
            self._print_answers(answers)
            for result in run.results:
                verdict = "PASS" if result.passed else "FAIL"
                detail = f" ({result.detail})" if result.detail else ""
                self.stdout.write(f"  {verdict} #{result.case.pk} {result.case.question}{detail}")
            passed, total = passed + run.passed, total + len(run.results)
            # Retrieval is gated only where there is something to find (not all "does not
            # say" cases).
            gates = self._gate(reports, options) if any(r.questions for r in reports) else []
            failures += [f"{label}: {f}" for f in gates + self._gate_answers(answers, options)]
            results.append(
                {
                    "knowledge_base": label,
                    "modes": [r.as_dict() for r in reports],
                    "answers": answers.as_dict(with_cases=True),
                    "cases": [
                        {"id": r.case.pk, "question": r.case.question, "passed": r.passed,
                         "detail": r.detail}
                        for r in run.results
                    ],
                }
            )  # fmt: skip
        self.stdout.write(f"golden cases: {passed} of {total} pass")
        return results, failures

    @staticmethod
    def _answers(knowledge_base: KnowledgeBase, questions: list[GoldenQuestion]) -> AnswerReport:
        providers = evaluation_providers()
        with tqdm(total=len(questions), desc="Answering", unit="q", disable=None) as bar:
            return answers_evaluate(
                knowledge_base=knowledge_base, questions=questions, providers=providers,
                on_progress=bar.update,
            )  # fmt: skip

    @staticmethod
    def _variant(raw: str) -> tuple[str, str]:
        """KEY=VARIANT, checked as the admin checks a flag's variant (flags.registry)."""
        key, sep, variant = raw.partition("=")
        key, variant = key.strip(), variant.strip()
        if not sep or not KEY_PATTERN.match(key) or not variant:
            raise CommandError(f"--variant {raw!r}: expected KEY=VARIANT, e.g. prompt_version=v1")
        validator = validator_for(key)
        if validator is not None:
            try:
                validator(key, variant)
            except ValueError as exc:
                raise CommandError(f"--variant {raw!r}: {exc}") from exc
        return key, variant

    @staticmethod
    def _variant_runs(
        knowledge_base: KnowledgeBase,
        questions: list[GoldenQuestion],
        variants: list[tuple[str, str]],
    ) -> list[VariantRun]:
        total = len(questions) * (len(variants) + 1)
        with tqdm(total=total, desc="Answering", unit="q", disable=None) as bar:
            return answers_evaluate_variants(
                knowledge_base=knowledge_base, questions=questions, variants=variants,
                providers=evaluation_providers(), on_progress=bar.update,
            )  # fmt: skip

    def _print_variants(self, runs: list[VariantRun]) -> None:
        """The runs side by side: one column per run, control first."""

        def rate(value: float | None) -> str:
            return "-" if value is None else f"{value:.3f}"

        rows: list[tuple[str, list[str]]] = [
            ("answer-contains", [rate(r.report.answer_contains) for r in runs]),
            ("citation precision", [rate(r.report.citation_precision) for r in runs]),
            ("abstention", [rate(r.report.abstention_rate) for r in runs]),
            ("false abstention", [rate(r.report.false_abstention_rate) for r in runs]),
            ("TTFT p50 ms", [f"{r.report.ttft_p50_ms:.0f}" for r in runs]),
            ("TTFT p95 ms", [f"{r.report.ttft_p95_ms:.0f}" for r in runs]),
            ("cost $", [f"{r.report.cost:.6f}" for r in runs]),
        ]
        width = max(12, *(len(r.label) + 2 for r in runs))
        self.stdout.write("variants:")
        self.stdout.write(f"{'':<20}" + "".join(f"{r.label:>{width}}" for r in runs))
        for name, values in rows:
            self.stdout.write(f"{name:<20}" + "".join(f"{v:>{width}}" for v in values))

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
        try:
            return golden_documents_load(
                folder,
                on_skip=lambda source, reason: self.stderr.write(f"skipped {source}: {reason}"),
            )
        except NoDocuments as exc:
            raise CommandError(str(exc)) from exc

    def _print(self, reports: list[ModeReport]) -> None:
        header = f"{'mode':<8}{'n':>5}{'hit@1':>8}{'hit@5':>8}{'hit@10':>8}{'MRR@10':>8}"
        header += f"{'nDCG@10':>9}{'ans@1':>7}{'ans@5':>7}{'p50 ms':>8}{'p95 ms':>8}"
        self.stdout.write(header)
        for r in reports:
            ndcg = f"{r.ndcg_at_10:.3f}" if r.ndcg_at_10 is not None else "-"
            answer_1 = "-" if r.answer_hit_at_1 is None else f"{r.answer_hit_at_1:.3f}"
            answer_5 = "-" if r.answer_hit_at_5 is None else f"{r.answer_hit_at_5:.3f}"
            self.stdout.write(
                f"{r.mode:<8}{r.questions:>5}{r.hit_at_1:>8.3f}{r.hit_at_5:>8.3f}"
                f"{r.hit_at_10:>8.3f}{r.mrr_at_10:>8.3f}{ndcg:>9}{answer_1:>7}{answer_5:>7}"
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
    def _gate(reports: list[ModeReport], options: dict[str, Any]) -> list[str]:
        hybrid = next((r for r in reports if r.mode == "hybrid"), None)
        failures: list[str] = []
        if hybrid is None:
            return failures
        gates = [
            ("hit@5", hybrid.hit_at_5, options["min_hit_at_5"]),
            ("MRR@10", hybrid.mrr_at_10, options["min_mrr"]),
            ("answer hit@1", hybrid.answer_hit_at_1, options.get("min_answer_hit_at_1")),
            ("answer hit@5", hybrid.answer_hit_at_5, options.get("min_answer_hit_at_5")),
        ]
        for name, value, low in gates:
            if low is not None and (value is None or value < low):
                shown = "-" if value is None else f"{value:.3f}"
                failures.append(f"hybrid {name} {shown} < {low}")
        return failures
