"""The gateway: one streaming call through a route's chain, reliably.

For each chain entry in order: skip it if its circuit breaker is open; call it
with timeouts (the first entry gets CAIRN_LLM_CALL_TIMEOUT, fallbacks the
shorter CAIRN_LLM_FALLBACK_CALL_TIMEOUT, all within the request's
CAIRN_LLM_REQUEST_TIMEOUT); retry retryable failures with backoff and full
jitter (honouring Retry-After) up to CAIRN_LLM_RETRIES times; then fall back to
the next entry. So at most (retries + 1) x (chain length) calls are made.

Streaming-safe: nothing is passed on until a call produces its first token, so
a failure before that falls back invisibly. Once text has been sent, a failure
ends the stream with an Error event instead: falling back then would repeat or
contradict what the reader already saw. When every entry fails, the caller gets
the static fallback message. Every call, retry and replay goes to the ledger.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache

from kb.embeddings.tokens import count_tokens
from llm.answer_cache import (
    CachedAnswer,
    CacheScope,
    answer_cache_lookup,
    answer_cache_store,
)
from llm.backoff import retry_delay
from llm.breaker import CircuitBreaker
from llm.errors import ProviderError
from llm.events import (
    CompletionRequest,
    End,
    Error,
    Event,
    Start,
    TextDelta,
    Usage,
)
from llm.ledger import CallContext, llm_call_record
from llm.privacy import (
    DataPolicy,
    PlaceholderRestorer,
    completion_redact,
    provider_is_local,
)
from llm.providers.base import CallTimeouts, Provider
from llm.routing import ChainEntry, Route

logger = logging.getLogger(__name__)

STATIC_PROVIDER = "static"
_FAILED_STATUSES = {"error", "interrupted"}
INTERRUPTED_MESSAGE = (
    "The answer was interrupted: the language model stopped responding. "
    "The text above may be incomplete."
)
# Flags whose variant changes what an answer says: answers made under one are cached
# apart from the rest (see _cache_route). "semantic_cache" changes only where it comes from.
_ANSWER_SHAPING_FLAGS = ("prompt_version", "route_chain:")
SEMANTIC_CACHE_FLAG = "semantic_cache"
# Failures that say nothing about the provider's health do not move its breaker.
_NOT_THE_PROVIDERS_FAULT = {"bad_request", "auth_error", "http_404", "http_413", "http_422"}


def _call_record(*, context: CallContext, error: str = "", **call: Any) -> None:
    """The ledger row of one call (or skip, cache hit, replay, static message) and its
    log line: provider, model, attempt, status, latency, tokens, cost; never the prompt
    or the answer. Failures are warnings, with the provider's error."""
    row = llm_call_record(context=context, **call)
    problem = f" ({row.error_class}{': ' + error if error else ''})" if row.error_class else ""
    logger.log(
        logging.WARNING if row.status in _FAILED_STATUSES else logging.INFO,
        "llm call %s:%s attempt %s %s%s in %d ms, tokens %d in, %d out",
        row.provider, row.model, row.attempt, row.status, problem, row.latency_ms,
        row.input_tokens, row.output_tokens,
        extra={
            "provider": row.provider, "model": row.model, "attempt": row.attempt,
            "status": row.status, "latency_ms": row.latency_ms,
            "ttft_ms": row.time_to_first_token_ms, "input_tokens": row.input_tokens,
            "output_tokens": row.output_tokens, "cost": row.cost,
            "error_class": row.error_class, "cache_hit": row.cache_hit,
            "cache_reason": row.cache_reason,
            "fallback_used": row.fallback_used, "route": context.route,
            "feature": context.feature,
        },
    )  # fmt: skip


@dataclass(frozen=True)
class GatewayRequest:
    completion: CompletionRequest
    route: Route
    account_id: int | None = None
    user_id: int | None = None
    feature: str = "answer"
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    idempotency_key: str = ""
    # With a scope and the bare question, answers are served from and kept in the caches.
    cache_scope: CacheScope | None = None
    question: str = ""
    cache_sources: tuple[int, ...] = ()  # kept with a cached answer (see CachedAnswer.sources)
    # The account's rules: redact PII for third parties, or use local providers only.
    policy: DataPolicy = field(default_factory=DataPolicy)
    # The feature-flag variants in force for the asker ({flag key: variant}): recorded on
    # every ledger row; "semantic_cache": "off" skips the semantic lookup.
    flags: dict[str, str] = field(default_factory=dict)

    @property
    def semantic_cache(self) -> bool:
        return self.flags.get(SEMANTIC_CACHE_FLAG) != "off"


def _cache_route(request: GatewayRequest) -> str:
    """The route name the answer caches file this request's answers under: the route's,
    plus a digest of the flags that change the answer (a prompt version, this route's
    chain), so a rollout's answers never serve the control group, nor the reverse."""
    name = request.route.name
    shaping = sorted(
        (key, variant)
        for key, variant in request.flags.items()
        if key == _ANSWER_SHAPING_FLAGS[0] or key == f"{_ANSWER_SHAPING_FLAGS[1]}{name}"
    )
    if not shaping:
        return name
    digest = hashlib.sha256(repr(shaping).encode()).hexdigest()[:12]
    return f"{name[:37]}~{digest}"  # within the cache tables' 50 characters


@dataclass
class GatewayResult:
    """Filled in while the stream is consumed; complete once it ends."""

    text: str = ""
    provider: str = ""
    model: str = ""
    usage: Usage | None = None
    fallback_used: bool = False
    replayed: bool = False
    cached: str = ""  # "exact" or "semantic" when served from the answer cache
    cached_sources: tuple[int, ...] = ()
    # Why the answer cache served or not ("exact", "hit", "miss:negation"…; "" without a
    # lookup), also on the ledger row of the call that produced the answer.
    cache_reason: str = ""
    failed: bool = False
    attempts: int = 0


class LlmGateway:
    def __init__(
        self,
        *,
        providers: Mapping[str, Provider],
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.providers = providers
        self._sleep = sleep
        self._clock = clock

    def breaker(self, key: str) -> CircuitBreaker:
        return CircuitBreaker(
            key,
            threshold=settings.CAIRN_BREAKER_THRESHOLD,
            cooldown_seconds=settings.CAIRN_BREAKER_COOLDOWN,
        )

    def stream(
        self, request: GatewayRequest, result: GatewayResult | None = None
    ) -> Iterator[Event]:
        """Events for the caller; ``result`` (if given) is filled in as they go."""
        result = result if result is not None else GatewayResult()
        context = CallContext(
            request_id=request.request_id,
            account_id=request.account_id,
            user_id=request.user_id,
            route=request.route.name,
            feature=request.feature,
            idempotency_key=request.idempotency_key,
            flags=dict(request.flags),
        )
        replay = self._replay(request)
        if replay is not None:
            yield from self._replayed(replay, context, result)
            return
        if request.cache_scope is not None and request.question:
            lookup = answer_cache_lookup(
                scope=request.cache_scope, route=_cache_route(request),
                question=request.question, request=request.completion,
                sources=request.cache_sources, semantic=request.semantic_cache,
            )  # fmt: skip
            result.cache_reason = lookup.reason
            if lookup.answer is not None:
                yield from self._from_cache(lookup.answer, context, result)
                return
        deadline = self._clock() + settings.CAIRN_LLM_REQUEST_TIMEOUT
        for index, entry in enumerate(self._chain(request)):
            provider = self.providers.get(entry.provider)
            if provider is None:
                logger.warning(
                    "route %s: no provider %r configured", request.route.name, entry.provider
                )
                continue
            outcome = yield from self._try_entry(
                request, provider, entry.provider, entry.model, index, deadline, context, result
            )
            if outcome in ("done", "interrupted"):
                return
            if self._clock() >= deadline:
                break
        yield from self._static_fallback(context, result)

    def _chain(self, request: GatewayRequest) -> tuple[ChainEntry, ...]:
        """The route's chain as the account may use it: without third-party entries for
        an account that has not consented to them (ending on the local answerer if
        nothing else is left, rather than on the static "providers down" message)."""
        chain = request.route.chain
        if not request.policy.local_only:
            return chain
        allowed = tuple(e for e in chain if provider_is_local(self.providers.get(e.provider)))
        if len(allowed) < len(chain):
            logger.info(
                "route %s: third-party providers skipped (account %s: local providers only)",
                request.route.name, request.account_id,
            )  # fmt: skip
        return allowed or (ChainEntry("local", "extractive"),)

    def _try_entry(  # noqa: C901 — one loop, every branch a documented rule
        self,
        request: GatewayRequest,
        provider: Provider,
        provider_name: str,
        model: str,
        index: int,
        deadline: float,
        context: CallContext,
        result: GatewayResult,
    ) -> Generator[Event, None, str]:
        """Yield this entry's events; return "done", "interrupted", "failed", "skipped"
        or "exhausted" (the request's time is up)."""
        breaker = self.breaker(f"{provider_name}:{model}")
        call_timeout = (
            settings.CAIRN_LLM_CALL_TIMEOUT
            if index == 0
            else settings.CAIRN_LLM_FALLBACK_CALL_TIMEOUT
        )
        for attempt in range(1, settings.CAIRN_LLM_RETRIES + 2):
            remaining = deadline - self._clock()
            if remaining <= 0:
                return "exhausted"
            if not breaker.allow():
                _call_record(
                    context=context, provider=provider_name, model=model, attempt=attempt,
                    status="skipped", error_class="circuit_open", fallback_used=index > 0,
                )  # fmt: skip
                return "skipped"
            timeouts = CallTimeouts(
                connect=min(settings.CAIRN_LLM_CONNECT_TIMEOUT, remaining),
                first_token=min(settings.CAIRN_LLM_FIRST_TOKEN_TIMEOUT, call_timeout, remaining),
                total=min(call_timeout, remaining),
            )
            result.attempts += 1
            started = self._clock()
            first_token_at: float | None = None
            pending_start: Start | None = None
            parts: list[str] = []
            usage: Usage | None = None
            finish = End()
            completion, restorer = self._outgoing(request, provider)
            try:
                for event in provider.stream(completion, model=model, timeouts=timeouts):
                    if isinstance(event, Start):
                        pending_start = event
                    elif isinstance(event, TextDelta):
                        if first_token_at is None:
                            first_token_at = self._clock()
                            result.provider, result.model = provider_name, model
                            result.fallback_used = index > 0
                            yield pending_start or Start(provider_name, model)
                        parts.append(event.text)
                        shown = restorer.feed(event.text) if restorer else event.text
                        if shown:
                            result.text += shown
                            yield TextDelta(shown)
                    elif isinstance(event, Usage):
                        usage = event
                    elif isinstance(event, End):
                        finish = event
            except ProviderError as exc:
                elapsed = (self._clock() - started) * 1000
                if exc.error_class not in _NOT_THE_PROVIDERS_FAULT:
                    breaker.record_failure()
                interrupted = first_token_at is not None
                _call_record(
                    context=context, provider=provider_name, model=model, attempt=attempt,
                    status="interrupted" if interrupted else "error", error_class=exc.error_class,
                    usage=usage or (self._estimate(request.completion, "".join(parts))
                                    if interrupted else None),
                    latency_ms=elapsed,
                    ttft_ms=None if first_token_at is None else (first_token_at - started) * 1000,
                    fallback_used=index > 0, error=str(exc),
                    # An interrupted call is the answer's; a failure before it is not.
                    cache_reason=result.cache_reason if interrupted else "",
                )  # fmt: skip
                if interrupted:
                    result.failed = True
                    yield Error(INTERRUPTED_MESSAGE, exc.error_class, retryable=False)
                    return "interrupted"
                if not exc.retryable or attempt > settings.CAIRN_LLM_RETRIES:
                    return "failed"
                delay = retry_delay(
                    attempt, base=settings.CAIRN_LLM_BACKOFF_BASE,
                    cap=settings.CAIRN_LLM_BACKOFF_CAP, retry_after=exc.retry_after,
                )  # fmt: skip
                if self._clock() + delay >= deadline:
                    return "exhausted"
                self._sleep(delay)
                continue
            except GeneratorExit:
                _call_record(
                    context=context, provider=provider_name, model=model, attempt=attempt,
                    status="cancelled", usage=self._estimate(request.completion, "".join(parts)),
                    latency_ms=(self._clock() - started) * 1000, fallback_used=index > 0,
                    cache_reason=result.cache_reason,
                )  # fmt: skip
                raise
            breaker.record_success()
            text = "".join(parts)
            rest = restorer.flush() if restorer else ""
            if rest:
                result.text += rest
                yield TextDelta(rest)
            if first_token_at is None:  # an empty answer still tells the caller who answered
                first_token_at = self._clock()
                result.provider, result.model = provider_name, model
                result.fallback_used = index > 0
                yield pending_start or Start(provider_name, model)
            usage = usage or self._estimate(request.completion, text)
            result.usage = usage
            _call_record(
                context=context, provider=provider_name, model=model, attempt=attempt,
                status="ok", usage=usage, latency_ms=(self._clock() - started) * 1000,
                ttft_ms=(first_token_at - started) * 1000, fallback_used=index > 0,
                cache_reason=result.cache_reason,
            )  # fmt: skip
            self._remember(request, result)
            if request.cache_scope is not None and request.question:
                answer_cache_store(
                    scope=request.cache_scope, route=_cache_route(request),
                    question=request.question, request=request.completion,
                    text=result.text, provider=provider_name, model=model,
                    sources=request.cache_sources,
                )  # fmt: skip
            yield usage
            yield finish
            return "done"
        return "failed"

    # --- the rest: redaction, estimates, the static message, idempotent replays ----

    @staticmethod
    def _outgoing(
        request: GatewayRequest, provider: Provider
    ) -> tuple[CompletionRequest, PlaceholderRestorer | None]:
        """What this provider may see, and how to turn its answer back for the asker."""
        if not request.policy.redact_pii or provider_is_local(provider):
            return request.completion, None
        completion, placeholders = completion_redact(request.completion)
        return completion, PlaceholderRestorer(placeholders) if placeholders else None

    @staticmethod
    def _estimate(completion: CompletionRequest, text: str) -> Usage:
        prompt = completion.system + "".join(m.content for m in completion.messages)
        return Usage(count_tokens(prompt), count_tokens(text), estimated=True)

    def _static_fallback(self, context: CallContext, result: GatewayResult) -> Iterator[Event]:
        message = settings.CAIRN_LLM_FALLBACK_MESSAGE
        result.text, result.provider, result.model = message, STATIC_PROVIDER, "fallback"
        result.failed = result.fallback_used = True
        _call_record(
            context=context, provider=STATIC_PROVIDER, model="fallback", attempt=1,
            status="error", error_class="all_providers_failed", fallback_used=True,
            cache_reason=result.cache_reason,
        )  # fmt: skip
        yield Start(STATIC_PROVIDER, "fallback")
        yield TextDelta(message)
        yield End("error")

    @staticmethod
    def _idempotency_cache_key(request: GatewayRequest) -> str | None:
        if not request.idempotency_key:
            return None
        return f"cairn:idempotency:{request.account_id}:{request.idempotency_key}"

    def _replay(self, request: GatewayRequest) -> dict[str, str] | None:
        key = self._idempotency_cache_key(request)
        return cache.get(key) if key else None

    def _remember(self, request: GatewayRequest, result: GatewayResult) -> None:
        key = self._idempotency_cache_key(request)
        if key:
            cache.set(
                key,
                {"text": result.text, "provider": result.provider, "model": result.model},
                timeout=settings.CAIRN_IDEMPOTENCY_TTL,
            )

    def _from_cache(
        self, hit: CachedAnswer, context: CallContext, result: GatewayResult
    ) -> Iterator[Event]:
        """An answer from the exact or semantic cache: recorded, at zero cost."""
        result.text, result.provider, result.model = hit.text, hit.provider, hit.model
        result.cached = hit.kind
        result.cached_sources = hit.sources
        result.usage = Usage(0, 0)
        _call_record(
            context=context, provider=hit.provider, model=hit.model, attempt=1,
            status="ok", cache_hit=True, cache_reason=result.cache_reason,
        )  # fmt: skip
        yield Start(hit.provider, hit.model)
        yield TextDelta(hit.text)
        yield result.usage
        yield End()

    def _replayed(
        self, replay: dict[str, str], context: CallContext, result: GatewayResult
    ) -> Iterator[Event]:
        """A client retry with the same idempotency key: the same answer, not charged again."""
        result.text, result.provider, result.model = (
            replay["text"],
            replay["provider"],
            replay["model"],
        )
        result.replayed = True
        result.usage = Usage(0, 0)
        _call_record(
            context=context, provider=replay["provider"], model=replay["model"], attempt=1,
            status="ok", cache_hit=True,
        )  # fmt: skip
        yield Start(replay["provider"], replay["model"])
        yield TextDelta(replay["text"])
        yield result.usage
        yield End()
