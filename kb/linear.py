"""LinearModel: a fitted logistic regression, scored without scikit-learn.

The reranker (kb.search.rerank) and the extractive answerer's abstention
(chat.answering.abstention) are fitted offline by ``manage.py answerer_fit`` and
shipped as JSON next to their code, with where the weights came from in ``meta``.
Serving is one dot product.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class LinearModel:
    """A standardised logistic regression: score = w · (x - mean) / scale + bias."""

    features: tuple[str, ...]
    mean: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]
    weights: npt.NDArray[np.float64]
    bias: float
    meta: dict[str, Any]

    def scores(self, rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.asarray(((rows - self.mean) / self.scale) @ self.weights + self.bias)

    def as_json(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "mean": [float(x) for x in self.mean],
            "scale": [float(x) for x in self.scale],
            "weights": [float(x) for x in self.weights],
            "bias": float(self.bias),
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LinearModel:
        return cls(
            features=tuple(data["features"]),
            mean=np.asarray(data["mean"], dtype=np.float64),
            scale=np.asarray(data["scale"], dtype=np.float64),
            weights=np.asarray(data["weights"], dtype=np.float64),
            bias=float(data["bias"]),
            meta=dict(data.get("meta", {})),
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> LinearModel | None:
        if not path.exists():
            return None
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
