"""Cross-validated figures of the local classifier on a labelled set.

Stratified k-fold (by category and whether the ticket is urgent, fixed seed): for each
fold, everything the classifier learns (the centroids, the weights of the urgency cues
and of the sentiment lexicon) is fitted on the other folds only, and the fold is
classified as unseen text. Reported per fold and pooled over all held-out tickets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold

from kb.embeddings.usage import usage_recording_paused
from tickets.classification.examples import LabelledTicket, labelled_tickets_load
from tickets.classification.local import LocalPrediction, embed, local_model_fit
from tickets.models import DEFAULT_CATEGORIES

LABELLED_SET = Path(__file__).resolve().parents[2] / "tests/data/tickets/support_tickets.jsonl"
URGENT = "urgent"


@dataclass(frozen=True)
class Scores:
    tickets: int
    category_accuracy: float
    urgent_recall: float
    urgent_precision: float
    urgency_accuracy: float  # all four levels
    sentiment_accuracy: float

    @classmethod
    def of(cls, truth: Sequence[LabelledTicket], predicted: Sequence[LocalPrediction]) -> Scores:
        pairs = list(zip(truth, predicted, strict=True))
        urgent = [p for t, p in pairs if t.urgency == URGENT]
        flagged = [t for t, p in pairs if p.urgency == URGENT]

        def share(hits: int, whole: int) -> float:
            return hits / whole if whole else float("nan")

        return cls(
            tickets=len(pairs),
            category_accuracy=share(sum(t.category == p.category for t, p in pairs), len(pairs)),
            urgent_recall=share(sum(p.urgency == URGENT for p in urgent), len(urgent)),
            urgent_precision=share(sum(t.urgency == URGENT for t in flagged), len(flagged)),
            urgency_accuracy=share(sum(t.urgency == p.urgency for t, p in pairs), len(pairs)),
            sentiment_accuracy=share(sum(t.sentiment == p.sentiment for t, p in pairs), len(pairs)),
        )


@dataclass(frozen=True)
class CrossValidation:
    folds: tuple[Scores, ...]
    pooled: Scores
    seed: int
    mistakes: tuple[tuple[LabelledTicket, LocalPrediction], ...]  # held-out, wrong category


def cross_validate(
    tickets: Sequence[LabelledTicket] | None = None,
    *,
    folds: int = 5,
    seed: int = 20,
    categories: Sequence[str] = DEFAULT_CATEGORIES,
) -> CrossValidation:
    """k-fold cross-validation of the local classifier (embeddings not billed to anyone)."""
    tickets = list(tickets if tickets is not None else labelled_tickets_load(LABELLED_SET))
    with usage_recording_paused():
        vectors = embed([t.text for t in tickets])
    strata = [f"{t.category}:{t.urgency == URGENT}" for t in tickets]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    predicted: list[LocalPrediction | None] = [None] * len(tickets)
    per_fold = []
    for train, test in splitter.split(np.zeros(len(tickets)), strata):
        model = local_model_fit(
            vectors=vectors[train], examples=[tickets[i] for i in train], categories=categories
        )
        held_out = model.predict(vectors[test], [tickets[i].text for i in test])
        for i, prediction in zip(test, held_out, strict=True):
            predicted[i] = prediction
        per_fold.append(Scores.of([tickets[i] for i in test], held_out))
    done = [p for p in predicted if p is not None]
    return CrossValidation(
        folds=tuple(per_fold),
        pooled=Scores.of(tickets, done),
        seed=seed,
        mistakes=tuple((t, p) for t, p in zip(tickets, done, strict=True)
                       if t.category != p.category),
    )  # fmt: skip
