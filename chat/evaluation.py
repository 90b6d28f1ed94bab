"""Answer quality on a golden set: the whole pipeline, question by question.

For answerable questions: does the answer contain an expected answer string
(answer-contains), and, when it answered, does a passage it cites contain one
(citation precision)? How often did it wrongly abstain (false abstention)? For
unanswerable questions: how often did it abstain? Plus time to first token.
Strings are compared case-insensitively with whitespace collapsed.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.core.files import File
from django.db.models import Sum
from tqdm import tqdm

from chat.answering.extractive import ExtractiveAnswerer
from chat.answering.pipeline import AnswerOutcome, AnswerRequest, answer_compose
from ingest.management.commands.ingest import collect_files
from ingest.services.pipeline import document_ingest
from ingest.services.uploads import UploadRejected, document_create
from kb.evaluation.golden import GoldenQuestion
from kb.evaluation.metrics import percentile
from kb.models import Account, KnowledgeBase
from kb.services.accounts import account_ensure, knowledge_base_ensure
from llm.gateway import LlmGateway
from llm.models import LlmCall
from llm.providers.base import Provider
from llm.providers.registry import configured_providers


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def contains_answer(text: str, answers: Sequence[str]) -> bool:
    normalised = _norm(text)
    return any(_norm(answer) in normalised for answer in answers)


@dataclass(frozen=True)
class AnswerCase:
    question: str
    answerable: bool
    status: str
    answer: str
    contains_answer: bool | None  # None: no expected strings, or unanswerable
    citations_contain_answer: bool | None  # None: not answered, or nothing to look for
    time_to_first_token_ms: float | None


@dataclass
class AnswerReport:
    questions: int = 0
    answerable: int = 0
    unanswerable: int = 0
    answer_contains: float = 0.0
    citation_precision: float = 0.0
    abstention_rate: float | None = None  # on unanswerable questions
    false_abstention_rate: float = 0.0  # on answerable questions
    ttft_p50_ms: float = 0.0
    ttft_p95_ms: float = 0.0
    cost: float = 0.0  # dollars: the ledger rows of the run's answers
    cases: list[AnswerCase] = field(default_factory=list)

    def as_dict(self, *, with_cases: bool = False) -> dict[str, object]:
        data = asdict(self)
        if not with_cases:
            data.pop("cases")
        return data


def answer_case(question: GoldenQuestion, outcome: AnswerOutcome) -> AnswerCase:
    """How one outcome scores against its golden question."""
    answered = outcome.status == "done"
    expected = question.answers if question.answerable else ()
    return AnswerCase(
        question=question.question,
        answerable=question.answerable,
        status=outcome.status,
        answer=outcome.text,
        contains_answer=contains_answer(outcome.text, expected) if expected else None,
        citations_contain_answer=(
            any(contains_answer(source.chunk.text, expected) for source in outcome.cited)
            if expected and answered
            else None
        ),
        time_to_first_token_ms=outcome.time_to_first_token_ms,
    )


def _share(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


def report_from(cases: Sequence[AnswerCase]) -> AnswerReport:
    answerable = [c for c in cases if c.answerable]
    unanswerable = [c for c in cases if not c.answerable]
    ttfts = [c.time_to_first_token_ms for c in cases if c.time_to_first_token_ms is not None]
    return AnswerReport(
        questions=len(cases),
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        answer_contains=_share(
            [bool(c.contains_answer) for c in answerable if c.contains_answer is not None]
        ),  # fmt: skip
        citation_precision=_share(
            [
                bool(c.citations_contain_answer)
                for c in answerable
                if c.citations_contain_answer is not None
            ]
        ),  # fmt: skip
        abstention_rate=(
            _share([c.status == "abstained" for c in unanswerable]) if unanswerable else None
        ),
        false_abstention_rate=_share([c.status == "abstained" for c in answerable]),
        ttft_p50_ms=percentile(ttfts, 50) if ttfts else 0.0,
        ttft_p95_ms=percentile(ttfts, 95) if ttfts else 0.0,
        cases=list(cases),
    )


def answers_evaluate(
    *,
    knowledge_base: KnowledgeBase,
    questions: Sequence[GoldenQuestion],
    providers: Mapping[str, Provider] | None = None,
    on_progress: Callable[[], None] | None = None,
    flags: Mapping[str, str] | None = None,
) -> AnswerReport:
    """Ask every question through the answer pipeline (caches off, nothing persisted),
    under the feature-flag variants ``flags`` ({key: variant}; none: today's defaults)."""
    gateway = LlmGateway(providers=providers if providers is not None else configured_providers())
    cases = []
    request_ids = []
    for question in questions:
        outcome = answer_outcome(
            knowledge_base=knowledge_base, question=question.question, gateway=gateway,
            flags=flags,
        )  # fmt: skip
        cases.append(answer_case(question, outcome))
        request_ids.append(outcome.request_id)
        if on_progress:
            on_progress()
    report = report_from(cases)
    spent = LlmCall.objects.filter(request_id__in=request_ids).aggregate(cost=Sum("cost"))
    report.cost = float(spent["cost"] or 0)
    return report


@dataclass(frozen=True)
class VariantRun:
    """One run of the golden set: control (no flag) or under one flag's variant."""

    label: str  # "control" or "key=variant"
    flags: dict[str, str]
    report: AnswerReport


def answers_evaluate_variants(
    *,
    knowledge_base: KnowledgeBase,
    questions: Sequence[GoldenQuestion],
    variants: Sequence[tuple[str, str]],
    providers: Mapping[str, Provider] | None = None,
    on_progress: Callable[[], None] | None = None,
) -> list[VariantRun]:
    """The golden set once as it is today (control), then once per (flag key, variant),
    each run as if the flag gave every question's asker that variant; side by side they
    show what a rollout would change before any user gets it."""
    runs = []
    for label, flags in [("control", {}), *((f"{k}={v}", {k: v}) for k, v in variants)]:
        report = answers_evaluate(
            knowledge_base=knowledge_base, questions=questions, providers=providers,
            on_progress=on_progress, flags=flags,
        )  # fmt: skip
        runs.append(VariantRun(label, flags, report))
    return runs


def answer_outcome(
    *,
    knowledge_base: KnowledgeBase,
    question: str,
    gateway: LlmGateway,
    flags: Mapping[str, str] | None = None,
) -> AnswerOutcome:
    """One question through the answer pipeline, as evaluation asks it: on its own (no
    history), caches off, nothing persisted but the usage ledger."""
    outcome = AnswerOutcome()
    request = AnswerRequest(
        account=knowledge_base.account, knowledge_base=knowledge_base,
        question=question, use_cache=False, feature="evaluation", flags=dict(flags or {}),
    )  # fmt: skip
    for _ in answer_compose(request, outcome, gateway=gateway):
        pass
    return outcome


def evaluation_providers() -> dict[str, Provider]:
    """The configured providers, with the extractive answerer unpaced: it paces its words
    for readers, and evaluation has none."""
    return {**configured_providers(), "local": ExtractiveAnswerer(token_delay=0.0)}


class NoDocuments(Exception):
    """The folder holds no document Cairn can read."""


def golden_documents_load(
    folder: Path, *, on_skip: Callable[[str, str], None] | None = None
) -> tuple[Account, KnowledgeBase]:
    """A throwaway account whose one knowledge base holds ``folder``'s documents,
    ingested through the real pipeline (delete the account when done)."""
    files = collect_files([str(folder)])
    if not files:
        raise NoDocuments(f"{folder}: no supported documents")
    account = account_ensure(slug=f"eval-{uuid.uuid4().hex[:8]}", name="Evaluation")
    knowledge_base = knowledge_base_ensure(account=account, slug="golden", name="Golden set")
    for path, source in tqdm(files, desc="Loading", unit="doc", disable=None):
        with path.open("rb") as handle:
            try:
                document = document_create(
                    knowledge_base=knowledge_base,
                    upload=File(handle, name=path.name),
                    source=path.name,
                ).document
            except UploadRejected as exc:
                if on_skip:
                    on_skip(source, exc.reason)
                continue
        document_ingest(document_id=document.pk)
    return account, knowledge_base
