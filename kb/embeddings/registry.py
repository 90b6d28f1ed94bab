"""Which embedder serves which model id; one instance per process and model."""

from __future__ import annotations

import threading

from django.conf import settings

from kb.embeddings.base import Embedder, EmbeddingError
from kb.embeddings.local import MINILM_MODEL_ID, MiniLMEmbedder
from kb.embeddings.openai_api import OPENAI_PREFIX, OpenAIEmbedder
from kb.models import EMBEDDING_DIMENSION

_instances: dict[str, Embedder] = {}
_lock = threading.Lock()


def is_supported_model(model_id: str) -> bool:
    return model_id == MINILM_MODEL_ID or (
        model_id.startswith(OPENAI_PREFIX) and len(model_id) > len(OPENAI_PREFIX)
    )


def _build(model_id: str) -> Embedder:
    if model_id == MINILM_MODEL_ID:
        return MiniLMEmbedder(
            batch_size=settings.CAIRN_EMBEDDING_BATCH_SIZE, threads=settings.CAIRN_EMBEDDING_THREADS
        )
    if model_id.startswith(OPENAI_PREFIX) and len(model_id) > len(OPENAI_PREFIX):
        return OpenAIEmbedder(
            model=model_id.removeprefix(OPENAI_PREFIX),
            dimension=EMBEDDING_DIMENSION,
            api_key=settings.OPENAI_API_KEY,
            base_url=settings.CAIRN_OPENAI_BASE_URL,
            timeout=settings.CAIRN_EMBEDDING_TIMEOUT,
        )
    raise EmbeddingError(f"unknown embedding model {model_id!r}", transient=False)


def get_embedder(model_id: str) -> Embedder:
    """The process-wide embedder for ``model_id`` (models load once per process)."""
    embedder = _instances.get(model_id)
    if embedder is None:
        with _lock:
            embedder = _instances.get(model_id)
            if embedder is None:
                embedder = _instances[model_id] = _build(model_id)
    return embedder


def reset_embedders() -> None:
    """Forget cached instances (tests that change provider settings)."""
    with _lock:
        _instances.clear()
