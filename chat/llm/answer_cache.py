"""Exact and semantic answer caches, per account and knowledge-base content version.

Exact: the normalised prompt (system + conversation, which includes the
retrieved passages) and the route, in Django's cache (Redis in production).
Semantic: a stored question whose embedding is within CAIRN_SEMANTIC_CACHE_THRESHOLD
cosine similarity, in PostgreSQL. Both are keyed by the account and by the
knowledge bases' content versions, so one account never sees another's answer
and any change to the documents invalidates every answer drawn from them.
Only first questions are cached: a follow-up's meaning depends on the conversation.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import F
from django.utils import timezone
from pgvector.django import CosineDistance

from chat.llm.events import CompletionRequest
from chat.models import SemanticCacheEntry
from kb.selectors.search import query_embedding


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
    *, scope: CacheScope, route: str, question: str, request: CompletionRequest
) -> CachedAnswer | None:
    """A cached answer for this question in this scope, exact first, then semantic."""
    if not cacheable(request):
        return None
    exact = cache.get(_exact_key(scope, route, request))
    if exact is not None:
        return CachedAnswer(
            exact["text"], exact["provider"], exact["model"], "exact",
            sources=tuple(exact.get("sources", ())),
        )  # fmt: skip
    embedding = query_embedding(scope.embedding_model, question)
    entry = (
        SemanticCacheEntry.objects.filter(
            account_id=scope.account_id,
            scope_key=scope.key,
            route=route,
            embedding_model=scope.embedding_model,
            expires_at__gt=timezone.now(),
        )
        .annotate(distance=CosineDistance("embedding", list(embedding)))
        .order_by("distance")
        .first()
    )
    if entry is None:
        return None
    similarity = 1.0 - float(entry.distance)
    if similarity < settings.CAIRN_SEMANTIC_CACHE_THRESHOLD:
        return None
    SemanticCacheEntry.objects.filter(pk=entry.pk).update(hits=F("hits") + 1)
    return CachedAnswer(
        entry.answer, entry.provider, entry.model, "semantic", similarity,
        sources=tuple(entry.sources),
    )  # fmt: skip


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
