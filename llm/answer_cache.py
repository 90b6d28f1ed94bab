"""Exact and semantic answer caches, per account and knowledge-base content version.

Exact: the normalised prompt (system + conversation, which includes the
retrieved passages) and the route, in Django's cache (Redis in production).
Semantic: a stored question whose embedding is within CAIRN_SEMANTIC_CACHE_THRESHOLD
cosine similarity, in PostgreSQL, and only if it asks the same thing (see
semantic_match: the wording must agree, llm.question_agreement, and so must
retrieval). Both are keyed by the account and by the knowledge bases' content
versions, so one account never sees another's answer and any change to the
documents invalidates every answer drawn from them. Only first questions are
cached: a follow-up's meaning depends on the conversation.

Every lookup says why it hit or missed (CacheLookup.reason): the gateway writes it
on the ledger row of the answer's call and observability.metrics counts it, so a wrong hit
(or a cache that never hits) can be traced to its rule.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from kb.selectors.search import query_embedding
from llm.events import CompletionRequest
from llm.models import SemanticCacheEntry
from llm.question_agreement import AGREE, DISAGREEMENTS, questions_agree
from observability.metrics import semantic_cache_observe, semantic_cache_reasons_declare

# Nearest entries weighed per lookup: a near-duplicate that disagrees (the "cannot"
# twin of a question) must not hide one further down that agrees.
SEMANTIC_CANDIDATES = 5
# The cached question's best passages that the new question's retrieval must also find
# (see semantic_match).
RETRIEVAL_AGREEMENT = 3
_CITATION = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")
EXACT = "exact"
HIT = "hit"
# Why a semantic lookup did not serve: nothing stored in scope, nothing close enough,
# the closest close-enough entry asks something else (its first disagreement), or it
# asks the same but its answer came from passages this question's retrieval did not find.
MISS_EMPTY = "miss:empty"
MISS_BELOW_THRESHOLD = "miss:below_threshold"
MISS_SOURCES = "miss:sources"
# No semantic lookup: a "semantic_cache" flag turns it off for this asker (the exact
# cache still serves). On the ledger row like the other reasons; not a metrics label.
SEMANTIC_OFF = "off:flag"
SEMANTIC_REASONS: tuple[str, ...] = (
    HIT, MISS_EMPTY, MISS_BELOW_THRESHOLD, MISS_SOURCES, *(f"miss:{d}" for d in DISAGREEMENTS),
)  # fmt: skip
semantic_cache_reasons_declare(SEMANTIC_REASONS)

# A semantic lookup is one query and a hit one more statement, written by hand: the ORM
# spent more CPU building and reading the query than PostgreSQL spent answering it
# (2.2 ms against 0.3 ms per lookup). The scope index narrows the rows, the cosine
# distance (pgvector's <=>) orders them; the embedding column itself is never read.
_NEAREST_SQL = """
SELECT id, question, answer, provider, model, sources, embedding <=> %s::vector AS distance
FROM chat_semanticcacheentry
WHERE account_id = %s AND scope_key = %s AND route = %s AND embedding_model = %s
  AND expires_at > %s
ORDER BY distance
LIMIT %s
"""
# A hit's counter is worth no fsync: committed asynchronously (as the ledger's rows are),
# in the statement itself, so a hit costs one round trip and never waits for the disk.
# A crash may lose the last few increments, never corrupt them.
_HIT_SQL = "UPDATE chat_semanticcacheentry SET hits = hits + 1 WHERE id = %s"
_HIT_ASYNC_SQL = (
    "WITH commit_mode AS (SELECT set_config('synchronous_commit', 'off', true)) "
    "UPDATE chat_semanticcacheentry SET hits = hits + 1 FROM commit_mode WHERE id = %s"
)


@dataclass(frozen=True)
class CacheScope:
    account_id: int
    knowledge_base_versions: tuple[tuple[int, int], ...]  # (knowledge base id, content version)
    embedding_model: str

    @property
    def key(self) -> str:
        return ",".join(f"{kb}@{version}" for kb, version in sorted(self.knowledge_base_versions))


@dataclass(frozen=True)
class CachedAnswer:
    text: str
    provider: str
    model: str
    kind: str  # "exact" or "semantic"
    similarity: float = 1.0
    # Chunk ids behind the answer's [1], [2]… when it was stored: another wording's
    # retrieval may number passages differently, so citations follow these.
    sources: tuple[int, ...] = ()


@dataclass(frozen=True)
class StoredAnswer:
    """A semantic cache entry as a lookup reads it (SemanticCacheEntry's columns but the
    embedding)."""

    pk: int
    question: str
    answer: str
    provider: str
    model: str
    sources: tuple[int, ...]


@dataclass(frozen=True)
class CacheLookup:
    """A lookup's answer (None: generate one) and why: "exact", "hit", a SEMANTIC_REASONS
    miss, or "" when the request is not cacheable (a follow-up)."""

    answer: CachedAnswer | None
    reason: str


def normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def cacheable(request: CompletionRequest) -> bool:
    return len(request.messages) == 1 and request.messages[0].role == "user"


def _exact_key(scope: CacheScope, route: str, request: CompletionRequest) -> str:
    prompt = "\x1e".join(
        [normalise(request.system), *(f"{m.role}:{normalise(m.content)}" for m in request.messages)]
    )
    digest = hashlib.sha256(f"{scope.key}\x1f{route}\x1f{prompt}".encode()).hexdigest()
    return f"cairn:answer:{scope.account_id}:{digest}"


def answer_cache_lookup(
    *,
    scope: CacheScope,
    route: str,
    question: str,
    request: CompletionRequest,
    sources: tuple[int, ...] = (),
    semantic: bool = True,
) -> CacheLookup:
    """A cached answer for this question in this scope, exact first, then semantic
    (unless ``semantic`` is False: a feature flag keeps this asker out of it).

    ``sources`` are the chunk ids of this question's own top passages (the ones it
    would be answered from); a semantic hit needs the cached answer's sources among
    them. One SQL query fetches the SEMANTIC_CANDIDATES nearest entries in scope (the
    scope index narrows the rows, the cosine orders them); the nearest that clears the
    threshold and agrees is served.
    """
    if not cacheable(request):
        return CacheLookup(None, "")
    exact = cache.get(_exact_key(scope, route, request))
    if exact is not None:
        answer = CachedAnswer(
            exact["text"], exact["provider"], exact["model"], "exact",
            sources=tuple(exact.get("sources", ())),
        )  # fmt: skip
        return CacheLookup(answer, EXACT)
    if not semantic:
        return CacheLookup(None, SEMANTIC_OFF)
    embedding = query_embedding(scope.embedding_model, question)  # retrieval's, if it ran
    candidates = _nearest(scope, route, embedding)
    chosen, reason = _semantic_choice(candidates, question, sources)
    semantic_cache_observe(reason=reason)
    if chosen is None:
        return CacheLookup(None, reason)
    entry, similarity = chosen
    _hit_count(entry.pk)
    answer = CachedAnswer(
        entry.answer, entry.provider, entry.model, "semantic", similarity, sources=entry.sources
    )
    return CacheLookup(answer, HIT)


def _nearest(
    scope: CacheScope, route: str, embedding: Sequence[float]
) -> list[tuple[StoredAnswer, float]]:
    """The SEMANTIC_CANDIDATES live entries of this scope and route nearest to
    ``embedding``, nearest first, each with its cosine similarity."""
    vector = "[" + ",".join(map(repr, embedding)) + "]"
    params = (
        vector, scope.account_id, scope.key, route, scope.embedding_model, timezone.now(),
        SEMANTIC_CANDIDATES,
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(_NEAREST_SQL, params)
        rows = cursor.fetchall()
    return [
        (
            StoredAnswer(pk, question, answer, provider, model, tuple(_json(sources))),
            1.0 - float(distance),
        )
        for pk, question, answer, provider, model, sources, distance in rows
    ]


def _json(value: str | list[int]) -> list[int]:
    """A jsonb column as the raw cursor returns it (text under Django's psycopg set-up)."""
    return json.loads(value) if isinstance(value, str) else value


def _hit_count(pk: int) -> None:
    """One more hit on entry ``pk``. Inside a transaction (a test, a caller's atomic
    block) the plain statement, which commits with it: the asynchronous commit would
    apply to the whole transaction."""
    with connection.cursor() as cursor:
        cursor.execute(_HIT_SQL if connection.in_atomic_block else _HIT_ASYNC_SQL, [pk])


def _semantic_choice(
    candidates: Sequence[tuple[StoredAnswer, float]],
    question: str,
    sources: tuple[int, ...],
) -> tuple[tuple[StoredAnswer, float] | None, str]:
    """The nearest (entry, similarity) that may be served, or None and why not (the reason
    of the nearest close-enough candidate: the one a cosine-only cache would have served)."""
    if not candidates:
        return None, MISS_EMPTY
    threshold = settings.CAIRN_SEMANTIC_CACHE_THRESHOLD
    reason = MISS_BELOW_THRESHOLD
    for entry, similarity in candidates:  # nearest first
        if similarity < threshold:
            break
        verdict = semantic_match(
            cached_question=entry.question, cached_sources=entry.sources,
            cached_answer=entry.answer, question=question, sources=sources,
        )  # fmt: skip
        if verdict == HIT:
            return (entry, similarity), HIT
        if reason == MISS_BELOW_THRESHOLD:
            reason = verdict
    return None, reason


def semantic_match(
    *,
    cached_question: str,
    cached_answer: str,
    cached_sources: tuple[int, ...],
    question: str,
    sources: tuple[int, ...],
) -> str:
    """HIT if a cached answer (``cached_answer`` to ``cached_question``, written from the
    passages ``cached_sources``, best first) may answer ``question``, whose own top
    passages are ``sources``; else the miss reason. The cosine is the caller's business.

    Two independent witnesses must agree. The wording (question_agreement): the same
    negation, modality, comparison, units, numbers, names, question word, content words
    and word order. And retrieval, both ways: every passage the cached answer cites, and the
    cached question's RETRIEVAL_AGREEMENT best passages, must be among this question's
    passages (the answer rests on text this question would have been shown; an
    abstention is a statement about those best passages), and this question's best
    passage must be one the cached answer saw. A question whose retrieval leads
    elsewhere is about something else, however it is worded. Not all six passages:
    the tail of a retrieval moves with harmless wording (on the demo golden set, a
    greeting or a "thanks" changes the sixth passage of one question in three, the
    first three of one in a hundred). An entry stored without sources (a completion
    made outside the answer pipeline) has nothing to check.
    """
    agreement = questions_agree(cached_question, question)
    if agreement != AGREE:
        return f"miss:{agreement}"
    if not cached_sources:
        return HIT
    required = set(cached_sources[:RETRIEVAL_AGREEMENT]) | set(
        _cited(cached_answer, cached_sources)
    )
    if not sources or not required <= set(sources) or sources[0] not in cached_sources:
        return MISS_SOURCES
    return HIT


def _cited(answer: str, sources: tuple[int, ...]) -> list[int]:
    """The chunk ids behind the answer's [n] markers ([2], [1, 3], [1][2])."""
    numbers = (int(n) for group in _CITATION.findall(answer) for n in re.findall(r"\d+", group))
    return [sources[n - 1] for n in numbers if 1 <= n <= len(sources)]


def answer_cache_store(
    *,
    scope: CacheScope,
    route: str,
    question: str,
    request: CompletionRequest,
    text: str,
    provider: str,
    model: str,
    sources: tuple[int, ...] = (),
) -> None:
    if not cacheable(request) or not text.strip():
        return
    ttl = settings.CAIRN_ANSWER_CACHE_TTL
    cache.set(
        _exact_key(scope, route, request),
        {"text": text, "provider": provider, "model": model, "sources": list(sources)},
        timeout=ttl,
    )
    SemanticCacheEntry.objects.create(
        account_id=scope.account_id,
        scope_key=scope.key,
        route=route,
        embedding_model=scope.embedding_model,
        question=question,
        embedding=list(query_embedding(scope.embedding_model, question)),
        answer=text,
        provider=provider,
        model=model,
        sources=list(sources),
        expires_at=timezone.now() + timedelta(seconds=ttl),
    )
