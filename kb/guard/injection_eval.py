"""Fit the prompt-injection detector on public training sets and measure it on others.

The protocol (docs/security.md):

1. Set A, the training sets (``TRAIN_SETS``): the deepset prompt-injections train
   split (the shared file), benign WildGuard prompts and the first NotInject subset
   (benign prompts built around trigger words). Everything the detector learns — the
   logistic weights, the regularisation strength, the scale of the embedding part and
   the threshold — is chosen inside A: each candidate setting is scored by k-fold
   stratified cross-validation on A, the threshold is the cross-validated score above
   which only ``TARGET_FPR`` of A's benign rows lie, and the setting with the best
   cross-validated recall at that threshold is refitted on all of A.
2. Set B, never used for any choice (``HELDOUT_SET``: the deepset test split, and
   ``TRIGGER_SET``: NotInject's other two subsets, benign prompts with two or three
   trigger words). ``guard_eval injections`` scores them once with the shipped model.

Both are files in tests/data/ (sources and licences in its README).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression

from kb.embeddings.usage import usage_recording_paused
from kb.guard.injection import (
    DEFAULT_INJECTION_THRESHOLD,
    PATTERN_FEATURES,
    InjectionModel,
    detector_scores,
    feature_matrix,
    injection_scan,
    injection_threshold,
    score_features,
    shipped_model,
)

DATA = Path(__file__).resolve().parents[2] / "tests" / "data"
TRAIN_SETS: tuple[tuple[str, Path], ...] = (
    ("deepset/prompt-injections train split", DATA / "prompt_injections.jsonl"),
    ("WildGuard benign prompts (via leolee99/PIGuard)",
     DATA / "injections_train_wildguard_benign.jsonl"),
    ("NotInject_one (leolee99/PIGuard)", DATA / "injections_train_notinject_one.jsonl"),
)  # fmt: skip
HELDOUT_SET = (
    "deepset/prompt-injections test split",
    DATA / "injections_heldout_deepset_test.jsonl",
)
TRIGGER_SET = (
    "NotInject_two + NotInject_three (leolee99/PIGuard)",
    DATA / "injections_heldout_notinject_two_three.jsonl",
)

FOLDS = 5
SEED = 0
TARGET_FPR = 0.03  # on A's benign rows, cross-validated: the acceptance bound is 0.05
C_GRID = (0.3, 1.0, 3.0, 10.0)  # scikit-learn's C (inverse ridge strength)
EMBEDDING_SCALE_GRID = (1.0, 5.0)  # MiniLM components are ~0.05; scaling them eases the ridge
LATENCY_SAMPLE = 100


def load_rows(path: Path) -> tuple[list[str], npt.NDArray[np.bool_]]:
    texts: list[str] = []
    labels: list[bool] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            texts.append(str(row["text"]))
            labels.append(bool(row["injection"]))
    return texts, np.asarray(labels, dtype=bool)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def logistic_model(*, c: float) -> LogisticRegression:
    """Class-balanced, L2-regularised logistic regression with an unpenalised bias."""
    return LogisticRegression(C=c, class_weight="balanced", solver="lbfgs", max_iter=5000, tol=1e-6)


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


def _scaled(features: npt.NDArray[np.float64], scale: float) -> npt.NDArray[np.float64]:
    out = np.array(features, dtype=np.float64, copy=True)
    out[:, len(PATTERN_FEATURES) :] *= scale
    return out


def _fit(
    features: npt.NDArray[np.float64], labels: npt.NDArray[np.bool_], c: float, scale: float
) -> tuple[npt.NDArray[np.float64], float]:
    """Weights over the *unscaled* features (the scale folded in) and the bias."""
    model = logistic_model(c=c).fit(_scaled(features, scale), labels)
    weights = np.asarray(model.coef_[0], dtype=np.float64).copy()
    weights[len(PATTERN_FEATURES) :] *= scale
    return weights, float(model.intercept_[0])


def _as_model(weights: npt.NDArray[np.float64], bias: float, threshold: float) -> InjectionModel:
    k = len(PATTERN_FEATURES)
    return InjectionModel(weights[:k], weights[k:], bias, threshold, {})


def cross_validated_scores(
    features: npt.NDArray[np.float64],
    labels: npt.NDArray[np.bool_],
    *,
    c: float,
    scale: float,
    k: int = FOLDS,
) -> npt.NDArray[np.float64]:
    """Each row's score from a model fitted on the other k-1 folds."""
    scores = np.zeros(len(labels))
    for held_out in stratified_folds(labels, k, SEED):
        train = np.ones(len(labels), dtype=bool)
        train[held_out] = False
        weights, bias = _fit(features[train], labels[train], c, scale)
        scores[held_out] = score_features(features[held_out], _as_model(weights, bias, 0.5))
    return scores


def threshold_for_fpr(
    scores: npt.NDArray[np.float64], labels: npt.NDArray[np.bool_], fpr: float
) -> float:
    """The lowest threshold at which at most ``fpr`` of the benign rows score at or above it."""
    benign = np.sort(scores[~labels])[::-1]
    allowed = int(np.floor(fpr * len(benign)))  # benign rows that may be flagged
    if allowed >= len(benign):
        return float(benign[-1])
    return float(np.nextafter(benign[allowed], 1.0))


@dataclass(frozen=True)
class FitResult:
    model: InjectionModel
    c: float
    embedding_scale: float
    cv_recall: float
    cv_false_positive_rate: float
    grid: list[dict[str, float]] = field(default_factory=list)
    cv_threshold: float = 0.5  # on the unshifted scores; 0.5 on the shipped ones


def fit_detector(
    features: npt.NDArray[np.float64],
    labels: npt.NDArray[np.bool_],
    *,
    c_grid: tuple[float, ...] = C_GRID,
    scale_grid: tuple[float, ...] = EMBEDDING_SCALE_GRID,
    target_fpr: float = TARGET_FPR,
    k: int = FOLDS,
) -> FitResult:
    """Choose C, the embedding scale and the threshold by cross-validation on these rows
    alone, then refit on all of them (see the module docstring)."""
    grid: list[dict[str, float]] = []
    best: tuple[float, float, float, float, float] | None = None
    for c in c_grid:
        for scale in scale_grid:
            scores = cross_validated_scores(features, labels, c=c, scale=scale, k=k)
            threshold = threshold_for_fpr(scores, labels, target_fpr)
            flagged = scores >= threshold
            recall = float(flagged[labels].mean())
            fpr = float(flagged[~labels].mean())
            grid.append({"c": c, "embedding_scale": scale, "cv_recall": round(recall, 4),
                         "cv_false_positive_rate": round(fpr, 4),
                         "threshold": round(threshold, 4)})  # fmt: skip
            if best is None or recall > best[0] + 1e-12:
                best = (recall, fpr, c, scale, threshold)
    if best is None:
        raise ValueError("fit_detector needs a non-empty grid")
    recall, fpr, c, scale, threshold = best
    weights, bias = _fit(features, labels, c, scale)
    # Shift the bias so that the chosen threshold becomes 0.5: the shipped scores are read
    # against CAIRN_INJECTION_THRESHOLD (0.5 unless an operator moves it), here and in the
    # passage scan, and 0.5 is then the cross-validated operating point.
    bias -= math.log(threshold / (1.0 - threshold))
    model = _as_model(weights, bias, DEFAULT_INJECTION_THRESHOLD)
    return FitResult(model, c, scale, recall, fpr, grid, cv_threshold=threshold)


def training_rows() -> tuple[list[str], npt.NDArray[np.bool_]]:
    texts: list[str] = []
    labels: list[npt.NDArray[np.bool_]] = []
    for _, path in TRAIN_SETS:
        t, y = load_rows(path)
        texts.extend(t)
        labels.append(y)
    return texts, np.concatenate(labels)


def fit_shipped_model() -> FitResult:
    """The fit ``manage.py injection_fit`` writes to injection_model.json."""
    texts, labels = training_rows()
    with usage_recording_paused():
        features = feature_matrix(texts, strict=True)
    result = fit_detector(features, labels)
    provenance = {
        "train_sets": [
            {
                "name": name,
                "file": f"tests/data/{path.name}",
                "sha256": file_digest(path),
                "rows": len(load_rows(path)[1]),
                "injections": int(load_rows(path)[1].sum()),
            }
            for name, path in TRAIN_SETS
        ],  # fmt: skip
        "folds": FOLDS,
        "seed": SEED,
        "target_fpr": TARGET_FPR,
        "chosen": {"c": result.c, "embedding_scale": result.embedding_scale},
        "cv_recall": round(result.cv_recall, 4),
        "cv_false_positive_rate": round(result.cv_false_positive_rate, 4),
        "cv_threshold_before_bias_shift": round(result.cv_threshold, 6),
        "grid": result.grid,
    }
    model = InjectionModel(
        result.model.pattern_weights, result.model.embedding_weights, result.model.bias,
        result.model.threshold, provenance,
    )  # fmt: skip
    return FitResult(model, result.c, result.embedding_scale, result.cv_recall,
                     result.cv_false_positive_rate, result.grid, result.cv_threshold)  # fmt: skip


@dataclass(frozen=True)
class InjectionReport:
    train_sources: list[str]
    heldout_source: str
    heldout_file: str
    heldout_in_training: int  # rows of the held-out file that are also training rows
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
    trigger_source: str
    trigger_rows: int
    trigger_false_positives: int
    trigger_false_positive_rate: float
    threshold: float
    cv_recall: float
    cv_false_positive_rate: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_sample: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def as_text(self) -> str:
        leak = (
            "none (public data never used for fitting or for any choice)"
            if not self.heldout_in_training
            else f"{self.heldout_in_training} rows ALSO IN TRAINING: in-sample figures"
        )
        lines = [
            "Prompt-injection detector (weights, C and threshold fitted on the training sets only)",
            "  trained on           " + "; ".join(self.train_sources),
            f"  cross-validated on A recall {self.cv_recall:.3f}"
            f" at FPR {self.cv_false_positive_rate:.3f}",
            f"  held-out set         {self.heldout_source} ({self.heldout_file})",
            f"  overlap with training {leak}",
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
            f"  trigger-word set     {self.trigger_source} ({self.trigger_rows} benign prompts)",
            f"  trigger-word FPR     {self.trigger_false_positive_rate:.3f}"
            f"  ({self.trigger_false_positives} flagged)",
            f"  threshold            {self.threshold:.3f}",
            f"  latency, full guard  p50 {self.latency_p50_ms:.1f} ms,"
            f" p95 {self.latency_p95_ms:.1f} ms"
            f"  (injection_scan, one question at a time, {self.latency_sample} questions, warm)",
        ]
        return "\n".join(lines) + "\n"


def _overlap(texts: list[str]) -> int:
    def key(text: str) -> str:
        return " ".join(text.split()).lower()

    trained = {key(t) for t in training_rows()[0]}
    return sum(key(t) in trained for t in texts)


def scan_latencies_ms(texts: list[str]) -> list[float]:
    """Wall time of ``injection_scan`` per question, as the question guard calls it."""
    injection_scan("warm up the embedder and the regexes")
    out = []
    for text in texts:
        started = time.perf_counter()
        injection_scan(text)
        out.append((time.perf_counter() - started) * 1000)
    return out


def injection_report(
    path: Path | None = None, *, latency_sample: int = LATENCY_SAMPLE
) -> InjectionReport:
    """The shipped model on a held-out file (default ``HELDOUT_SET``) and on ``TRIGGER_SET``."""
    name, heldout = (f"{path.name}", path) if path is not None else HELDOUT_SET
    texts, labels = load_rows(heldout)
    trigger_texts, _ = load_rows(TRIGGER_SET[1])
    model = shipped_model()
    threshold = injection_threshold()
    with usage_recording_paused():
        predicted = detector_scores(feature_matrix(texts, strict=True), model) >= threshold
        trigger_flagged = (
            detector_scores(feature_matrix(trigger_texts, strict=True), model) >= threshold
        )
        # distinct questions, so that every scan embeds (no cache hit)
        sample = list(dict.fromkeys(" ".join(t.split()) for t in texts + trigger_texts))
        latencies = scan_latencies_ms(sample[:latency_sample])
    tp = int((predicted & labels).sum())
    fp = int((predicted & ~labels).sum())
    fn = int((~predicted & labels).sum())
    positives = int(labels.sum())
    negatives = len(labels) - positives
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / positives if positives else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    provenance = model.provenance
    return InjectionReport(
        train_sources=[s["name"] for s in provenance.get("train_sets", [])],
        heldout_source=name,
        heldout_file=str(heldout.name),
        heldout_in_training=_overlap(texts),
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
        trigger_source=TRIGGER_SET[0],
        trigger_rows=len(trigger_texts),
        trigger_false_positives=int(trigger_flagged.sum()),
        trigger_false_positive_rate=round(float(trigger_flagged.mean()), 4),
        threshold=round(threshold, 4),
        cv_recall=float(provenance.get("cv_recall", 0.0)),
        cv_false_positive_rate=float(provenance.get("cv_false_positive_rate", 0.0)),
        latency_p50_ms=round(float(np.percentile(latencies, 50)), 2),
        latency_p95_ms=round(float(np.percentile(latencies, 95)), 2),
        latency_sample=len(latencies),
    )
