"""The review queue of thumbs-down answers, and the golden cases made from them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import models
from django.db.models import OuterRef, Q, QuerySet, Subquery

from chat.models import Feedback, GoldenCase, Message
from kb.models import Document

# Text a commenter set apart as what the answer should have said: "…", “…”, `…`, «…».
# Plain single quotes are left out: they are apostrophes far more often than quotes.
_QUOTED = re.compile(r'"([^"\n]{2,200})"|“([^”\n]{2,200})”|`([^`\n]{2,200})`|«([^»\n]{2,200})»')
# A comment this short may itself be the missing fact ("$590 per year").
_SHORT_COMMENT_CHARS = 80


@dataclass(frozen=True)
class GoldenCaseDraft:
    """What the "make golden case" form starts from."""

    question: str
    expected_answer: str
    expected_source: Document | None
    expect_abstention: bool
    sources: tuple[Document, ...]  # to choose the expected source from
    case: GoldenCase | None  # the case already made of this answer or question


def _cases_matching(*, answer_id: object, knowledge_base_id: object, question: object) -> Q:
    # A case belongs to a row when it was made from that answer, or when it holds the
    # same question (the reviewer of another thumbs-down on it made it first).
    return Q(created_from_id=answer_id) | Q(knowledge_base_id=knowledge_base_id, question=question)


def feedback_for_review(*, feedback: QuerySet[Feedback]) -> QuerySet[Feedback]:
    """Thumbs-down ratings of ``feedback`` (already scoped to the viewer's accounts), with
    what the review queue shows: question, answer, citations, who, and the golden case
    made of each (``golden_case_id`` and its verdict, ``golden_case_passed``)."""
    cases = GoldenCase.objects.filter(
        _cases_matching(
            answer_id=OuterRef("message_id"),
            knowledge_base_id=OuterRef("message__conversation__knowledge_base_id"),
            question=OuterRef("message__question__content"),
        )
    ).order_by("-created_at", "-id")
    return (
        feedback.filter(rating=Feedback.Rating.DOWN)
        .select_related(
            "message__question",
            "message__conversation__account",
            "message__conversation__knowledge_base",
            "user",
            "api_key",
        )
        .prefetch_related("message__citations")
        .annotate(
            golden_case_id=Subquery(cases.values("pk")[:1]),
            golden_case_passed=Subquery(
                cases.values("last_passed")[:1], output_field=models.BooleanField(null=True)
            ),
        )
    )


def golden_case_for_answer(*, answer: Message) -> GoldenCase | None:
    """The golden case made of this answer, or of its question in its knowledge base."""
    question = answer.question.content if answer.question and not answer.purged_at else ""
    return (
        GoldenCase.objects.filter(
            _cases_matching(
                answer_id=answer.pk,
                knowledge_base_id=answer.conversation.knowledge_base_id,
                question=question,
            )
        )
        .select_related("expected_source")
        .order_by("-created_at", "-id")
        .first()
    )


def golden_case_draft(*, feedback: Feedback) -> GoldenCaseDraft:
    """Sensible starting values for turning a thumbs-down answer into a golden case.

    An existing case is shown as it is. Otherwise: the question as asked; as expected
    text, what the comment quotes (or the whole comment, when short and found in the
    knowledge base); as expected source, the document that contains that text. With no
    such text the source is left for the reviewer: the answer's own citations may be
    the very mistake being reported. The choices are the documents the answer cited or
    found closest, plus the one holding the text.
    """
    answer = feedback.message
    conversation = answer.conversation
    documents = Document.objects.filter(
        account_id=conversation.account_id, knowledge_base_id=conversation.knowledge_base_id
    )
    cited_ids = list(dict.fromkeys(c.document_id for c in answer.citations.all() if c.document_id))
    found = documents.in_bulk(cited_ids)
    sources = [found[pk] for pk in cited_ids if pk in found]

    def with_choice(document: Document | None) -> None:
        if document is not None and document.pk not in {d.pk for d in sources}:
            sources.append(document)

    case = golden_case_for_answer(answer=answer)
    if case is not None:
        with_choice(case.expected_source)
        return GoldenCaseDraft(
            question=case.question, expected_answer=case.expected_answer,
            expected_source=case.expected_source, expect_abstention=case.expect_abstention,
            sources=tuple(sources), case=case,
        )  # fmt: skip
    expected, holder = _expected_text(feedback.comment, documents)
    with_choice(holder)
    question = answer.question.content if answer.question and not answer.purged_at else ""
    return GoldenCaseDraft(
        question=question, expected_answer=expected, expected_source=holder,
        expect_abstention=False, sources=tuple(sources), case=None,
    )  # fmt: skip


def _expected_text(comment: str, documents: QuerySet[Document]) -> tuple[str, Document | None]:
    """The text a comment says the answer should contain, and a document holding it."""
    quoted = next((next(g for g in m.groups() if g) for m in _QUOTED.finditer(comment)), "")
    candidate = " ".join((quoted or comment).split()).rstrip(".")
    if not candidate or (not quoted and len(candidate) > _SHORT_COMMENT_CHARS):
        return "", None
    holder = (
        documents.filter(status=Document.Status.READY, parsed_text__icontains=candidate)
        .order_by("title", "pk")
        .first()
    )
    if quoted:  # the commenter said so; a case that fails until the documents say it too
        return candidate, holder
    return (candidate, holder) if holder is not None else ("", None)
