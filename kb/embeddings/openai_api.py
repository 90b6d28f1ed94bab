"""Embeddings from the OpenAI API or any server that speaks its /v1/embeddings protocol."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import openai

from kb.embeddings.base import EmbeddingError, Vectors, normalise

OPENAI_PREFIX = "openai:"


class OpenAIEmbedder:
    """``openai:<model>``, e.g. ``openai:text-embedding-3-small`` shortened to ``dimension``.

    SDK retries are off: the ingestion task is the one retry loop, with backoff.
    """

    def __init__(
        self,
        *,
        model: str,
        dimension: int,
        api_key: str,
        base_url: str | None,
        timeout: float,
        batch_size: int = 256,
    ) -> None:
        self.model = model
        self.model_id = f"{OPENAI_PREFIX}{model}"
        self.dimension = dimension
        self.batch_size = batch_size
        self._client = openai.OpenAI(
            api_key=api_key or "missing", base_url=base_url or None, timeout=timeout, max_retries=0
        )

    def embed(self, texts: Sequence[str]) -> Vectors:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            try:
                response = self._client.embeddings.create(
                    model=self.model, input=batch, dimensions=self.dimension
                )
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                raise EmbeddingError(
                    f"embedding service unreachable: {exc}", transient=True
                ) from exc
            except openai.APIStatusError as exc:
                transient = exc.status_code == 429 or exc.status_code >= 500
                raise EmbeddingError(
                    f"embedding service answered {exc.status_code}: {exc.message}",
                    transient=transient,
                ) from exc
            ordered = sorted(response.data, key=lambda item: item.index)
            rows.extend(item.embedding for item in ordered)
        matrix = np.asarray(rows, dtype=np.float32)
        if matrix.shape != (len(texts), self.dimension):
            raise EmbeddingError(
                f"embedding service returned vectors of shape {matrix.shape}, "
                f"expected ({len(texts)}, {self.dimension})",
                transient=False,
            )
        return normalise(matrix)
