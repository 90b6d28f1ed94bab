"""Question vectors, embedded once per process.

A question is embedded by retrieval, by the injection detector and by the semantic cache;
this cache hands the same float values to all three. It sits with the embeddings (below
search and the guards) so that each of them can import it at module level.
"""

from __future__ import annotations

from functools import lru_cache

from kb.embeddings.registry import get_embedder


@lru_cache(maxsize=2048)
def _query_embedding(model_id: str, query: str) -> tuple[float, ...]:
    """Per-process cache: the same question asked again is not embedded again."""
    return tuple(float(x) for x in get_embedder(model_id).embed([query])[0])


def query_embedding(model_id: str, query: str) -> tuple[float, ...]:
    return _query_embedding(model_id, " ".join(query.split()))
