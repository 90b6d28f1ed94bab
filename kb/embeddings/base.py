"""The embedding provider interface.

Providers return L2-normalised float32 vectors of the knowledge base's
dimension, so cosine similarity is a dot product and pgvector's cosine
distance is meaningful across providers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


class EmbeddingError(Exception):
    """Embedding failed. ``transient``: a later try may succeed (timeouts, 429, 5xx)."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class Embedder(Protocol):
    model_id: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One normalised vector per text, shape (len(texts), dimension)."""
        ...


def normalise(vectors: npt.NDArray[np.floating]) -> Vectors:
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms
