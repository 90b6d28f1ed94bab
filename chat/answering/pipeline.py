"""answer_compose: one question in, a streamed, grounded, checked answer out.

input checks → retrieval (hybrid, the asker's account only) → context within a
token budget → generation through the gateway, streamed → citation check →
the outcome (text, citations with support scores, who answered, timings).
Persisting it is the caller's job (chat.services.answers), so evaluation can
run the very same pipeline without writing conversations.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from django.conf import settings

from chat.answering.citations import CheckedAnswer, CheckedSentence, citations_check
from chat.answering.context import (
    Turn,
    history_messages,
    passages_select,
    retrieval_query,
)
from chat.answering.leaks import PromptLeakGuard
from chat.answering.links import LinkGuard, links_strip, urls_in
from chat.answering.markup import MarkupGuard, markdown_text_safe
from chat.answering.prompts import (
    PromptTemplate,
    answer_template_for,
    render_system,
    render_user,
    system_prompt_canary,
)
from chat.answering.texts import ABSTENTION_TEXT
from kb.embeddings.usage import embedding_context
from kb.guard.pii import pii_find
from kb.models import Account, Chunk, KnowledgeBase
from kb.selectors.search import SearchHit, SearchResult, chunk_search
from llm.answer_cache import CacheScope
from llm.events import CompletionRequest, ContextPassage, Error, Message, TextDelta
from llm.gateway import STATIC_PROVIDER, GatewayRequest, GatewayResult, LlmGateway
from llm.privacy import DataPolicy
from llm.providers.registry import configured_providers
from llm.routing import classify_question, route_named, route_with_flags
from observability.metrics import answer_cache_observe
from observability.tracing import span

CLOSEST_SOURCES = 3
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnswerRequest:
    account: Account
    knowledge_base: KnowledgeBase
    question: str  # already through question_clean
    history: tuple[Turn, ...] = ()
    user_id: int | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    use_cache: bool = True  # off for "regenerate"
    route: str | None = None  # None: chosen by classify_question
    feature: str = "answer"
    # The feature-flag variants in force for the asker (flags.selectors.flags_for): they
    # pick the prompt version, a route's chain and the semantic cache, and are recorded.
    flags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceRef:
    """A passage behind a citation (or a closest source when abstaining)."""

    number: int
    chunk: Chunk
    support_score: float | None = None


@dataclass
class AnswerOutcome:
    """Filled in while the answer streams; complete when the generator ends."""

    status: str = "done"  # done | abstained | stopped | failed (Message.Status values)
    problem: str = ""  # Message.Problem values
    text: str = ""  # after the citation check (Markdown without HTML: answering.markup)
    raw_text: str = ""  # as the model streamed it, unfiltered
    sentences: tuple[CheckedSentence, ...] = ()  # of ``text``, when it was checked
    cited: list[SourceRef] = field(default_factory=list)
    closest: list[SourceRef] = field(default_factory=list)
    prompt_version: str = ""
    flags: dict[str, str] = field(default_factory=dict)  # the request's, as recorded
    route: str = ""
    provider: str = ""
    model: str = ""
    cached: str = ""
    request_id: str = ""
    time_to_first_token_ms: float | None = None
    latency_ms: float = 0.0
    retry_at: datetime | None = None  # refused for budget: when it resets
    checked: CheckedAnswer | None = None

    @property
    def answered(self) -> bool:
        return self.status == "done"


def _gateway() -> LlmGateway:
    return LlmGateway(providers=configured_providers())


def _scope(request: AnswerRequest) -> CacheScope | None:
    """The answer caches' scope, or None to keep this answer out of them: a question
    carrying personal data could otherwise be answered, through the semantic cache,
    with another asker's values."""
    if not request.use_cache or pii_find(request.question):
        return None
    kb = request.knowledge_base
    return CacheScope(request.account.pk, ((kb.pk, kb.content_version),), kb.embedding_model)


def _hits_for_sources(account: Account, chunk_ids: Sequence[int]) -> list[SearchHit] | None:
    """The hits a cached answer was written from, if all of them still exist."""
    rows = Chunk.objects.filter(pk__in=chunk_ids, account=account).select_related("document")
    by_id = {chunk.pk: chunk for chunk in rows}
    if len(by_id) != len(set(chunk_ids)):
        return None
    return [SearchHit(chunk=by_id[pk], fused_score=0.0) for pk in chunk_ids]


def vouching_urls(passages: Iterable[ContextPassage]) -> frozenset[str]:
    """The URLs an answer may repeat: those of the given passages that the ingestion scan
    did not flag. A flagged passage (instructions to a model, hidden text, an exfiltration
    link) vouches for nothing, so its URL is refused even when the model repeats it."""
    return urls_in(p.text for p in passages if not p.flags)


def answer_text_safe(text: str, allowed: frozenset[str]) -> str:
    """``text`` as an answer may show it: no HTML (answering.markup), then no image and
    no URL outside ``allowed`` (answering.links)."""
    return links_strip(markdown_text_safe(text), allowed)


def answer_compose(
    request: AnswerRequest,
    outcome: AnswerOutcome,
    *,
    gateway: LlmGateway | None = None,
) -> Generator[str, None, None]:
    """Yield the answer's text as it is generated; ``outcome`` holds the result.

    The question's path, stage by stage: retrieve the passages (or abstain when nothing
    is relevant), build the prompt and the gateway request, stream the model's text
    through the output guards, then verify the citations (or abstain). Closing the
    generator early (a stop or a disconnect) stops the provider call and leaves
    ``outcome`` as ``stopped`` with the partial text.
    """
    started = time.monotonic()
    outcome.request_id = request.request_id
    template = answer_template_for(request.flags)
    outcome.prompt_version = template.label
    outcome.flags = dict(request.flags)
    kb = request.knowledge_base
    # Every embedding made for this answer (the question, the semantic cache, the extractive
    # answerer, the citation check) is charged to it: its ledger rows carry its request id.
    attribution = embedding_context(
        account_id=request.account.pk, feature="answer", request_id=request.request_id
    )
    attribution.__enter__()
    # One trace per answer: retrieve, generate and verify are its children. Ids and
    # outcomes only, never the question or the passages (observability.tracing).
    answer_trace = span(
        "answer", account=request.account.pk, knowledge_base=kb.pk,
        request_id=request.request_id, feature=request.feature,
    )  # fmt: skip
    answer_span = answer_trace.__enter__()
    passages: tuple[ContextPassage, ...] = ()
    try:
        search = _retrieve(request)
        if search.nothing_relevant:
            _abstain(outcome, search.hits, problem="nothing_relevant")
            yield outcome.text
            return
        passages, hits = passages_select(
            search.hits,
            max_passages=settings.CAIRN_ANSWER_PASSAGES,
            max_tokens=settings.CAIRN_CONTEXT_MAX_TOKENS,
            embedding_model=kb.embedding_model,
        )
        gateway_request = _gateway_request(request, template, passages, hits)
        outcome.route = gateway_request.route.name
        result = GatewayResult()
        stream = (gateway or _gateway()).stream(gateway_request, result)
        generated = yield from _generate(
            stream, result, outcome,
            system=gateway_request.completion.system, passages=passages, started=started,
        )  # fmt: skip
        if gateway_request.cache_scope is not None and not result.replayed:
            answer_cache_observe(kind=result.cached)
        outcome.provider, outcome.model = result.provider, result.model
        if generated.leaked:
            logger.warning(
                "answer %s: the system prompt leaked; answer withheld", request.request_id
            )
            outcome.raw_text = outcome.raw_text.replace(generated.canary, "[CANARY]")
            _abstain(outcome, search.hits, problem="")
            return
        outcome.cached = result.cached
        if result.cached_sources and result.cached_sources != gateway_request.cache_sources:
            passages, hits = _cached_passages(request, result.cached_sources, passages, hits)
        if result.provider == STATIC_PROVIDER:
            outcome.status, outcome.problem = "failed", "providers_down"
            outcome.text = outcome.raw_text
            _closest(outcome, search.hits)
            return
        _check(outcome, request, passages, hits, search.hits)
        if generated.interrupted is not None:
            outcome.status, outcome.problem = "failed", "interrupted"
    except GeneratorExit:
        outcome.status, outcome.problem = "stopped", ""
        outcome.text = answer_text_safe(outcome.raw_text, vouching_urls(passages))
        raise
    finally:
        outcome.latency_ms = (time.monotonic() - started) * 1000
        answer_span.set(status=outcome.status, problem=outcome.problem or None,
                        route=outcome.route or None, cached=outcome.cached or None)  # fmt: skip
        answer_trace.__exit__(None, None, None)
        attribution.__exit__(None, None, None)


def _retrieve(request: AnswerRequest) -> SearchResult:
    """Stage 1: the hybrid search over the knowledge base, with the history's context."""
    kb = request.knowledge_base
    with (
        span("retrieve", knowledge_base=kb.pk) as retrieve_span,
        embedding_context(account_id=request.account.pk, feature="query"),
    ):
        search = chunk_search(
            account=request.account,
            knowledge_bases=[kb],
            query=retrieval_query(request.question, request.history),
            k=max(settings.CAIRN_ANSWER_PASSAGES, CLOSEST_SOURCES),
        )
        retrieve_span.set(hits=len(search.hits), nothing_relevant=search.nothing_relevant)
    return search


def _gateway_request(
    request: AnswerRequest,
    template: PromptTemplate,
    passages: tuple[ContextPassage, ...],
    hits: Sequence[SearchHit],
) -> GatewayRequest:
    """Stage 2: the prompt (system, bounded history, passages, question) and the route,
    as the gateway takes them, with the caches' scope and the account's data policy."""
    kb = request.knowledge_base
    history, summary = history_messages(request.history, keep=settings.CAIRN_HISTORY_TURNS)
    user_message = render_user(
        template, question=request.question, passages=passages, history_summary=summary
    )
    route = route_with_flags(
        route_named(request.route or classify_question(request.question)), request.flags
    )
    completion = CompletionRequest(
        system=render_system(template, organisation=request.account.name, knowledge_base=kb.name),
        messages=(*history, Message("user", user_message)),
        max_tokens=route.max_tokens,
        temperature=route.temperature,
        question=request.question,
        passages=passages,
    )
    return GatewayRequest(
        completion=completion,
        route=route,
        account_id=request.account.pk,
        user_id=request.user_id,
        feature=request.feature,
        request_id=request.request_id,
        flags=dict(request.flags),
        cache_scope=_scope(request),
        question=request.question,
        cache_sources=tuple(hit.chunk.pk for hit in hits),
        policy=DataPolicy(
            redact_pii=request.account.redact_pii,
            local_only=request.account.local_providers_only,
        ),
    )


@dataclass(frozen=True)
class _Generated:
    leaked: bool
    interrupted: Error | None
    canary: str


def _generate(
    stream: Iterator[object],
    result: GatewayResult,
    outcome: AnswerOutcome,
    *,
    system: str,
    passages: Sequence[ContextPassage],
    started: float,
) -> Generator[str, None, _Generated]:
    """Stage 3: stream the model's text through the output guards, yielding what the
    reader may see; ``outcome.raw_text`` collects the text as the model wrote it."""
    canary = system_prompt_canary()
    # The tail that could still be the start of a leak (the canary, or the system prompt
    # repeated) waits; no part of a leak may reach the reader.
    leak_guard = PromptLeakGuard(system, canary=canary, quotable=(ABSTENTION_TEXT,))
    held, leaked, interrupted = "", False, None
    # No HTML, no image, and no URL the (unflagged) passages do not contain, ever
    # reaches the reader; a tag or a link cut across deltas waits until it is whole.
    markup, links = MarkupGuard(), LinkGuard(vouching_urls(passages))
    generate_trace = span("generate", route=outcome.route)
    generate_span = generate_trace.__enter__()
    try:
        for event in stream:
            if isinstance(event, TextDelta):
                if outcome.time_to_first_token_ms is None:
                    outcome.time_to_first_token_ms = (time.monotonic() - started) * 1000
                    generate_span.event("first_token")
                outcome.raw_text += event.text
                held += event.text
                if leak_guard.leaked(outcome.raw_text):
                    leaked = True
                    break
                release = leak_guard.releasable(held)
                if release > 0:
                    shown = links.feed(markup.feed(held[:release]))
                    held = held[release:]
                    if shown:
                        yield shown
            elif isinstance(event, Error):
                interrupted = event
    finally:
        stream.close()  # type: ignore[attr-defined]  # a generator
        usage = result.usage
        generate_span.set(
            provider=result.provider, model=result.model, cached=result.cached or None,
            fallback_used=result.fallback_used, attempts=result.attempts,
            input_tokens=usage.input_tokens if usage else None,
            output_tokens=usage.output_tokens if usage else None,
        )  # fmt: skip
        generate_trace.__exit__(None, None, None)
    if not leaked:
        rest = links.feed(markup.feed(held) + markup.flush()) + links.flush()
        if rest:
            yield rest
    return _Generated(leaked=leaked, interrupted=interrupted, canary=canary)


def _cached_passages(
    request: AnswerRequest,
    cached_sources: Sequence[int],
    passages: tuple[ContextPassage, ...],
    hits: tuple[SearchHit, ...],
) -> tuple[tuple[ContextPassage, ...], tuple[SearchHit, ...]]:
    """Stage 4, for a cache hit written from other passages: check the cached answer's
    citations against the passages it was written from, if they all still exist."""
    cached_hits = _hits_for_sources(request.account, cached_sources)
    if cached_hits is None:
        return passages, hits
    model = request.knowledge_base.embedding_model
    return tuple(
        ContextPassage(i, h.chunk.text, h.chunk.document.title, h.chunk.heading_path,
                       model, tuple(h.chunk.safety_flags), h.chunk.knowledge_base_id)
        for i, h in enumerate(cached_hits, start=1)
    ), tuple(cached_hits)  # fmt: skip


def _check(
    outcome: AnswerOutcome,
    request: AnswerRequest,
    passages: Sequence[ContextPassage],
    hits: Sequence[SearchHit],
    all_hits: Sequence[SearchHit],
) -> None:
    """The citation check; an answer with too little supported content (no supported
    citation, or a supported share of its sentences below
    CAIRN_ANSWER_MIN_SUPPORTED_SHARE) becomes the abstention with the closest sources."""
    by_number = {p.number: hit for p, hit in zip(passages, hits, strict=True)}
    with (
        span("verify", passages=len(passages)) as verify_span,
        embedding_context(account_id=request.account.pk, feature="citation_check"),
    ):
        checked = citations_check(
            # Checked as the reader will see it: markup, an image or a foreign URL glued to
            # a cited sentence must not sink (or carry) it.
            answer_text_safe(outcome.raw_text, vouching_urls(passages)),
            passages={p.number: p.text for p in passages},
            passage_vectors={
                number: np.asarray(hit.chunk.embedding, dtype=np.float32)
                for number, hit in by_number.items()
                if hit.chunk.embedding is not None
            },
            embedding_model=request.knowledge_base.embedding_model,
            min_support=settings.CAIRN_CITATION_MIN_SUPPORT,
            knowledge_base_id=request.knowledge_base.pk,
        )
        share = checked.supported_share
        verify_span.set(grounded=checked.grounded, cited=len(checked.cited),
                        supported_share=None if share is None else round(share, 3))  # fmt: skip
    outcome.checked = checked
    if not checked.grounded or share is None or share < settings.CAIRN_ANSWER_MIN_SUPPORTED_SHARE:
        _abstain(outcome, all_hits, problem="")
        return
    # The final answer keeps only URLs its cited passages hold, sentence by sentence so
    # the sentences' spans stay true for the chat's marks.
    allowed = vouching_urls(p for p in passages if p.number in checked.cited)
    final = checked.rewritten(lambda sentence: answer_text_safe(sentence, allowed))
    outcome.status, outcome.text, outcome.sentences = "done", final.text, final.sentences
    outcome.cited = [
        SourceRef(number, by_number[number].chunk, checked.best_score.get(number))
        for number in sorted(checked.cited)
    ]


def _closest(outcome: AnswerOutcome, hits: Sequence[SearchHit]) -> None:
    outcome.closest = [
        SourceRef(index, hit.chunk) for index, hit in enumerate(hits[:CLOSEST_SOURCES], start=1)
    ]


def _abstain(outcome: AnswerOutcome, hits: Sequence[SearchHit], *, problem: str) -> None:
    outcome.status, outcome.problem, outcome.text = "abstained", problem, ABSTENTION_TEXT
    if not outcome.raw_text:
        outcome.raw_text = ABSTENTION_TEXT
    _closest(outcome, hits)
