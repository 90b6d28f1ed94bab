"""The gateway's tables: the usage ledger, the routes, the semantic answer cache.

Their tables keep the names chat's migrations gave them (``chat_llmcall``…): the models
moved to this app in its migration 0001 without a row moving.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from pgvector.django import VectorField

from kb.models import EMBEDDING_DIMENSION, Account


class LlmCall(models.Model):
    """One call to a model (chat or embeddings), including retries, fallbacks and cache hits.

    The cost of an answer is the sum of its calls' costs (same ``request_id``).
    """

    class Status(models.TextChoices):
        OK = "ok", "OK"
        ERROR = "error", "Error"
        INTERRUPTED = "interrupted", "Interrupted after output began"
        CANCELLED = "cancelled", "Cancelled by the client"
        SKIPPED = "skipped", "Skipped (circuit open)"

    request_id = models.CharField(max_length=64, db_index=True)
    idempotency_key = models.CharField(max_length=128, blank=True)
    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )  # fmt: skip
    route = models.CharField(max_length=50, blank=True)
    feature = models.CharField(max_length=50, help_text='What asked: "answer", "embedding"…')
    provider = models.CharField(max_length=50)
    model = models.CharField(max_length=200)
    attempt = models.PositiveSmallIntegerField(default=1)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cache_read_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    tokens_estimated = models.BooleanField(default=False)
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal(0))
    latency_ms = models.PositiveIntegerField(default=0)
    time_to_first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices)
    error_class = models.CharField(max_length=50, blank=True)
    cache_hit = models.BooleanField(default=False)
    cache_reason = models.CharField(
        max_length=60,
        blank=True,
        help_text='Why the semantic cache served this answer or not, e.g. "hit", '
        '"miss:negation", "miss:sources" (blank: no semantic lookup).',
    )
    fallback_used = models.BooleanField(default=False)
    # The feature-flag variants in force for the request ({flag key: variant}), so that a
    # staged rollout's cost and latency can be compared with the rest (flags app).
    flags = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "chat_llmcall"  # made by chat's migrations before the llm app existed
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["account", "created_at"], name="chat_llmcall_account")]

    def __str__(self) -> str:
        return f"{self.provider}:{self.model} {self.status} ({self.request_id})"


class LlmRoute(models.Model):
    """A named route (e.g. "simple", "complex"): an ordered chain of provider:model entries.

    Rows here override the routes configured by environment variables.
    """

    name = models.SlugField(max_length=50, unique=True)
    chain = models.TextField(
        help_text="Comma-separated provider:model entries, tried in order, e.g. "
        "anthropic:claude-haiku-4-5, openai:gpt-4o-mini, local:extractive"
    )
    max_tokens = models.PositiveIntegerField(default=800)
    temperature = models.FloatField(default=0.2)

    class Meta:
        db_table = "chat_llmroute"

    def __str__(self) -> str:
        return self.name


class SemanticCacheEntry(models.Model):
    """An answer that a near-identical question (cosine >= threshold) may reuse.

    ``scope_key`` names the knowledge bases *and their content versions*: when
    a knowledge base changes, its old entries simply stop matching.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    scope_key = models.CharField(max_length=300)
    route = models.CharField(max_length=50)
    embedding_model = models.CharField(max_length=200)
    question = models.TextField()
    embedding = VectorField(dimensions=EMBEDDING_DIMENSION)
    answer = models.TextField()
    provider = models.CharField(max_length=50)
    model = models.CharField(max_length=200)
    sources = models.JSONField(
        default=list, blank=True, help_text="Chunk ids behind the answer's [1], [2]…"
    )
    hits = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "chat_semanticcacheentry"
        indexes = [
            models.Index(fields=["account", "scope_key", "route"], name="chat_semcache_scope")
        ]

    def __str__(self) -> str:
        return self.question[:80]
