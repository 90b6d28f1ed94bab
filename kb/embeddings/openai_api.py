"""Embeddings from the OpenAI API or any server that speaks its /v1/embeddings protocol."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import openai

from kb.embeddings.base import EmbeddingError, Vectors, normalise
from kb.embeddings.privacy import embedding_policy_enforce
from kb.embeddings.tokens import count_tokens_batch
from kb.embeddings.usage import EmbeddingUsage, report_embedding_usage

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
        # A third party: the account's privacy rules decide what, if anything, it sees.
        texts = embedding_policy_enforce(self.model_id, texts)
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            started = time.perf_counter()
            try:
                response = self._client.embeddings.create(
                    model=self.model, input=batch, dimensions=self.dimension
                )
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                self._report(batch, started, ok=False, error_class="connection_error")
                raise EmbeddingError(
                    f"embedding service unreachable: {exc}", transient=True
                ) from exc
            except openai.APIStatusError as exc:
                transient = exc.status_code == 429 or exc.status_code >= 500
                self._report(batch, started, ok=False, error_class=f"http_{exc.status_code}")
                raise EmbeddingError(
                    f"embedding service answered {exc.status_code}: {exc.message}",
                    transient=transient,
                ) from exc
            tokens = response.usage.prompt_tokens if response.usage else None
            self._report(batch, started, ok=True, tokens=tokens)
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

    def _report(
        self,
        batch: list[str],
        started: float,
        *,
        ok: bool,
        error_class: str = "",
        tokens: int | None = None,
    ) -> None:
        if tokens is None:
            tokens, estimated = sum(count_tokens_batch(batch)), True
        else:
            estimated = False
        report_embedding_usage(
            EmbeddingUsage(
                model_id=self.model_id, texts=len(batch), input_tokens=tokens if ok else 0,
                latency_ms=(time.perf_counter() - started) * 1000, ok=ok,
                error_class=error_class, estimated=estimated and ok,
            )
        )  # fmt: skip
