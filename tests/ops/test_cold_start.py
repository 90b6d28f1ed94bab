"""The web process warms up when the server starts, and /readyz waits for it.

The warm-up (ops/warmup.py) loads what the first question would: the embedding model,
the injection detector, each knowledge base's keyword index, the passages' units and
terms, the URL resolver's reverse tables, and one rehearsed answer through the real
pipeline that writes nothing. It starts on the ASGI lifespan start-up, which `manage.py
serve` sends and the tests' live servers do not.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

import pytest
from django.conf import settings
from django.urls import URLResolver, clear_url_caches, get_resolver

from chat.answering.abstention import abstention_model
from chat.models import BudgetReservation, Citation, Conversation, Message
from ingest.services.pipeline import document_ingest
from kb.embeddings.local import MINILM_MODEL_ID
from kb.embeddings.registry import get_embedder, reset_embedders
from kb.models import Chunk
from kb.units import text_terms
from llm.models import LlmCall, LlmRoute, SemanticCacheEntry
from llm.providers.registry import reset_providers
from ops import warmup
from ops.warmup import WarmUpState, answer_rehearse, warm_up
from tests.factories import upload
from tests.support.processes import REPO_ROOT, free_port, manage_env
from tests.support.worker import _database_url

pytestmark = pytest.mark.django_db

FAQ = b"# FAQ\n\nRefunds take five days."
BILLING = (
    b"# Billing\n\nRefunds are paid back to the original card within five business days. "
    b"Invoices are emailed on the first day of each month.\n"
)
QUESTION_TABLES = (LlmCall, Conversation, Message, Citation, SemanticCacheEntry, BudgetReservation)


def _rows() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in QUESTION_TABLES}


def _resolvers() -> list[Any]:  # their reverse tables are private attributes
    found: list[Any] = []
    pending = [get_resolver()]
    while pending:
        resolver = pending.pop()
        found.append(resolver)
        pending.extend(p for p in resolver.url_patterns if isinstance(p, URLResolver))
    return found


def _forget_reverse_tables() -> None:
    """A fresh process's resolvers: the included ones outlive clear_url_caches()."""
    clear_url_caches()
    for resolver in _resolvers():
        resolver._reverse_dict.clear()
        resolver._namespace_dict.clear()
        resolver._app_dict.clear()
        resolver._populated = False


@pytest.fixture
def warm_up_state_restored():
    before = warmup.warm_up_state()
    yield
    warmup._set(before)


def test_readyz_is_503_while_the_warm_up_runs_and_200_after(client, warm_up_state_restored):
    warmup._set(WarmUpState("warming", "loading the embedding model and search indexes"))

    warming = client.get("/readyz")

    assert warming.status_code == 503
    assert warming.json()["checks"]["warm_up"]["ok"] is False

    warmup._set(WarmUpState("ready", "1 knowledge bases warmed", 2.0))
    assert client.get("/readyz").status_code == 200


def test_a_warming_process_is_not_logged_as_an_error_on_every_poll(
    client, warm_up_state_restored, caplog
):
    warmup._set(WarmUpState("warming", "loading the embedding model and search indexes"))
    caplog.set_level("WARNING", logger="django.request")

    assert client.get("/readyz").status_code == 503

    assert not [r for r in caplog.records if r.name == "django.request"]


def test_a_failed_warm_up_leaves_the_process_ready(client, warm_up_state_restored):
    warmup._set(WarmUpState("failed", "OSError; loads on first use"))

    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"]["warm_up"]["detail"].startswith("failed")


def test_without_a_lifespan_start_up_there_is_no_warm_up(client) -> None:
    # What the test suite's live servers and every management command see.
    assert warmup.warm_up_state().state == "off"
    assert "warm_up" not in client.get("/readyz").json()["checks"]


def test_the_warm_up_loads_the_model_searches_each_knowledge_base_and_bills_nobody(kb) -> None:
    document_ingest(
        document_id=upload(kb, "faq.md", b"# FAQ\n\nRefunds take five days.").document.pk
    )
    reset_embedders()
    calls_before = LlmCall.objects.count()

    assert warm_up() == 1

    assert get_embedder(MINILM_MODEL_ID)._model is not None  # type: ignore[attr-defined]
    assert LlmCall.objects.count() == calls_before


def test_the_warm_up_builds_what_the_first_answer_would_and_writes_no_question_rows(kb) -> None:
    # Given an ingested document, and a process whose lazily built parts are not built
    document_ingest(document_id=upload(kb, "billing.md", BILLING).document.pk)
    _forget_reverse_tables()
    abstention_model.cache_clear()
    text_terms.cache_clear()
    assert not any(resolver._populated for resolver in _resolvers())
    rows_before = _rows()

    # When the process warms up
    warm_up()

    # Then every URL resolver has its reverse tables (citation links reverse through them)
    assert all(resolver._populated for resolver in _resolvers())
    # and the extractive answerer ran (its abstention model is loaded)
    assert abstention_model.cache_info().currsize == 1
    # and the chunks' content terms are remembered as the reranker reads them
    chunk = Chunk.objects.select_related("document").get(knowledge_base=kb)
    hits = text_terms.cache_info().hits
    text_terms(f"{chunk.document.title} {chunk.heading_path} {chunk.text}")
    assert text_terms.cache_info().hits == hits + 1
    # and nothing a question writes was written: no ledger row, no conversation
    assert _rows() == rows_before


def test_the_rehearsed_answer_goes_through_retrieval_generation_and_the_citation_check(
    kb,
) -> None:
    document_ingest(document_id=upload(kb, "billing.md", BILLING).document.pk)
    rows_before = _rows()

    outcome = answer_rehearse(kb)

    assert outcome is not None
    assert (outcome.status, outcome.provider, outcome.model) == ("done", "local", "extractive")
    assert outcome.checked is not None and outcome.cited  # quoted, cited, checked
    assert _rows() == rows_before


def test_the_rehearsal_never_calls_a_third_party_model_the_routes_name(kb, fake_openai) -> None:
    # Given routes that try OpenAI first (configured, reachable) before the local answerer
    document_ingest(document_id=upload(kb, "billing.md", BILLING).document.pk)
    for name in ("simple", "complex"):
        LlmRoute.objects.create(name=name, chain="openai:gpt-4o-mini,local:extractive")
    reset_providers()
    try:
        outcome = answer_rehearse(kb)
    finally:
        reset_providers()

    # Then the answer is the local answerer's, and OpenAI never heard of it
    assert outcome is not None and outcome.provider == "local"
    assert fake_openai.requests == []


def test_a_knowledge_base_with_an_api_embedding_model_rehearses_nothing(kb) -> None:
    document_ingest(document_id=upload(kb, "faq.md", FAQ).document.pk)
    kb.embedding_model = "openai:text-embedding-3-small"

    assert answer_rehearse(kb) is None


@pytest.mark.django_db(transaction=True)
def test_a_served_process_reports_the_warm_up_in_readyz(kb, tmp_path) -> None:
    # Given a knowledge base with a document, and uvicorn started as `manage.py serve` does
    document_ingest(
        document_id=upload(kb, "faq.md", b"# FAQ\n\nRefunds take five days.").document.pk
    )
    port, log = free_port(), tmp_path / "web.log"
    env = manage_env(
        DATABASE_URL=_database_url(), SECRET_KEY=settings.SECRET_KEY, REDIS_URL=None,
        CELERY_BROKER_URL=f"filesystem://{tmp_path}", CAIRN_HTTPS="false",
    )  # fmt: skip
    argv = [
        sys.executable, "-m", "uvicorn", "config.asgi:application",
        "--host", "127.0.0.1", "--port", str(port), "--lifespan", "on",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        # When it answers /readyz with 200
        body = None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and body is None:
            assert process.poll() is None, log.read_text()[-4000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                    body = json.load(r)
            except OSError:
                time.sleep(0.2)
        assert body is not None, log.read_text()[-4000:]

        # Then the warm-up is over and searched the knowledge base
        warm = body["checks"]["warm_up"]
        assert warm["ok"] is True and warm["detail"] == "ready: 1 knowledge bases warmed", body
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
