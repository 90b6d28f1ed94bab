"""Tenants, knowledge bases, documents and their chunks.

Every row that holds customer content carries its ``account`` so that each
query can filter by tenant in SQL; chunks also carry their knowledge base, so
retrieval filters without joins.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import PurePosixPath

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import OpClass
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models.functions import Cast
from pgvector.django import HalfVectorField, HnswIndex, VectorField

EMBEDDING_DIMENSION = 384  # all-MiniLM-L6-v2; the column type is fixed by migration
DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class Account(models.Model):
    """A tenant: a company using Cairn. Nothing is ever shared between accounts."""

    class InjectionAction(models.TextChoices):
        BLOCK = "block", "Refuse the question"
        FLAG = "flag", "Answer, and flag the question for review"
        ALLOW = "allow", "Do not check"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    injection_action = models.CharField(
        max_length=5, choices=InjectionAction.choices, default=InjectionAction.FLAG,
        help_text="What happens to a question the prompt-injection detector flags.",
    )  # fmt: skip
    redact_pii = models.BooleanField(
        default=True,
        help_text="Replace e-mail addresses, phone, card and account numbers, SSNs and IP "
        "addresses with placeholders before text goes to a third-party provider; the "
        "answer shown to the asker has them restored.",
    )
    local_providers_only = models.BooleanField(
        default=False,
        help_text="No consent to third-party providers: answers come only from local ones "
        "(the extractive answerer, and an OpenAI-compatible server marked local).",
    )
    daily_cost_alert = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text="Dollars: when a day's spend on language models passes this, the account's "
        "admins get one mail that day. Empty: the server's CAIRN_DAILY_COST_ALERT (if set).",
    )  # fmt: skip
    # The local day (CAIRN_BUDGET_TIMEZONE) of the last cost alert: claimed with a
    # conditional update, so the alert goes out once a day across workers and restarts.
    daily_cost_alerted_on = models.DateField(
        "last daily cost alert", null=True, blank=True, editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's role in an account: admins manage it, staff use it."""

    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        STAFF = "staff", "Staff"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.STAFF)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "account"], name="kb_membership_unique_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.account} ({self.role})"


def default_embedding_model() -> str:
    return str(getattr(settings, "CAIRN_EMBEDDING_MODEL", DEFAULT_EMBEDDING_MODEL))


class KnowledgeBase(models.Model):
    """A searchable collection of documents within one account."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="knowledge_bases")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80)
    description = models.TextField(blank=True)
    embedding_model = models.CharField(max_length=200, default=default_embedding_model)
    embedding_dimension = models.PositiveSmallIntegerField(default=EMBEDDING_DIMENSION)
    # Set while chunks are re-embedded with another model into Chunk.embedding_next;
    # searches keep using embedding_model until the switch (kb.services.reembedding).
    reembedding_model = models.CharField(max_length=200, blank=True)
    reembedding_started_at = models.DateTimeField(null=True, blank=True)
    # Bumped whenever searchable content changes; answer caches key on it.
    content_version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["account", "slug"], name="kb_knowledgebase_unique_slug")
        ]

    def __str__(self) -> str:
        return self.name


def document_upload_to(instance: Document, filename: str) -> str:
    """A generated storage name: user-supplied names never reach the filesystem."""
    suffix = PurePosixPath(filename).suffix.lower()
    if not suffix[1:].isalnum() or len(suffix) > 6:
        suffix = ""
    return f"documents/{instance.account_id}/{uuid.uuid4().hex}{suffix}"


class Document(models.Model):
    """An uploaded file and its ingestion state."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="documents")
    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, related_name="documents"
    )
    title = models.CharField(max_length=300)
    # Where it came from (upload file name, or the path given to `manage.py ingest`):
    # a changed file from the same source becomes a new version of this document.
    source = models.CharField(max_length=500)
    original_filename = models.CharField(max_length=255)
    file = models.FileField(upload_to=document_upload_to, max_length=500)
    content_hash = models.CharField(max_length=64, help_text="SHA-256 of the file's bytes.")
    mime_type = models.CharField(max_length=100)
    size_bytes = models.PositiveBigIntegerField(default=0)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True, help_text="Why ingestion failed, in plain words.")
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_embedded = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    version = models.PositiveIntegerField(default=1)
    # The parsed text of the live version: chunk spans point into it.
    parsed_text = models.TextField(blank=True)
    # The version search serves (its chunks and parsed_text); None until one is ready.
    # Behind ``version`` while a newer upload is pending, processing or failed.
    live_version = models.PositiveIntegerField(null=True, blank=True)
    # The live version's file while a newer upload is not ready, so that a failed new
    # version loses nothing; deleted once a newer version is ready (or with the document).
    previous_file = models.FileField(upload_to=document_upload_to, max_length=500, blank=True)
    previous_filename = models.CharField(max_length=255, blank=True)
    previous_mime_type = models.CharField(max_length=100, blank=True)
    page_count = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    ingested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # The same bytes are stored once per knowledge base (idempotent uploads).
            models.UniqueConstraint(
                fields=["knowledge_base", "content_hash"], name="kb_document_unique_content"
            ),
            models.UniqueConstraint(
                fields=["knowledge_base", "source"], name="kb_document_unique_source"
            ),
        ]
        indexes = [
            models.Index(fields=["account", "knowledge_base"], name="kb_document_tenant"),
            models.Index(fields=["status", "updated_at"], name="kb_document_status"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def serves_previous_version(self) -> bool:
        """A newer upload is pending, processing or failed while an older version serves."""
        return self.live_version is not None and self.live_version != self.version

    @property
    def status_summary(self) -> str:
        """The status in one line: "Ready", "version 2 failed: …; serving version 1"…"""
        return self.status_line()

    def status_line(self, *, error_chars: int | None = None) -> str:
        """``status_summary`` with the reason cut to ``error_chars`` (the rest stays whole)."""
        error = self.error
        if error_chars is not None and len(error) > error_chars:
            error = f"{error[:error_chars]}…"
        if not self.serves_previous_version:
            if self.status == self.Status.FAILED and error:
                return f"{self.get_status_display()}: {error}"
            return str(self.get_status_display())
        if self.status == self.Status.FAILED:
            state = f"failed: {error or 'no reason recorded'}"
        elif self.status == self.Status.PROCESSING:
            state = "is being processed"
        else:
            state = "is waiting to be processed"
        return f"version {self.version} {state}; serving version {self.live_version}"

    @property
    def progress(self) -> float:
        """Share of chunks embedded, 0.0–1.0 (1.0 once ready)."""
        if self.status == self.Status.READY:
            return 1.0
        if not self.chunks_total:
            return 0.0
        return min(self.chunks_embedded / self.chunks_total, 1.0)


class Chunk(models.Model):
    """A passage of a document version: the unit of retrieval and citation."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    # Denormalised from the document so retrieval filters by tenant without joins.
    # The composite (account, knowledge_base) index serves both; no single-column ones.
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+", db_index=False)
    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    document_version = models.PositiveIntegerField()
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    heading_path = models.CharField(
        max_length=1000, blank=True, help_text='Section path, e.g. "Billing > Refunds".'
    )
    char_start = models.PositiveIntegerField(help_text="Offset in the parsed document text.")
    char_end = models.PositiveIntegerField()
    page = models.PositiveIntegerField(null=True, blank=True)
    token_count = models.PositiveIntegerField()
    embedding = VectorField(dimensions=EMBEDDING_DIMENSION)
    # Filled while the knowledge base is re-embedded with another model; swapped
    # into ``embedding`` in one transaction when every chunk has it.
    embedding_next = VectorField(dimensions=EMBEDDING_DIMENSION, null=True, blank=True)
    # Set at ingestion by kb.guard.passages: what in this passage looks aimed at an
    # assistant (instructions, hidden text, exfiltration links). Flagged passages are
    # listed for admins and marked as untrusted data in prompts.
    safety_flags = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    injection_score = models.FloatField(null=True, blank=True)
    # What the keyword index holds for this chunk (kb.search.keyword): its distinct terms,
    # sorted, with their counts, and the tokenisation that made them ("" = not indexed).
    # Database triggers (migration 0011) keep the shared postings and statistics equal
    # to these columns in the same transaction, whoever writes or deletes the row.
    keyword_terms = ArrayField(models.TextField(), default=list, blank=True)
    keyword_tfs = ArrayField(models.PositiveIntegerField(), default=list, blank=True)
    keyword_scheme = models.CharField(max_length=40, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["document_id", "ordinal"]
        constraints = [
            models.UniqueConstraint(
                fields=["document", "document_version", "ordinal"], name="kb_chunk_unique_ordinal"
            ),
            models.CheckConstraint(
                condition=models.Q(char_end__gte=models.F("char_start")),
                name="kb_chunk_span_ordered",
            ),
        ]
        indexes = [
            models.Index(fields=["account", "knowledge_base"], name="kb_chunk_tenant"),
            # On the embedding cast to halfvec: 60 % of the size, the same recall; m=24,
            # ef_construction=100 for recall under the tenant filter (benchmarks/halfvec.py,
            # migration 0012 says the figures). Built concurrently by non-atomic migrations
            # (0002, then 0012); kb.selectors.chunks orders by this very expression.
            HnswIndex(
                OpClass(
                    Cast("embedding", HalfVectorField(dimensions=EMBEDDING_DIMENSION)),
                    name="halfvec_cosine_ops",
                ),
                name="kb_chunk_embedding_hnsw",
                m=24,
                ef_construction=100,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.document} #{self.ordinal}"


class TextEmbedding(models.Model):
    """The embedding of a short text of a knowledge base — a quotable unit of its chunks
    (kb.units), or a sentence the citation check judged — so searches and answers in any
    process read it instead of embedding it again (kb.embeddings.texts).

    One row per knowledge base, model and text: deleting the knowledge base (or its
    account) deletes them. ``digest`` is the SHA-256 of the UTF-8 text; ``vector`` the
    embedder's float32 values, byte for byte (numpy's ``tobytes``), so a vector read back
    is exactly the one computed and no dimension is fixed.
    """

    # The unique constraint's index serves lookups; the database's own foreign key, not
    # deferred and ON DELETE CASCADE, is created by migration 0010 (it says why).
    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, related_name="+", db_index=False,
        db_constraint=False,
    )  # fmt: skip
    model_id = models.CharField(max_length=200)
    digest = models.BinaryField(max_length=32)
    vector = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["knowledge_base", "model_id", "digest"], name="kb_textembedding_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.model_id} {bytes(self.digest).hex()[:12]}"


class FlaggedPassage(Chunk):
    """A chunk the ingestion scan flagged (kb.guard.passages): the admins' review list."""

    class Meta:
        proxy = True
        verbose_name = "flagged passage"


class ApiKey(models.Model):
    """A key for the REST and OpenAI-compatible APIs, acting for one account.

    The key is ``cairn_<prefix>_<secret>``: the prefix is stored in clear (to find the
    row and to show people which key is which), the whole key only as a SHA-256
    digest. Keys are 256-bit random, so a fast hash is enough: there is nothing to
    brute-force the way a password can be.
    """

    class Scope(models.TextChoices):
        READ = "read", "Read (search, documents, conversations)"
        ANSWER = "answer", "Ask questions"
        INGEST = "ingest", "Upload and manage documents"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, help_text="What or who uses this key.")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.CharField(
        max_length=100, help_text="Comma-separated: read, answer, ingest.", default="read,answer"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["account", "name"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} (cairn_{self.prefix}_…)"

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(s.strip() for s in self.scopes.split(",") if s.strip())

    def status_at(self, moment: datetime) -> str:
        """ "revoked", "expired" or "active" at ``moment``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= moment:
            return "expired"
        return "active"


class AuditEvent(models.Model):
    """Who did what to which object, when and from where; written by ``kb.services.audit``.

    Rows outlive what they describe: every link is SET_NULL, and the actor and the
    target are also copied as text when the row is written, so a deleted document,
    user, key or account still shows in its history. ``detail`` holds names and
    counts (which fields changed, which bulk action, how many rows), never field
    values, which may be secrets or customer content.

    Retention: audit events are not conversations, so the conversation retention
    policy does not purge them; they are kept until an operator deletes them.
    """

    class Action(models.TextChoices):
        ADMIN_ADD = "admin.add", "Admin: added"
        ADMIN_CHANGE = "admin.change", "Admin: changed"
        ADMIN_DELETE = "admin.delete", "Admin: deleted"
        ADMIN_BULK_ACTION = "admin.bulk_action", "Admin: bulk action"
        DOCUMENT_VIEW = "document.view", "Document viewed"
        DOCUMENT_READ_API = "document.read_api", "Document read over the API"
        LOGIN_SUCCEEDED = "login.succeeded", "Signed in"
        LOGIN_FAILED = "login.failed", "Sign-in failed"
        APIKEY_CREATED = "apikey.created", "API key created"
        APIKEY_REVOKED = "apikey.revoked", "API key revoked"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Null for events of no account (sign-ins, shared settings) and once the account is
    # deleted; such rows are shown to superusers only.
    # The (account, at) index below serves lookups by account too; no single-column one.
    account = models.ForeignKey(
        Account, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        db_index=False,
    )  # fmt: skip
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )  # fmt: skip
    # The user name, "api key <prefix>", the name tried at a failed sign-in, or empty
    # for Cairn itself (a management command, a worker).
    actor_label = models.CharField(max_length=150, blank=True)
    api_key = models.ForeignKey(
        ApiKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    action = models.CharField(max_length=40, choices=Action.choices)
    target_type = models.CharField(max_length=100, blank=True, help_text='e.g. "kb.document"')
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=200, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["account", "at"], name="kb_auditevent_account_at"),
            # "Everything that happened to this document", also after it is deleted.
            models.Index(fields=["target_type", "target_id"], name="kb_auditevent_target"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()}: {self.target_repr or self.target_type}"


# --- The shared keyword index (kb.search.keyword) ------------------------------------
# Written only by the database triggers of migration 0011, read only by
# kb.search.keyword. The Django foreign keys are declarations without constraints
# (DO_NOTHING): the database's own, ON DELETE CASCADE, are made by the migration, and
# postings carry plain ids so that writing millions of them checks no constraint.


class KeywordStats(models.Model):
    """Per knowledge base: indexed chunks and their total length in terms (BM25's N and
    avgdl); ``version`` moves with every change (it keys the per-process mean-idf cache)."""

    knowledge_base = models.OneToOneField(
        KnowledgeBase, on_delete=models.DO_NOTHING, primary_key=True, related_name="+",
        db_constraint=False,
    )  # fmt: skip
    chunks = models.BigIntegerField(default=0)
    total_length = models.BigIntegerField(default=0)
    version = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.knowledge_base_id}: {self.chunks} chunks"


class KeywordTerm(models.Model):
    """A term of a knowledge base's vocabulary and its document frequency."""

    id = models.AutoField(primary_key=True)
    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.DO_NOTHING, related_name="+", db_index=False,
        db_constraint=False,
    )  # fmt: skip
    term = models.TextField()
    df = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["knowledge_base", "term"], name="kb_keywordterm_unique")
        ]

    def __str__(self) -> str:
        return f"{self.term} ({self.df})"


class KeywordPosting(models.Model):
    """One term in one chunk: its count, and the chunk's length (so scoring reads no
    chunk). The primary key's index covers tf and doc_len (INCLUDE, made by the
    migration): a query's postings are read from the index alone."""

    pk = models.CompositePrimaryKey("term_id", "chunk_id")
    term_id = models.IntegerField()
    chunk_id = models.BigIntegerField()
    tf = models.IntegerField()
    doc_len = models.IntegerField()

    def __str__(self) -> str:
        return f"term {self.term_id} in chunk {self.chunk_id}"
