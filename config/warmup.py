"""Warming a web process up at start-up, so the first question is as fast as the tenth.

Everything a question needs is loaded lazily, once per process: the bundled embedding
model (seconds), the injection detector's seed vectors, each knowledge base's pages of the
shared indexes in PostgreSQL's cache, the reranker's weights, the embeddings of the
passages' sentences, the database connection. Without a warm-up the first asker pays for
all of it. ``warm_up_start`` does it on a background thread when the server starts (the
ASGI lifespan start-up, ``config/asgi.py``): the process accepts connections at once,
``/readyz`` answers 503 ``warming`` until the thread is done, so a load balancer (and
``manage.py serve``'s "ready" line) waits for it. Tests and management commands never send
a lifespan start-up, so they never pay for it.

Only local models are warmed: an API model needs no loading, and warming it would send
text to a third party. A failure is logged and leaves the process ready: whatever was not
loaded loads on first use, as it would have without a warm-up.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kb.models import KnowledgeBase

logger = logging.getLogger(__name__)

WARM_UP_QUERY = "How do I get started?"
MAX_KNOWLEDGE_BASES = 50  # most recently changed first; the rest warm on first use
MAX_WARM_UNITS = 1000  # passage sentences embedded ahead: ~5 s on an idle core; the demo has 696


@dataclass(frozen=True)
class WarmUpState:
    state: str  # "off" (never started), "warming", "ready", "failed"
    detail: str = ""
    seconds: float | None = None


_state = WarmUpState("off", "not started: no ASGI lifespan start-up in this process")
_lock = threading.Lock()


def warm_up_state() -> WarmUpState:
    return _state


def _set(state: WarmUpState) -> None:
    global _state
    _state = state


def warm_up_start() -> bool:
    """Start the warm-up thread (once per process); False if it already ran or runs."""
    with _lock:
        if _state.state != "off":
            return False
        _set(WarmUpState("warming", "loading the embedding model and search indexes"))
    threading.Thread(target=_run, name="cairn-warm-up", daemon=True).start()
    return True


def _run() -> None:
    from django.db import connection

    started = time.perf_counter()
    try:
        warmed = warm_up()
    except Exception as exc:  # never fatal: what is not warm loads on first use
        logger.exception("warm-up failed; models and indexes load on first use")
        _set(WarmUpState("failed", f"{exc.__class__.__name__}; loads on first use"))
        return
    finally:
        connection.close()  # this thread's own connection
    seconds = time.perf_counter() - started
    logger.info("warm-up done in %.1f s (%s knowledge bases)", seconds, warmed)
    _set(WarmUpState("ready", f"{warmed} knowledge bases warmed", round(seconds, 2)))


def warm_up() -> int:
    """Load what the first question would load; the number of knowledge bases searched."""
    from kb.embeddings.local import MINILM_MODEL_ID
    from kb.embeddings.privacy import embedding_model_is_local
    from kb.embeddings.registry import get_embedder
    from kb.embeddings.usage import embedding_context
    from kb.guard.injection import injection_scan
    from kb.models import KnowledgeBase
    from kb.selectors.search import chunk_search

    # Nobody's content, nobody's bill: keep the warm-up out of the usage ledger.
    with embedding_context(account_id=None, feature="warm_up", recorded=False):
        get_embedder(MINILM_MODEL_ID).embed([WARM_UP_QUERY])  # the guards always use it
        injection_scan(WARM_UP_QUERY)
        knowledge_bases = list(
            KnowledgeBase.objects.select_related("account").order_by("-updated_at")[
                :MAX_KNOWLEDGE_BASES
            ]
        )
        warmed = 0
        for knowledge_base in knowledge_bases:
            if not embedding_model_is_local(knowledge_base.embedding_model):
                continue
            chunk_search(
                account=knowledge_base.account, knowledge_bases=[knowledge_base],
                query=WARM_UP_QUERY,
            )  # fmt: skip
            warmed += 1
        _units_embed(knowledge_bases)
    return warmed


def _units_embed(knowledge_bases: list[KnowledgeBase]) -> None:
    """Load the quotable units' vectors of the first chunks into the per-process cache the
    reranker and the answerer read (kb.embeddings.texts: from the table ingestion fills,
    embedded only if missing there), so the first questions do not pay for them. At most
    MAX_WARM_UNITS units, well within the cache."""
    from kb.embeddings.privacy import embedding_model_is_local
    from kb.embeddings.texts import texts_embed
    from kb.models import Chunk
    from kb.units import chunk_units

    budget = MAX_WARM_UNITS
    for knowledge_base in knowledge_bases:
        model_id = knowledge_base.embedding_model
        if budget <= 0 or not embedding_model_is_local(model_id):
            continue
        rows = Chunk.objects.filter(
            account_id=knowledge_base.account_id, knowledge_base=knowledge_base
        ).values_list("text", "heading_path", "document__title")[:budget]
        texts = [
            unit.semantic_text
            for text, heading_path, title in rows
            for unit in chunk_units(text, title=title, heading_path=heading_path)
        ][:budget]
        for start in range(0, len(texts), 256):
            texts_embed(model_id, texts[start : start + 256], knowledge_base_id=knowledge_base.pk)
        budget -= len(texts)
