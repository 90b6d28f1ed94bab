"""Cairn settings: one module, driven by the environment.

Two modes, chosen by DATABASE_URL:

* embedded (no DATABASE_URL): an embedded PostgreSQL with pgvector under
  CAIRN_HOME, a broker that needs no server, local-memory cache; made for
  ``make run`` on one machine.
* production (DATABASE_URL set): the given PostgreSQL, Redis (REDIS_URL) as
  broker, cache and rate-limit store, and a strong SECRET_KEY is mandatory.

Every variable is read through ``config.env`` so that docs/configuration.md (generated) and
compose.yaml can be checked against what is actually read.
"""

from __future__ import annotations

import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import environ

from config.env import (
    ConfigurationError,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_path,
    env_secret,
    env_str,
)
from config.secret_key import load_or_create_secret_key, require_strong_secret_key
from embedded.postgres import DATABASE_NAME, DATABASE_USER, SOCKET_PORT, EmbeddedPostgres
from observability.logging import LOG_FORMATS, log_format_resolve, logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

CAIRN_HOME = env_path(
    "CAIRN_HOME",
    BASE_DIR / ".cairn",
    shown=".cairn/",
    help="Data folder of the embedded mode: database, broker queue, uploads, secret key, "
    "admin password.",
)
DATABASE_URL = env_str(
    "DATABASE_URL",
    "",
    help="PostgreSQL with the vector extension, e.g. postgres://user:pw@host:5432/cairn. "
    "Unset: the embedded PostgreSQL under CAIRN_HOME (embedded mode).",
)
CAIRN_EMBEDDED = not DATABASE_URL
CAIRN_MODE = "embedded" if CAIRN_EMBEDDED else "production"

# --- Core ------------------------------------------------------------------

_secret_key = env_secret(
    "SECRET_KEY",
    "",
    help="Django's signing key. Embedded mode: generated once into CAIRN_HOME/secret_key. "
    "Production: required, at least 50 random characters.",
)
if CAIRN_EMBEDDED and not _secret_key:
    SECRET_KEY = load_or_create_secret_key(CAIRN_HOME / "secret_key")
else:
    SECRET_KEY = require_strong_secret_key(_secret_key)

DEBUG = env_bool("CAIRN_DEBUG", False, help="Django debug mode. Never in production.")
ALLOWED_HOSTS = env_list(
    "CAIRN_ALLOWED_HOSTS",
    ["localhost", "127.0.0.1", "[::1]"],
    help="Comma-separated host names the site answers to.",
)
CSRF_TRUSTED_ORIGINS = env_list(
    "CAIRN_CSRF_TRUSTED_ORIGINS",
    [],
    help="Comma-separated origins (scheme://host, e.g. https://kb.example.com) allowed to "
    "POST, when behind a proxy.",
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "template_partials",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "observability",
    "kb",
    "flags",
    "ingest",
    "llm",
    "chat",
    "tickets",
    "ops",
]

MIDDLEWARE = [
    # First: every response, redirects and static files included, carries its request id.
    "observability.request_id.RequestIdMiddleware",
    # Before anything reads a body: a chunked one gets the Content-Length parsers rely on.
    "web.chunked_requests.chunked_request_length_middleware",
    "django.middleware.security.SecurityMiddleware",
    "web.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # After WhiteNoise: static files are not timed; every routed request is.
    "observability.request_metrics.RequestMetricsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # A view's wait for a pooled database connection that timed out: 503, not a 500.
    "web.api_errors.DatabaseBusyMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------

_conn_max_age = env_int(
    "CAIRN_DB_CONN_MAX_AGE",
    0,
    help="Seconds a database connection is kept open (0: one per request, the safe ASGI "
    "choice). Must be 0 while the connection pool is on (CAIRN_DB_POOL_MAX_SIZE).",
)
_connect_timeout = env_int(
    "CAIRN_DB_CONNECT_TIMEOUT", 5, help="Seconds to wait for a database connection."
)
# One pool per process (Django's psycopg pool): every thread of the process (request
# threads, answer threads, the liveness stamp) borrows from it and gives back on close,
# so a web process never holds more than this many PostgreSQL connections, however many
# requests it serves at once; the excess waits. Size it so that
#   web processes x CAIRN_DB_POOL_MAX_SIZE + worker processes + beat + headroom
# stays under PostgreSQL's max_connections (100 by default, the embedded one included):
# compose's 4 web processes x 20 + 2 worker processes + beat leave 17 for migrations,
# shells and monitoring (docs/scaling.md). Celery's prefork workers close the pool after
# each task, so a worker process holds one connection at most.
DB_POOL_MAX_SIZE = env_int(
    "CAIRN_DB_POOL_MAX_SIZE",
    20,
    help="Most PostgreSQL connections one process opens (its connection pool); requests "
    "past it wait for a free one (0: no pool, a connection per request and thread, uncapped). "
    "Keep web processes x this + worker processes + 10 under max_connections.",
)
DB_POOL_TIMEOUT = env_float(
    "CAIRN_DB_POOL_TIMEOUT",
    30.0,
    help="Seconds a request waits for a free pooled connection before it is answered "
    "503 database_busy.",
)
if DB_POOL_MAX_SIZE < 0 or DB_POOL_TIMEOUT <= 0:
    raise ConfigurationError(
        "CAIRN_DB_POOL_MAX_SIZE must be 0 (no pool) or more, and CAIRN_DB_POOL_TIMEOUT above 0."
    )
if DB_POOL_MAX_SIZE and _conn_max_age:
    raise ConfigurationError(
        f"CAIRN_DB_CONN_MAX_AGE={_conn_max_age} keeps connections, which the connection pool "
        "does not allow: set it to 0, or CAIRN_DB_POOL_MAX_SIZE=0 to turn the pool off."
    )


def _database_options(options: dict[str, Any]) -> dict[str, Any]:
    options = {**options, "connect_timeout": _connect_timeout}
    if DB_POOL_MAX_SIZE:
        options["pool"] = {
            # Connections are opened when needed, not at start: a worker or a management
            # command that never queries opens none.
            "min_size": 0,
            "max_size": DB_POOL_MAX_SIZE,
            "timeout": DB_POOL_TIMEOUT,
        }
    return options


def _database_settings() -> dict[str, Any]:
    if CAIRN_EMBEDDED:
        embedded = EmbeddedPostgres(pgdata=CAIRN_HOME / "pgdata")
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": DATABASE_NAME,
            "USER": DATABASE_USER,
            "HOST": str(embedded.socket_dir()),
            "PORT": SOCKET_PORT,
            "CONN_MAX_AGE": _conn_max_age,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": _database_options({}),
        }
    try:
        config = environ.Env.db_url_config(DATABASE_URL)
    except Exception as exc:  # django-environ raises several types for bad URLs
        raise ConfigurationError(f"DATABASE_URL cannot be parsed ({exc}).") from exc
    if config.get("ENGINE") != "django.db.backends.postgresql":
        raise ConfigurationError(
            "DATABASE_URL must point to PostgreSQL (postgres://user:password@host:5432/name)."
        )
    # A Unix socket directory can be given URL-encoded: postgres://user@%2Frun%2Fpostgresql/db
    config["HOST"] = unquote(str(config.get("HOST") or ""))
    config.update(
        {
            "CONN_MAX_AGE": _conn_max_age,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": _database_options(config.get("OPTIONS", {})),
        }
    )
    return dict(config)


DATABASES = {"default": _database_settings()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, broker ---------------------------------------------------------

REDIS_URL = env_str(
    "REDIS_URL",
    "",
    help="Redis for the broker, cache, rate-limit counters and breaker state. "
    "Unset: a filesystem broker and a per-process memory cache (single machine only).",
)

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "cairn",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = (
    env_str(
        "CELERY_BROKER_URL",
        "",
        help="Celery broker (redis:// or amqp://). Unset: REDIS_URL, else the filesystem broker "
        "under CAIRN_HOME/broker.",
    )
    or REDIS_URL
    # The filesystem transport needs no host, but kombu warns "No hostname was supplied"
    # on every connection without one; localhost is what it falls back to anyway.
    or "filesystem://localhost/"
)
CELERY_BROKER_FOLDER = CAIRN_HOME / "broker"
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_FOLDER / "queue"),
        "data_folder_out": str(CELERY_BROKER_FOLDER / "queue"),
        "processed_folder": str(CELERY_BROKER_FOLDER / "processed"),
        # The exchange -> queue bindings (celery.exchange); kombu's default is a
        # "control" folder in the working directory.
        "control_folder": str(CELERY_BROKER_FOLDER / "control"),
        "store_processed": False,
        # The filesystem transport polls; its default (1 s) idles a worker for up to a
        # second after every task. A directory listing every 50 ms costs next to nothing.
        "polling_interval": 0.05,
    }
    # kombu's filesystem transport fails on a missing folder rather than creating it.
    for _folder in ("queue", "processed", "control"):
        (CELERY_BROKER_FOLDER / _folder).mkdir(parents=True, exist_ok=True)
CELERY_TASK_DEFAULT_QUEUE = env_str(
    "CAIRN_TASK_QUEUE",
    "celery",
    help="Queue name for Cairn's tasks (lets several Cairn instances share one broker).",
)
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int(
    "CAIRN_TASK_TIME_LIMIT",
    900,
    help="Hard time limit of one background task, in seconds (the soft limit is 60 s less, "
    "at least 30 s).",
)
CELERY_TASK_SOFT_TIME_LIMIT = max(CELERY_TASK_TIME_LIMIT - 60, 30)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The filesystem transport has no broadcast channel, so remote control is off there.
CELERY_WORKER_ENABLE_REMOTE_CONTROL = not CELERY_BROKER_URL.startswith("filesystem://")
CELERY_BEAT_SCHEDULE_FILENAME = str(CAIRN_HOME / "celerybeat-schedule")
# Workers log through LOGGING (JSON, PII filter, request ids), not Celery's own handlers.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = "UTC"

# --- Files -----------------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = env_path(
    "CAIRN_STATIC_ROOT",
    CAIRN_HOME / "static",
    shown=".cairn/static/",
    help="Where collectstatic puts files (production images).",
)
STATICFILES_DIRS = [BASE_DIR / "static"]
# Embedded mode serves static files straight from the source folders, so no
# collectstatic step is needed; production serves the hashed, compressed copies.
WHITENOISE_USE_FINDERS = CAIRN_EMBEDDED
if CAIRN_EMBEDDED:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise expects it to exist
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if CAIRN_EMBEDDED
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
MEDIA_ROOT = env_path(
    "CAIRN_MEDIA_ROOT",
    CAIRN_HOME / "media",
    shown=".cairn/media/",
    help="Where uploaded documents are stored (under generated names; never served directly).",
)
MEDIA_URL = "/media/"

CAIRN_MAX_UPLOAD_MB = env_int(
    "CAIRN_MAX_UPLOAD_MB", 50, help="Largest document accepted for upload, in megabytes."
)
CAIRN_MAX_UPLOAD_FILES = env_int(
    "CAIRN_MAX_UPLOAD_FILES", 20, help="Most files accepted in one upload request."
)
# Django's own ceiling answers with a bare 400 page; keep it well above ours so that
# people who select too many files get the form's message naming the limit.
DATA_UPLOAD_MAX_NUMBER_FILES = max(CAIRN_MAX_UPLOAD_FILES * 5, 100)

CAIRN_LOAD_DEMO = env_bool(
    "CAIRN_LOAD_DEMO",
    CAIRN_EMBEDDED,
    help="Load the demo knowledge base on `manage.py serve` (`make run`).",
)
CAIRN_HOST = env_str(
    "CAIRN_HOST", "127.0.0.1", help="Address `manage.py serve` (`make run`) listens on."
)
CAIRN_PORT = env_int("CAIRN_PORT", 8000, help="Port `manage.py serve` (`make run`) listens on.")
CAIRN_WORKER_CONCURRENCY = env_int(
    "CAIRN_WORKER_CONCURRENCY",
    2,
    help="Worker processes `manage.py serve` starts for ingestion (each gets cores / processes "
    "embedding threads unless CAIRN_EMBEDDING_THREADS is set).",
)

# --- Ingestion and embeddings ----------------------------------------------

CAIRN_EMBEDDING_MODEL = env_str(
    "CAIRN_EMBEDDING_MODEL",
    "sentence-transformers/all-MiniLM-L6-v2",
    help="Embedding model of new knowledge bases: the bundled "
    "sentence-transformers/all-MiniLM-L6-v2 (CPU, no network), or openai:<model> (e.g. "
    "openai:text-embedding-3-small, shortened to 384 dimensions).",
)
CAIRN_EMBEDDING_BATCH_SIZE = env_int(
    "CAIRN_EMBEDDING_BATCH_SIZE", 64, help="Texts embedded per batch (and per progress update)."
)
CAIRN_EMBEDDING_THREADS = env_int(
    "CAIRN_EMBEDDING_THREADS",
    0,
    help="CPU threads the bundled model uses per process (0: PyTorch's default, all cores). "
    "With several worker processes, cores / processes avoids oversubscription.",
)
CAIRN_EMBEDDING_TIMEOUT = env_float(
    "CAIRN_EMBEDDING_TIMEOUT", 30.0, help="Seconds one embeddings API call may take."
)
OPENAI_API_KEY = env_secret(
    "OPENAI_API_KEY",
    "",
    help="OpenAI API key: embeddings (openai: models) and the openai provider in routes.",
)
CAIRN_OPENAI_BASE_URL = env_str(
    "CAIRN_OPENAI_BASE_URL",
    "",
    help="Base URL of an OpenAI-compatible server (Ollama, vLLM, llama.cpp...), e.g. "
    "http://localhost:11434/v1; unset: api.openai.com.",
)
CAIRN_CHUNK_MAX_TOKENS = env_int(
    "CAIRN_CHUNK_MAX_TOKENS",
    250,
    help="Largest chunk, in the embedding model's own tokens. MiniLM reads at most 256 word "
    "pieces (two are special), so bigger chunks would lose their tail.",
)
CAIRN_CHUNK_OVERLAP_TOKENS = env_int(
    "CAIRN_CHUNK_OVERLAP_TOKENS",
    40,
    help="Whole sentences, up to this many tokens, repeated when a section continues in the "
    "next chunk.",
)
CAIRN_INGEST_MAX_ATTEMPTS = env_int(
    "CAIRN_INGEST_MAX_ATTEMPTS",
    3,
    help="Attempts at one document (crashes and transient errors) before it is marked failed.",
)
CAIRN_INGEST_STALE_SECONDS = env_int(
    "CAIRN_INGEST_STALE_SECONDS",
    600,
    help="A document processing (or pending) without progress for this long is requeued by "
    "the reaper.",
)
CAIRN_REAPER_INTERVAL_SECONDS = env_int(
    "CAIRN_REAPER_INTERVAL_SECONDS",
    60,
    help="How often the reaper (Celery beat) looks for stuck documents.",
)
CAIRN_MAX_PDF_PAGES = env_int(
    "CAIRN_MAX_PDF_PAGES",
    2000,
    help="Most pages read from one PDF; more fails the document with the count and the limit.",
)
CAIRN_MAX_DOCUMENT_CHARS = env_int(
    "CAIRN_MAX_DOCUMENT_CHARS", 5_000_000, help="Most characters of text taken from one document."
)

# --- Retrieval -----------------------------------------------------------------

CAIRN_HNSW_EF_SEARCH = env_int(
    "CAIRN_HNSW_EF_SEARCH",
    200,
    help="HNSW candidate list size per vector search (recall against speed; pgvector's "
    "hnsw.ef_search).",
)
CAIRN_SEARCH_CANDIDATES = env_int(
    "CAIRN_SEARCH_CANDIDATES", 50, help="Candidates each channel contributes to fusion."
)
CAIRN_RRF_K = env_int("CAIRN_RRF_K", 60, help="Reciprocal rank fusion constant k.")
CAIRN_SEARCH_RERANK = env_bool(
    "CAIRN_SEARCH_RERANK",
    True,
    help="Rerank the top of hybrid results sentence by sentence with the fitted reranker "
    "(kb/search/rerank.py); false: fusion's order.",
)
CAIRN_RERANK_POOL = env_int(
    "CAIRN_RERANK_POOL", 20, help="Fused hits the reranker re-scores (the rest keep their order)."
)
CAIRN_SEARCH_MIN_SIMILARITY = env_float(
    "CAIRN_SEARCH_MIN_SIMILARITY",
    0.25,
    help="Relevance floor: below this best cosine similarity, a search reports that "
    "nothing relevant was found.",
)
CAIRN_BM25_K1 = env_float("CAIRN_BM25_K1", 1.5, help="BM25 term-frequency saturation k1.")
CAIRN_BM25_B = env_float("CAIRN_BM25_B", 0.75, help="BM25 length normalisation b.")
CAIRN_BM25_STOP_WORDS = env_str(
    "CAIRN_BM25_STOP_WORDS",
    "english",
    help="Stop words dropped from documents and queries alike: english or none.",
)

# --- Retention -------------------------------------------------------------------

CAIRN_RETENTION_DAYS = env_int(
    "CAIRN_RETENTION_DAYS",
    30,
    help="Days the text of questions, answers, cited passages and feedback comments is kept "
    "(usage figures are kept for good); 0 keeps it forever.",
)
if CAIRN_RETENTION_DAYS < 0:
    raise ConfigurationError(
        f"CAIRN_RETENTION_DAYS={CAIRN_RETENTION_DAYS} is negative; use 0 to keep everything."
    )
CAIRN_RETENTION_INTERVAL_SECONDS = env_int(
    "CAIRN_RETENTION_INTERVAL_SECONDS",
    3600,
    help="How often the retention purge runs (Celery beat).",
)

# --- Answer recovery ---------------------------------------------------------------

CAIRN_ANSWER_STALE_SECONDS = env_int(
    "CAIRN_ANSWER_STALE_SECONDS",
    30,
    help="An answer waiting or being written whose process has shown no sign of life for "
    "this long (a web process killed mid-stream) is failed by the reaper, its budget hold "
    "settled from the ledger; it can then be regenerated. A live process stamps its answers "
    "every min(5 s, a quarter of this), tokens or not.",
)
if CAIRN_ANSWER_STALE_SECONDS < 1:
    raise ConfigurationError(
        f"CAIRN_ANSWER_STALE_SECONDS={CAIRN_ANSWER_STALE_SECONDS}: it must be at least 1."
    )
CAIRN_ANSWER_REAPER_INTERVAL_SECONDS = env_int(
    "CAIRN_ANSWER_REAPER_INTERVAL_SECONDS",
    30,
    help="How often the answer reaper (Celery beat) looks for abandoned answers; an answer is "
    "failed within CAIRN_ANSWER_STALE_SECONDS plus this after its process died.",
)

CAIRN_TICKET_STALE_SECONDS = env_int(
    "CAIRN_TICKET_STALE_SECONDS",
    300,
    help="A ticket still unclassified, or whose drafted reply is still pending, this many "
    "seconds after it was opened has its task queued again (its message was lost).",
)
CAIRN_TICKET_SWEEP_INTERVAL_SECONDS = env_int(
    "CAIRN_TICKET_SWEEP_INTERVAL_SECONDS",
    120,
    help="How often Celery beat looks for tickets whose triage or draft was lost.",
)

CELERY_BEAT_SCHEDULE = {
    "reap-stuck-documents": {
        "task": "ingest.tasks.documents_reap_task",
        "schedule": float(CAIRN_REAPER_INTERVAL_SECONDS),
    },
    "reap-abandoned-answers": {
        "task": "chat.tasks.answers_reap_task",
        "schedule": float(CAIRN_ANSWER_REAPER_INTERVAL_SECONDS),
    },
    "purge-expired-conversations": {
        "task": "chat.tasks.retention_purge_task",
        "schedule": float(CAIRN_RETENTION_INTERVAL_SECONDS),
    },
    "requeue-lost-ticket-work": {
        "task": "tickets.tasks.tickets_requeue_task",
        "schedule": float(CAIRN_TICKET_SWEEP_INTERVAL_SECONDS),
    },
}

# --- LLM gateway ---------------------------------------------------------------


def _route(name: str, chain: str, max_tokens: int, temperature: float) -> dict[str, Any]:
    upper = name.upper()
    return {
        "chain": env_str(
            f"CAIRN_ROUTE_{upper}",
            chain,
            help=f"The {name} route: comma-separated provider:model entries tried in order.",
        ),
        "max_tokens": env_int(
            f"CAIRN_ROUTE_{upper}_MAX_TOKENS", max_tokens, help=f"Answer length cap, {name} route."
        ),
        "temperature": env_float(
            f"CAIRN_ROUTE_{upper}_TEMPERATURE", temperature, help=f"Temperature, {name} route."
        ),
    }


CAIRN_ROUTES = {
    "simple": _route("simple", "local:extractive", 600, 0.1),
    "complex": _route("complex", "local:extractive", 1200, 0.2),
}
CAIRN_COMPLEX_MIN_WORDS = env_int(
    "CAIRN_COMPLEX_MIN_WORDS", 40, help="Questions longer than this go to the complex route."
)
CAIRN_TICKET_CLASSIFY_ROUTE = env_str(
    "CAIRN_TICKET_CLASSIFY_ROUTE",
    "simple",
    help="The route that classifies new tickets (category, urgency, sentiment as JSON). A "
    "chain of only local:extractive entries means the local classifier alone.",
)
ANTHROPIC_API_KEY = env_secret(
    "ANTHROPIC_API_KEY",
    "",
    help="Anthropic API key: enables the anthropic provider in routes.",
)
CAIRN_OPENAI_COMPATIBLE_BASE_URL = env_str(
    "CAIRN_OPENAI_COMPATIBLE_BASE_URL",
    "",
    help="Base URL of an OpenAI-compatible chat server (Ollama, vLLM, llama.cpp), e.g. "
    "http://localhost:11434/v1: the provider named openai_compatible in routes.",
)
CAIRN_OPENAI_COMPATIBLE_API_KEY = env_secret(
    "CAIRN_OPENAI_COMPATIBLE_API_KEY", "", help="API key of that server, if it wants one."
)
CAIRN_OPENAI_COMPATIBLE_LOCAL = env_bool(
    "CAIRN_OPENAI_COMPATIBLE_LOCAL",
    False,
    help="The OpenAI-compatible server is the operator's own (on premises): prompts sent "
    "to it are not PII-redacted and local-only accounts may use it.",
)
CAIRN_ANTHROPIC_BASE_URL = env_str(
    "CAIRN_ANTHROPIC_BASE_URL", "", help="Base URL of the Anthropic API (unset: Anthropic's)."
)
CAIRN_LLM_REQUEST_TIMEOUT = env_float(
    "CAIRN_LLM_REQUEST_TIMEOUT",
    30.0,
    help="Seconds for a whole answer, all attempts and fallbacks included.",
)
CAIRN_LLM_CALL_TIMEOUT = env_float(
    "CAIRN_LLM_CALL_TIMEOUT", 10.0, help="Seconds for one call to the first provider of a chain."
)
CAIRN_LLM_FALLBACK_CALL_TIMEOUT = env_float(
    "CAIRN_LLM_FALLBACK_CALL_TIMEOUT", 5.0, help="Seconds for one call to a fallback provider."
)
CAIRN_LLM_FIRST_TOKEN_TIMEOUT = env_float(
    "CAIRN_LLM_FIRST_TOKEN_TIMEOUT",
    8.0,
    help="Seconds to wait for a call's first token (a retryable failure).",
)
CAIRN_LLM_CONNECT_TIMEOUT = env_float(
    "CAIRN_LLM_CONNECT_TIMEOUT", 3.0, help="Seconds to connect to a provider."
)
CAIRN_LLM_RETRIES = env_int(
    "CAIRN_LLM_RETRIES", 2, help="Retries per chain entry for retryable failures (429, 5xx…)."
)
CAIRN_LLM_BACKOFF_BASE = env_float(
    "CAIRN_LLM_BACKOFF_BASE", 0.5, help="Backoff base in seconds (doubles per retry, full jitter)."
)
CAIRN_LLM_BACKOFF_CAP = env_float(
    "CAIRN_LLM_BACKOFF_CAP", 8.0, help="Longest wait between retries (also caps Retry-After)."
)
CAIRN_BREAKER_THRESHOLD = env_int(
    "CAIRN_BREAKER_THRESHOLD",
    5,
    help="Consecutive failures that open a provider's circuit breaker.",
)
CAIRN_BREAKER_COOLDOWN = env_float(
    "CAIRN_BREAKER_COOLDOWN", 30.0, help="Seconds a breaker stays open before one probe call."
)
CAIRN_LLM_PRICES = env_str(
    "CAIRN_LLM_PRICES",
    "",
    help='Price table, JSON: {"provider:model": {"input": 3.0, "output": 15.0, '
    '"cache_read": 0.3, "cache_write": 3.75}} in dollars per million tokens; cache_read and '
    "cache_write default to the input price. Unlisted models cost 0.",
)
CAIRN_LLM_FALLBACK_MESSAGE = env_str(
    "CAIRN_LLM_FALLBACK_MESSAGE",
    "Sorry, no answer can be generated right now: every language model is unavailable. "
    "Please try again in a few minutes.",
    help="What users see when every provider of a route failed.",
)
CAIRN_ANSWER_CACHE_TTL = env_int(
    "CAIRN_ANSWER_CACHE_TTL", 3600, help="Seconds an answer stays in the exact and semantic caches."
)
CAIRN_SEMANTIC_CACHE_THRESHOLD = env_float(
    "CAIRN_SEMANTIC_CACHE_THRESHOLD",
    0.95,
    help="Cosine similarity from which another question's cached answer is reused.",
)
CAIRN_FLAGS_CACHE_SECONDS = env_int(
    "CAIRN_FLAGS_CACHE_SECONDS",
    10,
    help="Seconds an account's feature flags stay cached in a process before they are read "
    "again. A save in the admin is seen at once by processes sharing the cache (Redis); "
    "with the embedded per-process cache, other processes see it within this time.",
)
CAIRN_IDEMPOTENCY_TTL = env_int(
    "CAIRN_IDEMPOTENCY_TTL",
    86400,
    help="Seconds a completed answer is replayed for a repeated Idempotency-Key.",
)

# --- Answers and the chat ------------------------------------------------------

CAIRN_LOGIN_RATE_LIMIT = env_str(
    "CAIRN_LOGIN_RATE_LIMIT",
    "10/m",
    help="Sign-in attempts from one client address for one user name, on the site's and the "
    "admin's sign-in pages together (sliding window; rate syntax 10/m, 100/5m, 50/h); "
    "more get 429 with Retry-After.",
)
CAIRN_LOGIN_IP_RATE_LIMIT = env_str(
    "CAIRN_LOGIN_IP_RATE_LIMIT",
    "30/m",
    help="Sign-in attempts from one client address, whatever the user names (empty: no limit).",
)
CAIRN_LOGIN_USER_RATE_LIMIT = env_str(
    "CAIRN_LOGIN_USER_RATE_LIMIT",
    "30/m",
    help="Sign-in attempts for one user name from every address together; keep it above "
    "CAIRN_LOGIN_RATE_LIMIT so that one address cannot lock an account out (empty: no limit).",
)

CAIRN_MAX_QUESTION_CHARS = env_int(
    "CAIRN_MAX_QUESTION_CHARS",
    4000,
    help="Longest question accepted, in characters (longer ones get a message saying so).",
)
CAIRN_MAX_QUESTION_TOKENS = env_int(
    "CAIRN_MAX_QUESTION_TOKENS",
    1000,
    help="Longest question accepted, in the embedding model's tokens.",
)
CAIRN_INJECTION_THRESHOLD = env_float(
    "CAIRN_INJECTION_THRESHOLD",
    0.5,
    help="Score (0-1) from which the prompt-injection detector flags a question; what then "
    "happens is the account's injection action (admin): block refuses it, flag (the "
    "default) answers and marks it for review, allow skips the check.",
)
CAIRN_PII_PHONE_REGIONS = env_list(
    "CAIRN_PII_PHONE_REGIONS",
    ["US", "GB", "DE", "FR", "CH"],
    help="Countries (ISO 3166 codes, comma-separated) whose national phone formats the PII "
    "redactor recognises, e.g. 020 7946 0958 for GB: a number without + must be a valid "
    "number of one of them. Numbers written with + and a country code are found whatever "
    "the list; codes phonenumbers does not know are ignored (guard_eval pii prints the list).",
)
CAIRN_ANSWER_PASSAGES = env_int(
    "CAIRN_ANSWER_PASSAGES", 6, help="Most retrieved passages given to the answerer."
)
CAIRN_CONTEXT_MAX_TOKENS = env_int(
    "CAIRN_CONTEXT_MAX_TOKENS",
    3000,
    help="Token budget of the passages in a prompt (passages past it are left out).",
)
CAIRN_HISTORY_TURNS = env_int(
    "CAIRN_HISTORY_TURNS",
    3,
    help="Earlier question-and-answer turns sent verbatim (those that fit "
    "CAIRN_HISTORY_MAX_TOKENS); older ones are summarised a line each.",
)
CAIRN_HISTORY_SUMMARY_TURNS = env_int(
    "CAIRN_HISTORY_SUMMARY_TURNS",
    10,
    help="Older turns summarised in a line each (within CAIRN_HISTORY_MAX_TOKENS); turns "
    "before them are left out of the prompt.",
)
CAIRN_HISTORY_MAX_TOKENS = env_int(
    "CAIRN_HISTORY_MAX_TOKENS",
    1500,
    help="Token budget of the conversation history in a prompt, verbatim turns and summary "
    "together, so a long conversation costs no more than a short one; the newest turns are "
    "kept, a turn too long to fit is only summarised. Counted in the budget reservation.",
)
CAIRN_API_MAX_MESSAGES = env_int(
    "CAIRN_API_MAX_MESSAGES",
    100,
    help="Most messages one /v1/chat/completions request may send; more is refused with "
    "400 too_many_messages.",
)
CAIRN_API_MAX_HISTORY_TOKENS = env_int(
    "CAIRN_API_MAX_HISTORY_TOKENS",
    12000,
    help="Most tokens of earlier user and assistant messages one /v1/chat/completions request "
    "may send (more than 8 characters per token is refused uncounted); more is refused with "
    "400 history_too_long.",
)
CAIRN_CITATION_MIN_SUPPORT = env_float(
    "CAIRN_CITATION_MIN_SUPPORT",
    0.45,
    help="Support score (mean of lexical and embedding overlap, 0-1) a cited passage must "
    "reach for its citation to stand.",
)
CAIRN_ANSWER_MIN_SUPPORTED_SHARE = env_float(
    "CAIRN_ANSWER_MIN_SUPPORTED_SHARE",
    0.5,
    help="Share of an answer's sentences (those that state something) that a citation must "
    "support; below it the answer is replaced by the abstention and the closest sources.",
)
CAIRN_EXTRACTIVE_MIN_CONFIDENCE = env_float(
    "CAIRN_EXTRACTIVE_MIN_CONFIDENCE",
    0.0,
    help="The extractive answerer abstains when its confidence (0-1: the fitted probability "
    "that the passages answer the question) is below this; 0: the threshold fitted with "
    "the weights (chat/answering/abstention_weights.json).",
)
CAIRN_EXTRACTIVE_MIN_RELEVANCE = env_float(
    "CAIRN_EXTRACTIVE_MIN_RELEVANCE",
    0.35,
    help="With the fitted abstention model, the extractive answerer also abstains when its "
    "best sentence's relevance (0-1: the blend of similarity and word coverage of "
    "chat/answering/extractive.py answer_confidence) is below this: questions about "
    "something the documents never mention. The default declines 2% of the answerable "
    "questions of the six SQuAD 2.0 articles the weights were fitted on (docs/evaluation.md). "
    "0: the model alone decides.",
)
CAIRN_EXTRACTIVE_MAX_SENTENCES = env_int(
    "CAIRN_EXTRACTIVE_MAX_SENTENCES", 3, help="Most sentences in an extractive answer."
)
CAIRN_EXTRACTIVE_TOKEN_DELAY_MS = env_int(
    "CAIRN_EXTRACTIVE_TOKEN_DELAY_MS",
    12,
    help="Pause between the words the extractive answerer streams (0: all at once).",
)
CAIRN_ANSWER_THREADS = env_int(
    "CAIRN_ANSWER_THREADS",
    16,
    help="Answers generated at once per web process; more wait their turn (the SSE "
    "connections themselves hold no thread).",
)
CAIRN_SSE_HEARTBEAT_SECONDS = env_float(
    "CAIRN_SSE_HEARTBEAT_SECONDS",
    15.0,
    help="Seconds between heartbeat comments on a chat answer stream while nothing else is "
    "sent (an answer is being prepared).",
)
CAIRN_CHAT_RATE_LIMIT = env_str(
    "CAIRN_CHAT_RATE_LIMIT",
    "20/m",
    help="Questions one user may ask, in the chat and with the browser's session over the "
    "API, e.g. 20/m, 300/h or 100/5m (sliding window).",
)
CAIRN_API_KEY_RATE_LIMIT = env_str(
    "CAIRN_API_KEY_RATE_LIMIT",
    "60/m",
    help="Questions one API key may ask, e.g. 60/m (empty: no limit).",
)
CAIRN_IP_RATE_LIMIT = env_str(
    "CAIRN_IP_RATE_LIMIT",
    "100/m",
    help="Questions one client address may ask, all users and keys together (empty: no limit).",
)
CAIRN_TRUSTED_PROXIES = env_int(
    "CAIRN_TRUSTED_PROXIES",
    0,
    help="Reverse proxies in front of Cairn that append to X-Forwarded-For; the client "
    "address is the entry this many places from the right (0: the connection's address, "
    "REMOTE_ADDR, the header ignored).",
)

# --- Budgets -----------------------------------------------------------------

CAIRN_BUDGET_TIMEZONE = env_str(
    "CAIRN_BUDGET_TIMEZONE",
    "UTC",
    help="Time zone in which budget days and months start (an IANA name, e.g. Europe/Berlin).",
)
_daily_cost_alert = env_str(
    "CAIRN_DAILY_COST_ALERT",
    "",
    help="Dollars an account may spend on models in one day (from midnight in "
    "CAIRN_BUDGET_TIMEZONE) before its admins get one mail that day; an account's own "
    "daily cost alert (admin) wins. Empty: no alert.",
)
CAIRN_DAILY_COST_ALERT: Decimal | None = None
if _daily_cost_alert.strip():
    try:
        CAIRN_DAILY_COST_ALERT = Decimal(_daily_cost_alert)
    except InvalidOperation:
        pass
    if CAIRN_DAILY_COST_ALERT is None or not (
        CAIRN_DAILY_COST_ALERT.is_finite() and CAIRN_DAILY_COST_ALERT > 0
    ):
        raise ConfigurationError(
            f"CAIRN_DAILY_COST_ALERT={_daily_cost_alert!r} is not an amount above 0; use e.g. "
            "25 or 7.50 (empty: no alert)."
        )

# --- Mail (budget alerts) -------------------------------------------------------

_email_host = env_str(
    "CAIRN_EMAIL_HOST",
    "",
    help="SMTP server for budget and cost alerts to account admins. Unset: mails are "
    "written to the log.",
)
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if _email_host
    else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_HOST = _email_host or "localhost"
EMAIL_PORT = env_int("CAIRN_EMAIL_PORT", 587, help="SMTP port.")
EMAIL_HOST_USER = env_str("CAIRN_EMAIL_USER", "", help="SMTP user name.")
EMAIL_HOST_PASSWORD = env_secret("CAIRN_EMAIL_PASSWORD", "", help="SMTP password.")
EMAIL_USE_TLS = env_bool("CAIRN_EMAIL_TLS", True, help="Use STARTTLS with the SMTP server.")
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env_str(
    "CAIRN_EMAIL_FROM", "cairn@localhost", help="Sender address of Cairn's mails."
)

# --- Observability: metrics and traces -------------------------------------------

CAIRN_METRICS_TOKEN = env_secret(
    "CAIRN_METRICS_TOKEN",
    "",
    help="Bearer token Prometheus sends to read /metrics (compared in constant time). "
    "Unset: only signed-in staff users can read it.",
)
PROMETHEUS_MULTIPROC_DIR = env_str(
    "PROMETHEUS_MULTIPROC_DIR",
    "",
    help="Folder shared by the web and worker processes of a machine, emptied before they "
    "start: each writes its metrics there and /metrics adds them up. Unset: each process "
    "counts on its own and /metrics shows the serving process's counters (prometheus_client's "
    "multiprocess mode).",
)
if PROMETHEUS_MULTIPROC_DIR:
    # prometheus_client writes there from the first metric on and fails on a missing folder.
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
CAIRN_OTEL_ENABLED = env_bool(
    "CAIRN_OTEL_ENABLED",
    False,
    help="Send OpenTelemetry traces over OTLP/HTTP, configured by the standard OTEL_* "
    "variables (OTEL_EXPORTER_OTLP_ENDPOINT, default http://localhost:4318).",
)

# --- Auth, i18n, security ----------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Messages live in the session, not a cookie: a new API key is shown through one.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
_https = env_bool(
    "CAIRN_HTTPS",
    not CAIRN_EMBEDDED,
    help="Served over HTTPS (behind a TLS proxy setting X-Forwarded-Proto): secure cookies, "
    "HSTS, redirect to https.",
)
if _https:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    # /metrics too: a scraper's bearer token would already have crossed in clear text
    # before any redirect, and in-cluster scrapes reach the app without the TLS proxy.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SECURE_HSTS_SECONDS = 60 * 60 * 24 * 365
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool(
        "CAIRN_HSTS_PRELOAD",
        True,
        help="Ask browsers to preload HSTS for the domain (HTTPS mode; a lasting commitment: "
        "set false if the domain may ever serve plain HTTP).",
    )

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "kb.api.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "kb.api.auth.HasScope",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "web.api_parsers.JSONParser",  # DRF's, refusing too-deep nesting with a 400
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "EXCEPTION_HANDLER": "web.api_errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "web.api_schema.ApiAutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Cairn API",
    "DESCRIPTION": "Grounded, cited answers from your knowledge bases; documents and search.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Swagger UI's files come from the drf-spectacular-sidecar wheel, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "DocumentStatusEnum": "kb.models.Document.Status",
        "MessageStatusEnum": "chat.models.Message.Status",
        "MessageRoleEnum": "chat.models.Message.Role",
        "FeedbackRatingEnum": "chat.models.Feedback.Rating",
        "TicketStatusEnum": "tickets.models.Ticket.Status",
        "TicketOriginEnum": "tickets.models.Ticket.Origin",
        "TicketUrgencyEnum": "tickets.models.Urgency",
        "TicketSentimentEnum": "tickets.models.Sentiment",
        "TicketEventKindEnum": "tickets.models.TicketEvent.Kind",
    },
}

# --- Logging -------------------------------------------------------------------

CAIRN_LOG_FORMAT = env_str(
    "CAIRN_LOG_FORMAT",
    "auto",
    help="json: one JSON object per line (ts, level, logger, message, request_id, extra "
    "fields); plain: one line of text per record (time, level, logger, message), for "
    "reading at a terminal; auto: plain when the logs go to a terminal in embedded mode "
    "(`make run`), json otherwise (a file, a pipe, a container, production).",
)
if CAIRN_LOG_FORMAT not in LOG_FORMATS:
    raise ConfigurationError(f"CAIRN_LOG_FORMAT={CAIRN_LOG_FORMAT!r} is not auto, json or plain.")
# PII never reaches the logs, and every line carries its request id (observability/logging.py).
# The handler writes to stderr, so that is the stream auto looks at.
LOGGING = logging_config(
    log_format=log_format_resolve(
        CAIRN_LOG_FORMAT, production=not CAIRN_EMBEDDED, stream=sys.stderr
    ),
    level=env_str("CAIRN_LOG_LEVEL", "INFO", help="Log level (DEBUG, INFO, WARNING)."),
)
