"""Writing the usage ledger: one row per call, priced from the price table."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache

from django.conf import settings
from django.db import connection, transaction

from llm.events import Usage
from llm.models import LlmCall
from llm.pricing import FREE, Price, call_cost, parse_price_table
from observability.metrics import llm_call_observe


@lru_cache(maxsize=4)
def _prices(raw: str) -> dict[str, Price]:
    return parse_price_table(raw)


def price_for(provider: str, model: str) -> Price:
    return _prices(settings.CAIRN_LLM_PRICES).get(f"{provider}:{model}", FREE)


@dataclass(frozen=True)
class CallContext:
    request_id: str
    account_id: int | None
    user_id: int | None
    route: str
    feature: str
    idempotency_key: str = ""
    # The feature-flag variants in force for the request, written on every row of it.
    flags: dict[str, str] = field(default_factory=dict)


def llm_call_record(
    *,
    context: CallContext,
    provider: str,
    model: str,
    attempt: int,
    status: str,
    usage: Usage | None = None,
    latency_ms: float = 0.0,
    ttft_ms: float | None = None,
    error_class: str = "",
    cache_hit: bool = False,
    fallback_used: bool = False,
    cache_reason: str = "",
) -> LlmCall:
    """Record one call. Cache hits and replays cost nothing; failed calls cost what the
    provider reported for them (usually nothing). ``cache_reason``: why the answer cache
    served this answer or not (llm.answer_cache.CacheLookup.reason)."""
    usage = usage or Usage(0, 0)
    cost = Decimal(0) if cache_hit else call_cost(usage, price_for(provider, model))
    own_transaction = not connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        # A ledger row must not cost the answer an fsync: this commit returns before
        # the WAL reaches disk. A crash can lose the last few milliseconds of rows,
        # never corrupt them; budgets (which must be exact) use their own writes. Only
        # when the row is its own transaction: SET LOCAL lasts until the outermost
        # commit, so inside a caller's transaction it would make the caller's writes
        # (a budget's, say) asynchronous too.
        if own_transaction:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
        call = _insert(
            context, provider, model, attempt, status, usage, cost, latency_ms, ttft_ms,
            error_class, cache_hit, fallback_used, cache_reason,
        )  # fmt: skip
    # Every ledger row is also a Prometheus sample (observability.metrics), in this process.
    llm_call_observe(
        provider=provider, model=model, status=status, attempt=attempt,
        input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, cost=cost,
        ttft_ms=ttft_ms, cache_hit=cache_hit, fallback_used=fallback_used,
    )  # fmt: skip
    return call


def _insert(
    context: CallContext,
    provider: str,
    model: str,
    attempt: int,
    status: str,
    usage: Usage,
    cost: Decimal,
    latency_ms: float,
    ttft_ms: float | None,
    error_class: str,
    cache_hit: bool,
    fallback_used: bool,
    cache_reason: str,
) -> LlmCall:
    return LlmCall.objects.create(
        request_id=context.request_id,
        idempotency_key=context.idempotency_key,
        account_id=context.account_id,
        user_id=context.user_id,
        route=context.route,
        feature=context.feature,
        provider=provider,
        model=model,
        attempt=attempt,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        tokens_estimated=usage.estimated,
        cost=cost,
        latency_ms=round(latency_ms),
        time_to_first_token_ms=None if ttft_ms is None else round(ttft_ms),
        status=status,
        error_class=error_class,
        cache_hit=cache_hit,
        cache_reason=cache_reason,
        fallback_used=fallback_used,
        flags=dict(context.flags),
    )
