"""Reporting embedding usage without kb depending on the ledger's app.

Embedders call ``report_embedding_usage``; the chat app (which owns the usage
ledger) registers the recorder at start-up. Who is being served — the account
and the feature — travels in a context variable set by the caller
(``embedding_context``), so embedders need no new parameters.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class EmbeddingUsage:
    model_id: str
    texts: int
    input_tokens: int
    latency_ms: float
    ok: bool
    error_class: str = ""
    estimated: bool = False


@dataclass(frozen=True)
class EmbeddingContext:
    account_id: int | None
    feature: str  # "ingestion", "query", "reembedding"…
    request_id: str = ""  # the answer the embedding was for, so its cost counts there
    recorded: bool = True  # False: nobody's content, nobody's bill (the start-up warm-up)


class UsageRecorder(Protocol):
    def __call__(self, usage: EmbeddingUsage, context: EmbeddingContext) -> None: ...


_context: contextvars.ContextVar[EmbeddingContext] = contextvars.ContextVar(
    "embedding_context",
    default=EmbeddingContext(None, "embedding"),  # noqa: B039 (frozen)
)
_recorder: UsageRecorder | None = None


def set_usage_recorder(recorder: UsageRecorder | None) -> None:
    global _recorder
    _recorder = recorder


@contextmanager
def embedding_context(
    *,
    account_id: int | None,
    feature: str,
    request_id: str | None = None,
    recorded: bool | None = None,
) -> Iterator[None]:
    """Attribute embeddings made inside to ``account_id`` (and to the answer
    ``request_id``; unsaid, an enclosing context's request id carries through, and so does
    ``recorded=False``, which keeps them out of the usage ledger)."""
    enclosing = _context.get()
    if request_id is None:
        request_id = enclosing.request_id
    if recorded is None:
        recorded = enclosing.recorded
    token = _context.set(EmbeddingContext(account_id, feature, request_id, recorded))
    try:
        yield
    finally:
        _context.reset(token)


def current_embedding_context() -> EmbeddingContext:
    """Who the embeddings being made now are for (the privacy rules read it too)."""
    return _context.get()


def report_embedding_usage(usage: EmbeddingUsage) -> None:
    context = _context.get()
    if _recorder is not None and context.recorded:
        _recorder(usage, context)


@contextmanager
def usage_recording_paused() -> Iterator[None]:
    """Embeddings made inside are not reported (offline evaluations nobody is billed for)."""
    global _recorder
    previous = _recorder
    _recorder = None
    try:
        yield
    finally:
        _recorder = previous
