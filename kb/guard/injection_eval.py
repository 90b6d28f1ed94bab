"""Measure the prompt-injection detector on a labelled JSONL file (``{"text", "injection"}``).

The detector's logistic weights were fitted on the shared evaluation file, so
scoring that file with the shipped weights would report training-set figures.
Instead the report is k-fold cross-validated: the features are computed once,
then for each of k stratified folds the same fitting procedure that produced
the shipped weights (``fit_weights``) is run on the other folds and the held-out
fold is scored at the shipped threshold. Every row is scored exactly once, by
a model that never saw it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression

from kb.embeddings.usage import usage_recording_paused
from kb.guard.injection import (
    feature_matrix,
    injection_threshold,
    score_features,
)

FOLDS = 5
SEED = 0
L2 = 3.0  # inverse ridge strength (scikit-learn's C) on the weights; the bias is not penalised


@dataclass(frozen=True)
class InjectionReport:
    rows: int
    positives: int
    negatives: int
    true_positives: int
    false_positives: int
    false_negatives: int
    precision: float
    recall: float
    f1: float
    false_positive_rate: float
    threshold: float
    cross_validated: bool
    folds: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def as_text(self) -> str:
        how = (
            f"{self.folds}-fold stratified cross-validation (seed {SEED}); "
            "weights refitted on each training split"
            if self.cross_validated
            else "shipped weights, no cross-validation"
        )
        lines = [
            "Prompt-injection detector",
            f"  rows                 {self.rows}",
            f"  positives            {self.positives}",
            f"  benign               {self.negatives}",
            f"  true positives       {self.true_positives}",
            f"  false positives      {self.false_positives}",
            f"  false negatives      {self.false_negatives}",
            f"  precision            {self.precision:.3f}",
            f"  recall               {self.recall:.3f}",
            f"  F1                   {self.f1:.3f}",
            f"  false-positive rate  {self.false_positive_rate:.3f}  (on benign rows)",
            f"  threshold            {self.threshold:.2f}",
            f"  figures              {how}",
        ]
        return "\n".join(lines) + "\n"


def load_rows(path: Path) -> tuple[list[str], npt.NDArray[np.bool_]]:
    texts: list[str] = []
    labels: list[bool] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            texts.append(str(row["text"]))
            labels.append(bool(row["injection"]))
    return texts, np.asarray(labels, dtype=bool)


def logistic_model(*, l2: float = L2) -> LogisticRegression:
    """The (unfitted) model behind the shipped weights.

    Class-balanced, L2-regularised logistic regression with an unpenalised
    bias: it minimises ``l2 * sum_i w_i * logloss_i + |weights|^2 / 2`` with
    ``w_i`` the balanced class weight ``n / (2 * n_class)``, which is
    scikit-learn's objective with ``C = l2``. Solved by Newton's method with the
    exact Hessian (``newton-cholesky``): 12 features, a few hundred rows.
    """
    return LogisticRegression(
        C=l2, class_weight="balanced", solver="newton-cholesky", tol=1e-8, max_iter=100
    )


def fit_weights(
    features: npt.NDArray[np.float64], labels: npt.NDArray[np.bool_], *, l2: float = L2
) -> tuple[npt.NDArray[np.float64], float]:
    """Fit ``logistic_model`` and return (weights, bias) in ``score_features``' terms.

    This is the procedure that produced the constants in ``kb.guard.injection``
    (fitted on every row of the shared file). Both classes must be present.
    """
    model = logistic_model(l2=l2).fit(features, np.asarray(labels, dtype=bool))
    return np.asarray(model.coef_[0], dtype=np.float64), float(model.intercept_[0])


def stratified_folds(
    labels: npt.NDArray[np.bool_], k: int, seed: int
) -> list[npt.NDArray[np.intp]]:
    """k disjoint index sets covering every row, each with about the same share of positives."""
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    for value in (True, False):
        indices = np.flatnonzero(labels == value)
        rng.shuffle(indices)
        for position, index in enumerate(indices):
            folds[position % k].append(int(index))
    return [np.asarray(sorted(fold), dtype=np.intp) for fold in folds]


def cross_validated_scores(
    features: npt.NDArray[np.float64], labels: npt.NDArray[np.bool_], *, k: int = FOLDS
) -> npt.NDArray[np.float64]:
    """Each row's score from a model fitted on the other k-1 folds."""
    scores = np.zeros(len(labels))
    for held_out in stratified_folds(labels, k, SEED):
        train = np.ones(len(labels), dtype=bool)
        train[held_out] = False
        weights, bias = fit_weights(features[train], labels[train])
        scores[held_out] = score_features(features[held_out], weights.tolist(), bias)
    return scores


def injection_report(path: Path, *, folds: int = FOLDS) -> InjectionReport:
    """Cross-validated precision, recall and false-positive rate of the detector on ``path``."""
    texts, labels = load_rows(path)
    with usage_recording_paused():
        features = feature_matrix(texts, strict=True)
    threshold = injection_threshold()
    predicted = cross_validated_scores(features, labels, k=folds) >= threshold
    tp = int((predicted & labels).sum())
    fp = int((predicted & ~labels).sum())
    fn = int((~predicted & labels).sum())
    positives = int(labels.sum())
    negatives = len(labels) - positives
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / positives if positives else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return InjectionReport(
        rows=len(labels),
        positives=positives,
        negatives=negatives,
        true_positives=tp,
        false_positives=fp,
        false_negatives=fn,
        precision=round(precision, 4),
        recall=round(recall, 4),
        f1=round(f1, 4),
        false_positive_rate=round(fp / negatives, 4) if negatives else 0.0,
        threshold=threshold,
        cross_validated=True,
        folds=folds,
    )
