"""The local classifier: MiniLM nearest-centroid, plus cues. No provider needed.

- **Category**: the cosine similarities of the ticket to each category's centroid (the
  mean of its labelled examples), combined with the words of each default category's
  vocabulary (tickets.classification.cues.CATEGORY_CUES) in a small logistic model; its
  probability is the confidence. A category with no examples (an account's own, say
  "shipping") gets the embedding of its name as its centroid; with one of those, the
  combination cannot be fitted and the plain nearest centroid decides, its confidence a
  softmax over the similarities (CATEGORY_TEMPERATURE).
- **Urgency**: an urgent detector (a logistic model over the similarities to the four
  urgency centroids, the urgency cue groups and the embedding) whose threshold keeps
  URGENT_RECALL of the urgent training tickets; below it, the likeliest of low, normal,
  high from a logistic model over the centroids and the cues.
- **Sentiment**: a logistic model over the sentiment centroids and the lexicon counts.

Fitted once per process on tickets/classification/examples.jsonl (the examples are
embedded once, in batches) and kept per set of categories.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from kb.embeddings.local import MINILM_MODEL_ID
from kb.embeddings.registry import get_embedder
from kb.embeddings.usage import embedding_context
from tickets.classification.cues import (
    category_cue_features,
    sentiment_lexicon_features,
    urgency_cue_features,
    urgency_cues,
)
from tickets.classification.examples import EXAMPLES_PATH, LabelledTicket, labelled_tickets_load
from tickets.classification.outcome import SENTIMENTS, URGENCIES

MODEL_NAME = "nearest-centroid"
# Cosine similarities of MiniLM vectors sit in a narrow band; dividing by this spreads
# them into a softmax that reads as a probability (0.05: a 0.1 lead is about e² : 1).
CATEGORY_TEMPERATURE = 0.05
# The logistic models' regularisation (sklearn's C; smaller is smoother). The urgent
# detector also reads the raw embedding (384 numbers), so it is held on a shorter leash.
REGULARISATION = 1.0
URGENT_REGULARISATION = 0.1
# Share of the urgent training tickets the urgent detector's threshold keeps: a missed
# urgent ticket (an outage waiting in a queue) costs more than a false alarm.
URGENT_RECALL = 0.95
URGENT = "urgent"

Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LocalPrediction:
    category: str
    confidence: float
    urgency: str
    sentiment: str


def embed(texts: Sequence[str]) -> Matrix:
    """MiniLM vectors (normalised) of ``texts``."""
    if not texts:
        return np.zeros((0, get_embedder(MINILM_MODEL_ID).dimension))
    return np.asarray(get_embedder(MINILM_MODEL_ID).embed(list(texts)), dtype=np.float64)


def _unit(matrix: Matrix) -> Matrix:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms


def _centroids(vectors: Matrix, labels: Sequence[str], classes: Sequence[str]) -> Matrix:
    labels_array = np.asarray(labels)
    rows = []
    for name in classes:
        members = vectors[labels_array == name]
        rows.append(members.mean(axis=0) if len(members) else np.zeros(vectors.shape[1]))
    return _unit(np.vstack(rows))


def category_name_text(name: str) -> str:
    """What is embedded for a category with no examples."""
    return f"A support ticket about {name.replace('_', ' ')}."


@dataclass
class LocalModel:
    categories: tuple[str, ...]
    category_centroids: Matrix
    urgency_centroids: Matrix
    sentiment_centroids: Matrix
    # None when a category has no examples (plain nearest centroid then decides).
    category_model: Pipeline | None = None
    urgency_model: Pipeline | None = None  # low/normal/high/urgent; None: the cue rule
    urgent_model: Pipeline | None = None  # urgent or not, read with urgent_threshold
    urgent_threshold: float = 0.5
    sentiment_model: Pipeline | None = None

    def _category_features(self, vectors: Matrix, texts: Sequence[str]) -> Matrix:
        cues = np.vstack([category_cue_features(t, self.categories) for t in texts])
        return np.hstack([vectors @ self.category_centroids.T, cues])

    def _urgency_features(self, vectors: Matrix, texts: Sequence[str]) -> Matrix:
        cues = np.vstack([urgency_cue_features(t) for t in texts])
        return np.hstack([vectors @ self.urgency_centroids.T, cues])

    def _urgent_features(self, vectors: Matrix, texts: Sequence[str]) -> Matrix:
        return np.hstack([self._urgency_features(vectors, texts), vectors])

    def _sentiment_features(self, vectors: Matrix, texts: Sequence[str]) -> Matrix:
        lexicon = np.vstack([sentiment_lexicon_features(t) for t in texts])
        return np.hstack([vectors @ self.sentiment_centroids.T, lexicon])

    def _categories(self, vectors: Matrix, texts: Sequence[str]) -> list[tuple[str, float]]:
        if self.category_model is not None:
            probabilities = self.category_model.predict_proba(
                self._category_features(vectors, texts)
            )
            classes = [str(c) for c in self.category_model.classes_]
        else:
            scaled = (vectors @ self.category_centroids.T) / CATEGORY_TEMPERATURE
            scaled -= scaled.max(axis=1, keepdims=True)
            probabilities = np.exp(scaled)
            probabilities /= probabilities.sum(axis=1, keepdims=True)
            classes = list(self.categories)
        best = probabilities.argmax(axis=1)
        return [(classes[b], float(row[b])) for b, row in zip(best, probabilities, strict=True)]

    def _urgencies(self, vectors: Matrix, texts: Sequence[str]) -> list[str]:
        if self.urgency_model is None:
            return [_urgency_by_rule(t) for t in texts]
        levels = [str(c) for c in self.urgency_model.classes_]
        probabilities = self.urgency_model.predict_proba(self._urgency_features(vectors, texts))
        if self.urgent_model is not None:
            urgent = self.urgent_model.predict_proba(self._urgent_features(vectors, texts))[:, 1]
            flagged = urgent >= self.urgent_threshold
        else:
            flagged = np.zeros(len(texts), dtype=bool)
        urgencies = []
        for row, is_urgent in zip(probabilities, flagged, strict=True):
            if is_urgent:
                urgencies.append(URGENT)
                continue
            # Not flagged by the urgent detector: the likeliest of the other levels.
            ranked = [levels[i] for i in np.argsort(-row) if levels[i] != URGENT]
            urgencies.append(ranked[0] if ranked else "normal")
        return urgencies

    def predict(self, vectors: Matrix, texts: Sequence[str]) -> list[LocalPrediction]:
        categories = self._categories(vectors, texts)
        urgencies = self._urgencies(vectors, texts)
        if self.sentiment_model is not None:
            features = self._sentiment_features(vectors, texts)
            sentiments = [str(s) for s in self.sentiment_model.predict(features)]
        else:
            sentiments = ["neutral"] * len(texts)
        return [
            LocalPrediction(category, round(confidence, 4), urgency, sentiment)
            for (category, confidence), urgency, sentiment in zip(
                categories, urgencies, sentiments, strict=True
            )
        ]


def _urgency_by_rule(text: str) -> str:
    """Without examples to weigh them: any cue of harm is urgent, a calm word is low."""
    cues = urgency_cues(text)
    if any(on for name, on in cues.items() if name != "calm"):
        return URGENT
    return "low" if cues["calm"] else "normal"


def _logistic(*, balanced: bool = True, regularisation: float = REGULARISATION) -> Pipeline:
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(
            C=regularisation, class_weight="balanced" if balanced else None, max_iter=5000
        ),
    )


def _urgent_threshold(features: Matrix, urgent: npt.NDArray[np.bool_]) -> float:
    """The probability above which a ticket is called urgent: the level that keeps
    URGENT_RECALL of the urgent training tickets, read from out-of-fold predictions
    (inner folds of the training data only), so the detector errs towards urgent."""
    folds = min(4, int(urgent.sum()), int((~urgent).sum()))
    if folds < 2:
        return 0.5
    inner = cross_val_predict(
        _logistic(regularisation=URGENT_REGULARISATION), features, urgent,
        cv=StratifiedKFold(folds, shuffle=True, random_state=0), method="predict_proba",
    )[:, 1]  # fmt: skip
    scores = np.sort(inner[urgent])
    return float(min(0.5, scores[int(np.floor((1 - URGENT_RECALL) * len(scores)))]))


def local_model_fit(
    *,
    vectors: Matrix,
    examples: Sequence[LabelledTicket],
    categories: Sequence[str],
    name_vectors: Matrix | None = None,
) -> LocalModel:
    """Fit on ``examples`` (``vectors``: their embeddings, row for row). ``name_vectors``:
    the embeddings of category_name_text(c) for each category, used for those without
    examples (required when there are any)."""
    categories = tuple(categories)
    labels = [e.category for e in examples]
    centroids = _centroids(vectors, labels, categories)
    missing = [i for i, name in enumerate(categories) if not np.any(centroids[i])]
    if missing:
        if name_vectors is None:
            raise ValueError("categories without examples need name_vectors")
        for i in missing:
            centroids[i] = _unit(name_vectors[i])
    model = LocalModel(
        categories=categories,
        category_centroids=centroids,
        urgency_centroids=_centroids(vectors, [e.urgency for e in examples], URGENCIES),
        sentiment_centroids=_centroids(vectors, [e.sentiment for e in examples], SENTIMENTS),
    )
    texts = [e.text for e in examples]
    known = np.array([label in categories for label in labels], dtype=bool)
    if not missing and len(categories) > 1 and known.any():
        features = model._category_features(
            vectors[known], [t for t, k in zip(texts, known, strict=True) if k]
        )
        model.category_model = _logistic(balanced=False).fit(
            features, [label for label, k in zip(labels, known, strict=True) if k]
        )
    urgencies = [e.urgency for e in examples]
    if len(set(urgencies)) > 1:
        model.urgency_model = _logistic().fit(model._urgency_features(vectors, texts), urgencies)
        urgent = np.array([u == URGENT for u in urgencies])
        if urgent.any():
            features = model._urgent_features(vectors, texts)
            model.urgent_threshold = _urgent_threshold(features, urgent)
            model.urgent_model = _logistic(regularisation=URGENT_REGULARISATION).fit(
                features, urgent
            )
    sentiments = [e.sentiment for e in examples]
    if len(set(sentiments)) > 1:
        model.sentiment_model = _logistic().fit(
            model._sentiment_features(vectors, texts), sentiments
        )
    return model


# --- the process's model, fitted on the shipped examples ---------------------------------

_lock = threading.Lock()


@lru_cache(maxsize=1)
def _shipped_examples(digest: str) -> tuple[tuple[LabelledTicket, ...], Matrix]:
    """The shipped examples and their vectors, embedded once per process (per file
    content). Nobody's content, so kept out of the usage ledger."""
    examples = labelled_tickets_load(EXAMPLES_PATH)
    with embedding_context(account_id=None, feature="ticket_examples", recorded=False):
        return examples, embed([e.text for e in examples])


@lru_cache(maxsize=32)
def _shipped_model(digest: str, categories: tuple[str, ...]) -> LocalModel:
    examples, vectors = _shipped_examples(digest)
    missing = [c for c in categories if c not in {e.category for e in examples}]
    name_vectors = None
    if missing:
        with embedding_context(account_id=None, feature="ticket_examples", recorded=False):
            name_vectors = embed([category_name_text(c) for c in categories])
    return local_model_fit(
        vectors=vectors, examples=examples, categories=categories, name_vectors=name_vectors
    )


def shipped_model(categories: Sequence[str]) -> LocalModel:
    """The model fitted on the shipped examples for these categories (cached)."""
    digest = hashlib.sha256(EXAMPLES_PATH.read_bytes()).hexdigest()
    with _lock:  # one fit at a time: concurrent first tickets would each fit it
        return _shipped_model(digest, tuple(categories))


def local_classify(text: str, categories: Sequence[str]) -> LocalPrediction:
    """Classify one ticket with the shipped model (the caller sets the embedding context)."""
    model = shipped_model(categories)
    return model.predict(embed([text]), [text])[0]
