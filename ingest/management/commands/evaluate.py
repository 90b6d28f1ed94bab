"""Measure retrieval on a golden question set: hit@k, MRR, nDCG and latency per mode."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

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
    help = "Evaluate retrieval on a golden set (JSONL) in vector, keyword and hybrid modes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--questions", required=True, type=Path, help="Golden set (JSONL).")
        parser.add_argument("--docs", type=Path, help="Load these documents into a throwaway kb.")
        parser.add_argument("--kb", help="Use this existing knowledge base instead (slug).")
        parser.add_argument("--account", help="Account slug of --kb, if ambiguous.")
        parser.add_argument("--mode", default="all", choices=["all", *MODES])
        parser.add_argument("--json", type=Path, help="Also write the report as JSON here.")
        parser.add_argument("--min-hit-at-5", type=float, help="Fail if hybrid hit@5 is lower.")
        parser.add_argument("--min-mrr", type=float, help="Fail if hybrid MRR@10 is lower.")

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
        finally:
            if throwaway is not None:
                accounts_delete(accounts=Account.objects.filter(pk=throwaway.pk))
        self._print(reports)
        if options["json"]:
            options["json"].write_text(
                json.dumps(
                    {"questions": len(questions), "modes": [r.as_dict() for r in reports]}, indent=2
                )
            )
        self._gate(reports, options["min_hit_at_5"], options["min_mrr"])

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
    def _gate(reports: list[ModeReport], min_hit: float | None, min_mrr: float | None) -> None:
        hybrid = next((r for r in reports if r.mode == "hybrid"), None)
        if hybrid is None or (min_hit is None and min_mrr is None):
            return
        failures = []
        if min_hit is not None and hybrid.hit_at_5 < min_hit:
            failures.append(f"hybrid hit@5 {hybrid.hit_at_5:.3f} < {min_hit}")
        if min_mrr is not None and hybrid.mrr_at_10 < min_mrr:
            failures.append(f"hybrid MRR@10 {hybrid.mrr_at_10:.3f} < {min_mrr}")
        if failures:
            raise CommandError("retrieval regressed: " + "; ".join(failures))
