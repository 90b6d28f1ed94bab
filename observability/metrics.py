"""Prometheus metrics: the instruments, the collectors read at scrape time, /metrics.

Two kinds of series:

* counted where things happen, in the process they happen in: request latency
  (``observability.request_metrics``), LLM and embedding calls, tokens, cost, time to first
  token, retries and fallbacks (``llm.ledger``: every row of the usage ledger
  passes through ``llm_call_observe``), answer-cache hits and misses
  (``chat.answering.pipeline``), semantic-cache lookups by reason
  (``llm.answer_cache``);
* read when Prometheus scrapes: documents by status, the ingestion queue (documents
  and, on Redis, Celery messages) and the circuit breakers. They come from the
  database, the broker and the cache, so whichever process serves the scrape reports
  the same values, and nothing has to be kept in memory.

Several processes: prometheus_client chooses how to keep values when it is imported,
from ``PROMETHEUS_MULTIPROC_DIR``. Set (a directory shared by the web and worker
processes, emptied before they start), every process writes its counters to files
there and /metrics adds them up. Unset, each process counts on its own and /metrics
shows the counters of the one process that serves it.
"""

from __future__ import annotations

import hmac
import logging
import os
from decimal import Decimal

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    multiprocess,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

# Read from the environment, not from settings: prometheus_client made its choice from
# the same variable when it was imported, possibly before Django's settings were.
MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")

# Routes: none of Cairn's pages answers faster than 5 ms, and a JSON answer may take
# the whole CAIRN_LLM_REQUEST_TIMEOUT (30 s) and then some.
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# First tokens: local models in tens of milliseconds, remote ones in seconds, and the
# first-token timeout (CAIRN_LLM_FIRST_TOKEN_TIMEOUT, 8 s) bounds a healthy call.
_FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30)

# The counting registry: what a process counts itself. Never served as it is in
# multi-process mode (each process would show only its own share).
_LIVE = CollectorRegistry()

HTTP_REQUEST_DURATION = Histogram(
    "cairn_http_request_duration_seconds",
    "Time to respond to a request, by URL route (streamed responses: to the first byte).",
    ["route", "method", "status"],
    buckets=_REQUEST_BUCKETS,
    registry=_LIVE,
)
LLM_CALLS = Counter(
    "cairn_llm_calls",
    "Calls to language and embedding models (every attempt; cache hits excluded), by status.",
    ["provider", "model", "status"],
    registry=_LIVE,
)
LLM_TIME_TO_FIRST_TOKEN = Histogram(
    "cairn_llm_time_to_first_token_seconds",
    "Time from sending a call to a provider to its first token.",
    ["provider", "model"],
    buckets=_FIRST_TOKEN_BUCKETS,
    registry=_LIVE,
)
LLM_TOKENS = Counter(
    "cairn_llm_tokens",
    "Tokens sent to (input) and produced by (output) models, as the usage ledger counts them.",
    ["provider", "model", "type"],
    registry=_LIVE,
)
LLM_COST = Counter(
    "cairn_llm_cost_dollars",
    "What model calls cost, in dollars, priced from CAIRN_LLM_PRICES.",
    ["provider", "model"],
    registry=_LIVE,
)
LLM_RETRIES = Counter(
    "cairn_llm_retries",
    "Calls that were a retry of a failed call to the same provider and model.",
    ["provider", "model"],
    registry=_LIVE,
)
LLM_FALLBACKS = Counter(
    "cairn_llm_fallbacks",
    "Times the gateway fell back to this chain entry after the ones before it failed "
    "(provider static: every entry failed, users got the fallback message).",
    ["provider", "model"],
    registry=_LIVE,
)
ANSWER_CACHE_HITS = Counter(
    "cairn_answer_cache_hits",
    "Answers served from the answer cache, by kind (exact or semantic).",
    ["kind"],
    registry=_LIVE,
)
ANSWER_CACHE_MISSES = Counter(
    "cairn_answer_cache_misses",
    "Answer-cache lookups that found nothing (the answer was generated).",
    registry=_LIVE,
)
SEMANTIC_CACHE_LOOKUPS = Counter(
    "cairn_semantic_cache_lookups",
    "Semantic answer-cache lookups by outcome: hit, or why not (miss:below_threshold, "
    "miss:negation, miss:sources, …; llm.answer_cache.SEMANTIC_REASONS).",
    ["reason"],
    registry=_LIVE,
)
for _kind in ("exact", "semantic"):  # present at 0 from the start, so rate() sees them
    ANSWER_CACHE_HITS.labels(kind=_kind)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def http_request_observe(*, route: str, method: str, status_code: int, seconds: float) -> None:
    """One request served. ``route`` must be a URL pattern, never a raw path: each
    distinct label value is a series of its own, forever."""
    HTTP_REQUEST_DURATION.labels(
        route=route,
        method=method if method in _METHODS else "other",
        status=f"{status_code // 100}xx",
    ).observe(seconds)


def llm_call_observe(
    *,
    provider: str,
    model: str,
    status: str,
    attempt: int,
    input_tokens: int,
    output_tokens: int,
    cost: Decimal,
    ttft_ms: float | None,
    cache_hit: bool,
    fallback_used: bool,
) -> None:
    """Count one usage-ledger row (``llm.ledger.llm_call_record`` calls this).

    Cache hits and idempotent replays reached no provider, so they are left out here;
    the answer pipeline counts cache hits by kind (the ledger cannot tell them apart).
    A retry is any attempt after the first; a fallback is the first attempt at a
    later chain entry. Calls the breaker skipped are neither.
    """
    if cache_hit:
        return
    LLM_CALLS.labels(provider, model, status).inc()
    LLM_TOKENS.labels(provider, model, "input").inc(input_tokens)
    LLM_TOKENS.labels(provider, model, "output").inc(output_tokens)
    LLM_COST.labels(provider, model).inc(float(cost))
    if ttft_ms is not None:
        LLM_TIME_TO_FIRST_TOKEN.labels(provider, model).observe(ttft_ms / 1000)
    if status == "skipped":
        return
    if attempt > 1:
        LLM_RETRIES.labels(provider, model).inc()
    elif fallback_used:
        LLM_FALLBACKS.labels(provider, model).inc()


def answer_cache_observe(*, kind: str) -> None:
    """One answer-cache lookup: ``kind`` is "exact" or "semantic" for a hit, "" for a miss."""
    if kind:
        ANSWER_CACHE_HITS.labels(kind=kind).inc()
    else:
        ANSWER_CACHE_MISSES.inc()


_SEMANTIC_REASONS: set[str] = set()


def semantic_cache_reasons_declare(reasons: tuple[str, ...]) -> None:
    """The outcomes a semantic lookup can have (llm.answer_cache declares them when
    imported): each series exists at 0 from the start, and no other value makes one."""
    _SEMANTIC_REASONS.update(reasons)
    for reason in reasons:
        SEMANTIC_CACHE_LOOKUPS.labels(reason=reason)


def semantic_cache_observe(*, reason: str) -> None:
    """One semantic lookup and its outcome; an undeclared reason counts as "other"
    rather than growing a new series."""
    SEMANTIC_CACHE_LOOKUPS.labels(reason=reason if reason in _SEMANTIC_REASONS else "other").inc()


# --- read at scrape time ----------------------------------------------------------
# Gauges read from the database or the broker when /metrics is scraped. Each app that
# owns such a figure registers its collector from its AppConfig.ready() (kb: documents,
# chat: breakers, ops: the Celery queue), so this module imports no app.

_SCRAPE_TIME: list[Collector] = []


def scrape_time_collector_register(collector: Collector) -> None:
    """Show ``collector`` on /metrics from now on (once, however often an app is readied)."""
    if any(type(known) is type(collector) for known in _SCRAPE_TIME):
        return
    _SCRAPE_TIME.append(collector)
    _LIVE.register(collector)


if not MULTIPROCESS_DIR:
    # The serving process's own CPU, memory and garbage collection; meaningless summed
    # over processes, so left out in multi-process mode.
    ProcessCollector(registry=_LIVE)
    PlatformCollector(registry=_LIVE)
    GCCollector(registry=_LIVE)


def scrape_registry(*, multiprocess_dir: str = "") -> CollectorRegistry:
    """What /metrics shows: this process's registry, or with ``multiprocess_dir`` the
    counters of every process that wrote there, plus the scrape-time collectors."""
    if not multiprocess_dir:
        return _LIVE
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)
    for collector in _SCRAPE_TIME:
        registry.register(collector)
    return registry


# --- the view ---------------------------------------------------------------------


def _bearer_token(request: HttpRequest) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _refusal(request: HttpRequest) -> HttpResponse | None:
    """None when the request may read the metrics, else the 401 or 403 to send.

    A bearer token decides alone (compared in constant time; with CAIRN_METRICS_TOKEN
    unset no token is right). Without one, a signed-in staff user may look; anyone
    else signed in gets 403, and anonymous requests 401.
    """
    token = _bearer_token(request)
    if token is None:
        user = request.user
        if user.is_authenticated:
            if user.is_staff and user.is_active:
                return None
            return HttpResponse("Metrics are for staff.", status=403, content_type="text/plain")
    else:
        expected = settings.CAIRN_METRICS_TOKEN
        if expected and hmac.compare_digest(token.encode(), expected.encode()):
            return None
    response = HttpResponse(
        "Metrics need a bearer token (CAIRN_METRICS_TOKEN) or a staff login.",
        status=401,
        content_type="text/plain",
    )
    response["WWW-Authenticate"] = 'Bearer realm="cairn-metrics"'
    return response


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The exposition, for a bearer token or a staff session: OpenMetrics when the
    scraper asks for it (Prometheus does), else the classic text format."""
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    registry = scrape_registry(multiprocess_dir=MULTIPROCESS_DIR)
    return HttpResponse(encode(registry), content_type=content_type)
