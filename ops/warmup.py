"""Warming a web process up at start-up, so the first question is as fast as the tenth.

Everything a question needs is loaded lazily, once per process: the bundled embedding
model (seconds), the injection detector's seed vectors, each knowledge base's pages of the
shared indexes in PostgreSQL's cache, the reranker's weights, the embeddings and content
terms of the passages' sentences, the answer pipeline's own lazy parts (the extractive
answerer's abstention model, the prompt, the guards, the citation check), the URL
resolver's reverse tables (built on the first ``reverse()``, which every answer's
citations call), the database connection. Without a warm-up the first asker pays for all
of it. ``warm_up_start`` does it on a background thread when the server starts (the ASGI
lifespan start-up, ``config/asgi.py``): the process accepts connections at once,
``/readyz`` answers 503 ``warming`` until the thread is done, so a load balancer (and
``manage.py serve``'s "ready" line) waits for it. Tests and management commands never send
a lifespan start-up, so they never pay for it.

The answer is rehearsed once, through the real pipeline (``answer_compose``: retrieval,
context, prompt, the local extractive answerer, the output guards, the citation check) on
one knowledge base with a local embedding model, asking one of its own sentences. It is
nobody's answer: no conversation or message is written, its embeddings stay out of the
usage ledger, and the local answerer is called directly rather than through the gateway,
so no ledger row, no answer-cache entry, no pacing. Only local models are warmed: an API
model needs no loading, and warming it would send text to a third party. A failure is
logged and leaves the process ready: whatever was not loaded loads on first use, as it
would have without a warm-up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from copy import copy
from dataclasses import dataclass

from chat.answering.pipeline import AnswerOutcome, AnswerRequest, answer_compose
from chat.answering.questions import question_clean
from kb.embeddings.local import MINILM_MODEL_ID
from kb.embeddings.privacy import embedding_model_is_local
from kb.embeddings.registry import get_embedder
from kb.embeddings.texts import texts_embed
from kb.embeddings.usage import embedding_context
from kb.guard.injection import injection_scan
from kb.guard.pii import pii_find
from kb.models import Chunk, KnowledgeBase
from kb.selectors.search import chunk_search
from kb.units import chunk_units, text_terms
from llm.events import Event, TextDelta, Usage
from llm.gateway import GatewayRequest, GatewayResult, LlmGateway
from llm.providers.base import CallTimeouts
from llm.providers.registry import configured_providers

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


def warm_up_on_server_start(**_: object) -> None:
    """Receiver of ``config.signals.server_starting``: warm up this serving process."""
    warm_up_start()


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

    # Nobody's content, nobody's bill: keep the warm-up out of the usage ledger.
    with embedding_context(account_id=None, feature="warm_up", recorded=False):
        get_embedder(MINILM_MODEL_ID).embed([WARM_UP_QUERY])  # the guards always use it
        _question_checks(WARM_UP_QUERY)
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
        urls_warm()
        for knowledge_base in knowledge_bases:
            if answer_rehearse(knowledge_base) is not None:
                break  # the code path is warm now; per-KB caches were filled above
    return warmed


def _question_checks(question: str) -> None:
    """What a question goes through before retrieval: cleaning (the tokenizer), the
    injection detector, the PII finder (the answer caches' scope)."""

    injection_scan(question_clean(question))
    pii_find(question)


def urls_warm() -> None:
    """Build every URL resolver's reverse tables, which Django builds on the first
    ``reverse()`` through each (an answer's citation links): a third of a second of regex
    work that the first asker would otherwise wait for."""
    from django.urls import URLResolver, get_resolver

    pending = [get_resolver()]
    while pending:
        resolver = pending.pop()
        resolver.reverse_dict  # noqa: B018 (builds the tables, for the active language)
        pending.extend(p for p in resolver.url_patterns if isinstance(p, URLResolver))


def answer_rehearse(knowledge_base: KnowledgeBase) -> AnswerOutcome | None:
    """One answer composed through the real pipeline and thrown away (module docstring),
    or None when the knowledge base cannot rehearse one (an API embedding model, no
    chunk). Writes nothing a question would: no conversation, no ledger row, no usage."""

    if not embedding_model_is_local(knowledge_base.embedding_model):
        return None
    question = _rehearsal_question(knowledge_base)
    if question is None:
        return None
    account = copy(knowledge_base.account)  # never saved: the rehearsal's local-only view
    account.local_providers_only = True
    request = AnswerRequest(
        account=account, knowledge_base=knowledge_base, question=question,
        use_cache=False, feature="warm_up", request_id="warm-up",
    )  # fmt: skip
    outcome = AnswerOutcome()
    with embedding_context(account_id=None, feature="warm_up", recorded=False):
        _question_checks(question)
        for _ in answer_compose(request, outcome, gateway=_local_unrecorded_gateway()):
            pass
    return outcome


def _rehearsal_question(knowledge_base: KnowledgeBase) -> str | None:
    """A question the knowledge base can answer: one of its own sentences, asked. So
    retrieval finds passages, the answerer quotes and the citation check checks."""

    for text, heading_path, title in Chunk.objects.filter(
        account_id=knowledge_base.account_id, knowledge_base=knowledge_base
    ).values_list("text", "heading_path", "document__title")[:20]:
        for unit in chunk_units(text, title=title, heading_path=heading_path):
            sentence = " ".join(unit.semantic_text.split()[:30]).rstrip(".!?:;")
            if sentence:
                return f"{sentence}?"
    return None


def _local_unrecorded_gateway() -> LlmGateway:
    """A gateway that only calls the process's own extractive answerer (the instance
    questions use), directly: unpaced, with no ledger row, no answer cache, no breaker."""

    class LocalUnrecordedGateway(LlmGateway):
        def stream(
            self, request: GatewayRequest, result: GatewayResult | None = None
        ) -> Iterator[Event]:
            result = result if result is not None else GatewayResult()
            result.provider, result.model = "local", "extractive"
            # A total of 0 s leaves no time to pace the words (ExtractiveAnswerer.stream).
            timeouts = CallTimeouts(connect=1.0, first_token=1.0, total=0.0)
            answerer = self.providers["local"]
            for event in answerer.stream(request.completion, model="extractive", timeouts=timeouts):
                if isinstance(event, TextDelta):
                    result.text += event.text
                elif isinstance(event, Usage):
                    result.usage = event
                yield event

    return LocalUnrecordedGateway(providers={"local": configured_providers()["local"]})


def _units_embed(knowledge_bases: list[KnowledgeBase]) -> None:
    """Load the quotable units' vectors of the first chunks into the per-process cache the
    reranker and the answerer read (kb.embeddings.texts: from the table ingestion fills,
    embedded only if missing there), and the chunks' units and content terms into theirs
    (kb.units), so the first questions do not pay for them. At most MAX_WARM_UNITS units,
    well within the caches."""

    budget = MAX_WARM_UNITS
    for knowledge_base in knowledge_bases:
        model_id = knowledge_base.embedding_model
        if budget <= 0 or not embedding_model_is_local(model_id):
            continue
        rows = Chunk.objects.filter(
            account_id=knowledge_base.account_id, knowledge_base=knowledge_base
        ).values_list("text", "heading_path", "document__title")[:budget]
        texts: list[str] = []
        for text, heading_path, title in rows:
            text_terms(f"{title} {heading_path} {text}")  # as the reranker reads a chunk
            units = chunk_units(text, title=title, heading_path=heading_path)
            texts.extend(unit.semantic_text for unit in units)
        texts = texts[:budget]
        for start in range(0, len(texts), 256):
            texts_embed(model_id, texts[start : start + 256], knowledge_base_id=knowledge_base.pk)
        budget -= len(texts)
