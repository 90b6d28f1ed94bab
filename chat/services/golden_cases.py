"""Golden cases: a reviewer's verdict on a thumbs-down answer, kept and asked again.

A case is made from the review queue (``golden_case_create``) and run on demand
(``golden_cases_run``: the admin's "Run now", ``golden_cases_run_task``, and
``manage.py evaluate --from-db``), each run going through the same answer pipeline as
the chat, as evaluation asks (chat.evaluation: no history, caches off).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from chat.answering.pipeline import AnswerOutcome
from chat.answering.questions import QuestionRejected, question_clean
from chat.evaluation import (
    AnswerCase,
    AnswerReport,
    answer_case,
    answer_outcome,
    contains_answer,
    evaluation_providers,
    report_from,
)
from chat.models import GoldenCase, Message
from kb.evaluation.golden import GoldenQuestion
from kb.models import Document
from llm.gateway import LlmGateway
from llm.providers.base import Provider

logger = logging.getLogger(__name__)

_DETAIL_CHARS = GoldenCase._meta.get_field("last_detail").max_length or 500
_EXPECTED_ANSWER_CHARS = GoldenCase._meta.get_field("expected_answer").max_length or 500


class GoldenCaseRejected(Exception):
    """The case cannot be made as given; the message says why, for the reviewer."""


@dataclass(frozen=True)
class GoldenCaseSaved:
    case: GoldenCase
    created: bool
    changed: bool  # an existing case took new expectations


def golden_case_create(
    *,
    answer: Message,
    question: str,
    expected_answer: str = "",
    expected_source: Document | None = None,
    expect_abstention: bool = False,
    created_by_id: int | None = None,
) -> GoldenCaseSaved:
    """Make a golden case from a rated answer, in the answer's knowledge base.

    Idempotent: there is one case per knowledge base and question, so making it again
    returns that case, given the new expectations if they differ (its last verdict is
    then cleared: it was about other expectations).
    """
    conversation = answer.conversation
    try:
        question = question_clean(question)
    except QuestionRejected as exc:
        raise GoldenCaseRejected(str(exc)) from exc
    expected_answer = " ".join(expected_answer.split())
    if len(expected_answer) > _EXPECTED_ANSWER_CHARS:
        raise GoldenCaseRejected(
            f"Keep the expected text to the words that matter ({_EXPECTED_ANSWER_CHARS} "
            "characters at most)."
        )
    if expected_source is not None and (
        expected_source.account_id != conversation.account_id
        or expected_source.knowledge_base_id != conversation.knowledge_base_id
    ):
        raise GoldenCaseRejected("The expected source must be in the same knowledge base.")
    if expect_abstention and (expected_answer or expected_source):
        raise GoldenCaseRejected(
            "A case that expects “the knowledge base does not say” cannot also expect "
            "an answer text or a source."
        )
    if not (expect_abstention or expected_answer or expected_source):
        raise GoldenCaseRejected(
            "Say what the right answer is: text it contains, a document it cites, "
            "or that the knowledge base does not say."
        )
    expectations: dict[str, Any] = {
        "expected_answer": expected_answer,
        "expected_source_id": expected_source.pk if expected_source else None,
        "expected_source_title": expected_source.title if expected_source else "",
        "expected_source_path": expected_source.source if expected_source else "",
        "expect_abstention": expect_abstention,
    }
    with transaction.atomic():
        case, created = GoldenCase.objects.select_for_update().get_or_create(
            knowledge_base_id=conversation.knowledge_base_id,
            question=question,
            defaults={
                "account_id": conversation.account_id,
                "created_from": answer,
                "created_by_id": created_by_id,
                **expectations,
            },
        )
        if created:
            return GoldenCaseSaved(case, created=True, changed=False)
        changed = [name for name, value in expectations.items() if getattr(case, name) != value]
        if changed:
            for name in changed:
                setattr(case, name, expectations[name])
            _forget_verdict(case)
            case.save(
                update_fields=[
                    *changed,
                    "last_run_at", "last_passed", "last_answer", "last_detail",
                ]
            )  # fmt: skip
        return GoldenCaseSaved(case, created=False, changed=bool(changed))


def _forget_verdict(case: GoldenCase) -> None:
    case.last_run_at = None
    case.last_passed = None
    case.last_answer = ""
    case.last_detail = ""


def golden_question(case: GoldenCase) -> GoldenQuestion:
    """The case as a line of a golden set, for the evaluation's metrics."""
    return GoldenQuestion(
        question=case.question,
        answers=(case.expected_answer,) if case.expected_answer else (),
        sources=(case.expected_source_path,) if case.expected_source_path else (),
        answerable=not case.expect_abstention,
    )


def golden_case_judge(*, case: GoldenCase, outcome: AnswerOutcome) -> tuple[bool, str]:
    """Whether ``outcome`` is what ``case`` expects; if not, why, in words for the reviewer."""
    if outcome.status not in (Message.Status.DONE, Message.Status.ABSTAINED):
        problem = outcome.problem or outcome.status
        if problem in Message.Problem.values:
            problem = str(Message.Problem(problem).label)
        return False, f"No answer: {problem}."
    abstained = outcome.status == Message.Status.ABSTAINED
    if case.expect_abstention:
        if abstained:
            return True, ""
        return False, "It answered instead of saying the knowledge base does not say."
    if abstained:
        return False, "It said the knowledge base does not say."
    reasons = []
    if case.expected_answer and not contains_answer(outcome.text, [case.expected_answer]):
        reasons.append(f"The answer does not contain “{case.expected_answer}”.")
    if case.expected_source_id or case.expected_source_path:
        cited = [ref.chunk.document for ref in outcome.cited]
        if not any(_is_expected_source(case, document) for document in cited):
            titles = ", ".join(sorted({d.title for d in cited})) or "nothing"
            expected = case.expected_source_title or case.expected_source_path
            reasons.append(f"It cites {titles}, not {expected}.")
    return not reasons, " ".join(reasons)


def _is_expected_source(case: GoldenCase, document: Document) -> bool:
    if case.expected_source_id is not None and document.pk == case.expected_source_id:
        return True
    # By source, as golden set files name documents: a re-uploaded file still counts.
    path = case.expected_source_path
    return bool(path) and (
        document.source == path or document.source.rsplit("/", 1)[-1] == path.rsplit("/", 1)[-1]
    )


@dataclass(frozen=True)
class GoldenCaseResult:
    case: GoldenCase
    passed: bool
    detail: str
    scored: AnswerCase  # the same scoring as a golden set file's questions


@dataclass
class GoldenCasesRun:
    results: list[GoldenCaseResult] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(result.passed for result in self.results)

    def report(self) -> AnswerReport:
        """The answer metrics of ``manage.py evaluate --answers``, over these cases."""
        return report_from([result.scored for result in self.results])


def golden_cases_run(
    *,
    cases: Iterable[GoldenCase],
    providers: Mapping[str, Provider] | None = None,
    on_progress: Callable[[], None] | None = None,
) -> GoldenCasesRun:
    """Ask every case's question again through the answer pipeline, judge the answer and
    record the verdict on the case (``last_*``).

    One pipeline call per case: quick with the local extractive answerer, seconds each
    with a remote model. Each verdict is written as soon as it is known (a case deleted
    meanwhile is skipped, not recreated); a case whose run raises is recorded as failed
    with the error's name, and the others still run.
    """
    if isinstance(cases, QuerySet):
        cases = cases.select_related("knowledge_base__account")
    gateway = LlmGateway(providers=providers if providers is not None else evaluation_providers())
    run = GoldenCasesRun()
    for case in cases:
        try:
            with transaction.atomic():  # a savepoint, when called inside a transaction
                outcome = answer_outcome(
                    knowledge_base=case.knowledge_base, question=case.question, gateway=gateway
                )
            passed, detail = golden_case_judge(case=case, outcome=outcome)
        except Exception as exc:  # one broken case must not stop the rest of the run
            logger.exception("golden case %s: the run failed", case.pk)
            outcome = AnswerOutcome(status=Message.Status.FAILED, problem=Message.Problem.INTERNAL)
            passed, detail = False, f"The run failed: {type(exc).__name__}."
        case.last_run_at = timezone.now()
        case.last_passed = passed
        case.last_answer = outcome.text
        case.last_detail = detail[:_DETAIL_CHARS]
        GoldenCase.objects.filter(pk=case.pk).update(
            last_run_at=case.last_run_at, last_passed=passed, last_answer=case.last_answer,
            last_detail=case.last_detail,
        )  # fmt: skip
        run.results.append(
            GoldenCaseResult(case, passed, detail, answer_case(golden_question(case), outcome))
        )
        if on_progress:
            on_progress()
    return run
