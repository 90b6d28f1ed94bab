"""Fitting the reranker and the abstention model on golden questions, out of sample.

Both are logistic regressions over general signals (kb.search.rerank,
chat.answering.abstention); what must not happen is reporting a figure on the
questions the weights were fitted to. So:

1. every question is asked once (hybrid search without the reranker, a pool of
   CAIRN_RERANK_POOL hits, and the reranker's feature rows for them);
2. **cross-validation by source**: for each source document (a Wikipedia article in
   squad2_dev) in turn, both models and the abstention threshold are fitted on the
   *other* sources' questions and the held-out source's questions are answered with
   them: answer hit@1/5, answer-contains, abstention, false abstention. The report
   is the pooled held-out figures, plus each fold;
3. the weights shipped are then fitted on the sources asked for (``train_sources``),
   so that a gate can run on sources they never saw.

The abstention threshold is the one that leaves ``target_false_abstention`` of the
*training* answerable questions unanswered: chosen inside the fold, never on the
questions it is reported on.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
from django.conf import settings
from sklearn.linear_model import LogisticRegression

from chat.answering.abstention import FEATURES as ABSTENTION_FEATURES
from chat.answering.abstention import abstention_features
from chat.answering.context import passages_select
from chat.answering.extractive import ExtractiveAnswerer
from chat.answering.sentence_scoring import score_candidates
from kb.evaluation.golden import GoldenQuestion
from kb.linear import LinearModel
from kb.models import KnowledgeBase
from kb.search.rerank import FEATURES as RERANK_FEATURES
from kb.search.rerank import rerank_features, rerank_order
from kb.selectors.search import SearchHit, chunk_search, hit_text, query_embedding

DEFAULT_TARGET_FALSE_ABSTENTION = 0.07
# Regularisation of both fits (scikit-learn's C: smaller is stronger). Fixed, not tuned.
REGULARISATION = 1.0


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def contains_answer(text: str, answers: Sequence[str]) -> bool:
    normalised = _norm(text)
    return any(_norm(a) in normalised for a in answers)


@dataclass
class QuestionTrace:
    """One question asked once: its pool of hits and the reranker's rows for them."""

    question: GoldenQuestion
    source: str
    hits: list[SearchHit]
    rerank_rows: npt.NDArray[np.float64]
    labels: npt.NDArray[np.bool_]  # hit contains a gold answer string
    nothing_relevant: bool


def question_source(question: GoldenQuestion) -> str:
    return question.sources[0] if question.sources else ""


def traces_collect(
    *,
    knowledge_base: KnowledgeBase,
    questions: Sequence[GoldenQuestion],
    on_progress: Callable[[], None] | None = None,
) -> list[QuestionTrace]:
    """Ask every question once (hybrid, no reranker) and keep what the fits need."""
    model_id = knowledge_base.embedding_model
    traces = []
    for question in questions:
        search = chunk_search(
            account=knowledge_base.account, knowledge_bases=[knowledge_base],
            query=question.question, k=settings.CAIRN_RERANK_POOL, rerank=False,
        )  # fmt: skip
        rows = rerank_features(
            question=question.question,
            question_vector=np.asarray(query_embedding(model_id, question.question)),
            hits=search.hits,
            texts=[hit_text(hit) for hit in search.hits],
            embedding_model=model_id,
        )
        labels = np.asarray(
            [
                question.answerable and contains_answer(hit.chunk.text, question.answers)
                for hit in search.hits
            ],
            dtype=bool,
        )
        traces.append(
            QuestionTrace(
                question,
                question_source(question),
                search.hits,
                rows,
                labels,
                search.nothing_relevant,
            )  # fmt: skip
        )
        if on_progress:
            on_progress()
    return traces


def linear_fit(
    rows: npt.NDArray[np.float64],
    labels: npt.NDArray[np.bool_],
    *,
    features: tuple[str, ...],
    meta: dict[str, Any],
) -> LinearModel:
    """A standardised, L2-regularised logistic regression (scikit-learn), as a LinearModel."""
    mean = rows.mean(axis=0)
    scale = rows.std(axis=0)
    scale[scale == 0] = 1.0
    fit = LogisticRegression(C=REGULARISATION, max_iter=5000).fit((rows - mean) / scale, labels)
    return LinearModel(
        features, mean, scale, fit.coef_[0].astype(np.float64), float(fit.intercept_[0]), meta
    )


def reranker_fit(traces: Sequence[QuestionTrace], meta: dict[str, Any]) -> LinearModel:
    """Fitted on answerable questions with a gold chunk in their pool: a hit is a chunk
    that contains a gold answer."""
    useful = [t for t in traces if t.question.answerable and t.labels.any()]
    rows = np.vstack([t.rerank_rows for t in useful])
    labels = np.concatenate([t.labels for t in useful])
    return linear_fit(rows, labels, features=RERANK_FEATURES, meta=meta)


def reranked_hits(trace: QuestionTrace, reranker: LinearModel | None) -> list[SearchHit]:
    if reranker is None or len(trace.hits) < 2:
        return list(trace.hits)
    return [trace.hits[i] for i in rerank_order(reranker, trace.rerank_rows)]


def answer_passages(
    trace: QuestionTrace, reranker: LinearModel | None, knowledge_base: KnowledgeBase
) -> tuple[Any, ...]:
    """The passages the answerer gets, as the answer pipeline selects them."""
    hits = reranked_hits(trace, reranker)
    passages, _ = passages_select(
        hits[: max(settings.CAIRN_ANSWER_PASSAGES, 3)],
        max_passages=settings.CAIRN_ANSWER_PASSAGES,
        max_tokens=settings.CAIRN_CONTEXT_MAX_TOKENS,
        embedding_model=knowledge_base.embedding_model,
    )
    return passages


def _abstention_rows(
    traces: Sequence[QuestionTrace], reranker: LinearModel | None, knowledge_base: KnowledgeBase
) -> tuple[list[QuestionTrace], npt.NDArray[np.float64]]:
    kept, rows = [], []
    model_id = knowledge_base.embedding_model
    for trace in traces:
        if trace.nothing_relevant:
            continue
        passages = answer_passages(trace, reranker, knowledge_base)
        scored = score_candidates(
            trace.question.question, passages, model_id=model_id,
            question_vector=np.asarray(query_embedding(model_id, trace.question.question)),
        )  # fmt: skip
        if not scored:
            continue
        kept.append(trace)
        rows.append(abstention_features(trace.question.question, scored, passages))
    return kept, np.vstack(rows) if rows else np.zeros((0, len(ABSTENTION_FEATURES)))


def abstention_fit(
    traces: Sequence[QuestionTrace],
    reranker: LinearModel | None,
    knowledge_base: KnowledgeBase,
    *,
    target_false_abstention: float,
    meta: dict[str, Any],
) -> LinearModel:
    """P(answerable) from the features, and the threshold that leaves
    ``target_false_abstention`` of these (training) answerable questions unanswered."""
    kept, rows = _abstention_rows(traces, reranker, knowledge_base)
    labels = np.asarray([t.question.answerable for t in kept], dtype=bool)
    model = linear_fit(rows, labels, features=ABSTENTION_FEATURES, meta=meta)
    scores = model.scores(rows[labels])
    probabilities = 1.0 / (1.0 + np.exp(-np.clip(scores, -30, 30)))
    threshold = float(np.quantile(probabilities, target_false_abstention))
    model.meta["threshold"] = round(threshold, 6)
    model.meta["target_false_abstention"] = target_false_abstention
    return model


@dataclass
class Figures:
    """Held-out figures of one fold, or of all folds pooled."""

    sources: list[str] = field(default_factory=list)
    questions: int = 0
    answerable: int = 0
    unanswerable: int = 0
    answer_hit_at_1: float = 0.0
    answer_hit_at_5: float = 0.0
    answer_contains: float = 0.0
    abstention: float = 0.0
    false_abstention: float = 0.0


@dataclass
class _Tally:
    hit1: int = 0
    hit5: int = 0
    hit_questions: int = 0
    contains: int = 0
    false_abstained: int = 0
    answerable: int = 0
    abstained: int = 0
    unanswerable: int = 0

    def add(self, other: _Tally) -> None:
        for name in asdict(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def figures(self, sources: list[str]) -> Figures:
        def share(part: int, whole: int) -> float:
            return part / whole if whole else 0.0

        return Figures(
            sources=sources,
            questions=self.answerable + self.unanswerable,
            answerable=self.answerable,
            unanswerable=self.unanswerable,
            answer_hit_at_1=share(self.hit1, self.hit_questions),
            answer_hit_at_5=share(self.hit5, self.hit_questions),
            answer_contains=share(self.contains, self.answerable),
            abstention=share(self.abstained, self.unanswerable),
            false_abstention=share(self.false_abstained, self.answerable),
        )


def held_out_tally(
    traces: Sequence[QuestionTrace],
    reranker: LinearModel | None,
    abstention: LinearModel | None,
    knowledge_base: KnowledgeBase,
) -> _Tally:
    """Answer ``traces`` with these models, as the pipeline would, and count."""
    answerer = ExtractiveAnswerer(token_delay=0.0, abstention=abstention or False)
    tally = _Tally()
    for trace in traces:
        question = trace.question
        if question.answerable and question.answers:
            order = reranked_hits(trace, reranker)
            found = [contains_answer(h.chunk.text, question.answers) for h in order]
            tally.hit_questions += 1
            tally.hit1 += any(found[:1])
            tally.hit5 += any(found[:5])
        if trace.nothing_relevant:
            abstained, text = True, ""
        else:
            answer = answerer.answer(
                question.question, answer_passages(trace, reranker, knowledge_base)
            )
            abstained, text = answer.abstained, answer.text
        if question.answerable:
            tally.answerable += 1
            tally.false_abstained += abstained
            tally.contains += (not abstained) and contains_answer(text, question.answers)
        else:
            tally.unanswerable += 1
            tally.abstained += abstained
    return tally


@dataclass
class FitReport:
    folds: list[Figures]
    pooled: Figures
    reranker: LinearModel
    abstention: LinearModel


def _meta(traces: Sequence[QuestionTrace], label: str, target: float) -> dict[str, Any]:
    sources = sorted({t.source for t in traces})
    return {
        "fitted_on": label,
        "sources": sources,
        "questions": len(traces),
        "date": date.today().isoformat(),  # noqa: DTZ011 — a label, not a timestamp
        "target_false_abstention": target,
    }


def answerer_fit(
    *,
    knowledge_base: KnowledgeBase,
    traces: Sequence[QuestionTrace],
    train_sources: Sequence[str] | None = None,
    target_false_abstention: float = DEFAULT_TARGET_FALSE_ABSTENTION,
    cross_validate: bool = True,
    label: str = "",
    on_fold: Callable[[Figures], None] | None = None,
) -> FitReport:
    """Cross-validate by source (if asked), then fit the models to ship."""
    sources = sorted({t.source for t in traces})
    folds: list[Figures] = []
    pooled = _Tally()
    if cross_validate:
        if len(sources) < 2:
            raise ValueError("cross-validation by source needs questions of two sources")
        for held_out in sources:
            train = [t for t in traces if t.source != held_out]
            test = [t for t in traces if t.source == held_out]
            meta = _meta(train, label, target_false_abstention)
            reranker = reranker_fit(train, meta)
            abstention = abstention_fit(
                train, reranker, knowledge_base,
                target_false_abstention=target_false_abstention, meta=dict(meta),
            )  # fmt: skip
            tally = held_out_tally(test, reranker, abstention, knowledge_base)
            pooled.add(tally)
            folds.append(tally.figures([held_out]))
            if on_fold:
                on_fold(folds[-1])
    chosen = set(train_sources or sources)
    train = [t for t in traces if t.source in chosen]
    meta = _meta(train, label, target_false_abstention)
    if folds:
        meta["cross_validated"] = asdict(pooled.figures(sources))
    reranker = reranker_fit(train, meta)
    abstention = abstention_fit(
        train, reranker, knowledge_base,
        target_false_abstention=target_false_abstention, meta=dict(meta),
    )  # fmt: skip
    return FitReport(folds, pooled.figures(sources), reranker, abstention)
