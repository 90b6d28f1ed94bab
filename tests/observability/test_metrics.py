"""/metrics: who may read it, and that every series moves when Cairn works.

Counters are process-wide and other tests move them too, so the series that count
are compared before and after; the gauges read at scrape time are exact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal

import pytest
import redis
from asgiref.sync import async_to_sync
from django.db.models import Sum
from django.test import AsyncClient, Client
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ingest.services.pipeline import document_ingest
from ingest.tasks import document_ingest_task
from llm.events import CompletionRequest, Message
from llm.gateway import GatewayRequest, GatewayResult, LlmGateway
from llm.models import LlmCall
from llm.routing import route_named
from observability.metrics import scrape_registry
from tests.chat.scripted import Say, ScriptedProvider, fault
from tests.conftest import REPO_ROOT
from tests.factories import make_user, upload
from tests.support.api import api_client
from tests.support.worker import TEST_REDIS, redis_queue

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-0123456789abcdef"
EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PLANS = b"""# Plans and prices

## Growth plan

The Growth plan costs $59 per month or $590 per year. It includes five users and unlimited invoices.

## Starter plan

The Starter plan costs $19 per month and includes one user.
"""
QUESTION = "How much does the Growth plan cost per month?"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(exposition: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def scrape() -> Samples:
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    return parse(response.content.decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


@pytest.fixture(autouse=True)
def _token(settings):
    settings.CAIRN_METRICS_TOKEN = TOKEN


# --- who may read it ---------------------------------------------------------------


def test_anonymous_wrong_token_and_non_staff_requests_are_refused(client) -> None:
    anonymous = client.get("/metrics")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    prefix = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN[:-1]}")
    basic = client.get("/metrics", HTTP_AUTHORIZATION="Basic dXNlcjpwdw==")
    client.force_login(make_user(staff=False))
    member = client.get("/metrics")

    for refused in (anonymous, wrong, prefix, basic):
        assert refused.status_code == 401
        assert refused["WWW-Authenticate"].startswith("Bearer")
    assert member.status_code == 403
    for refused in (anonymous, wrong, prefix, basic, member):
        assert b"cairn_" not in refused.content


def test_without_a_configured_token_no_token_opens_it(client, settings) -> None:
    settings.CAIRN_METRICS_TOKEN = ""

    empty = client.get("/metrics", HTTP_AUTHORIZATION="Bearer ")
    anything = client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything")
    anonymous = client.get("/metrics")

    assert empty.status_code == anything.status_code == anonymous.status_code == 401
    assert b"cairn_" not in empty.content + anything.content + anonymous.content


def test_openmetrics_is_served_to_scrapers_that_ask_for_it(client) -> None:
    response = client.get(
        "/metrics",
        HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
        HTTP_ACCEPT="application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.rstrip().endswith(b"# EOF")


def test_the_token_and_a_staff_login_each_open_it(client) -> None:
    with_token = client.get("/metrics", HTTP_AUTHORIZATION=f"bearer {TOKEN}")
    client.force_login(make_user(staff=True))
    as_staff = client.get("/metrics")

    for response in (with_token, as_staff):
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/plain")
        assert "no-cache" in response["Cache-Control"]
        assert "cairn_documents" in names(parse(response.content.decode()))


# --- every series --------------------------------------------------------------------


def test_an_ingestion_and_two_answers_move_every_series(kb, settings) -> None:
    settings.CAIRN_LLM_PRICES = json.dumps({"local:extractive": {"input": 1.0, "output": 2.0}})
    before = scrape()
    ready = upload(kb, "plans.md", PLANS).document
    document_ingest(document_id=ready.pk)
    upload(kb, "waiting.md", b"# Waiting\n\nThis one is still in the queue.\n")
    empty = upload(kb, "empty.txt", b"   \n").document
    document_ingest(document_id=empty.pk)
    client, _, _ = api_client(kb.account, ["answer"])

    first = client.post("/api/v1/answers", {"question": QUESTION}, format="json")
    again = client.post("/api/v1/answers", {"question": QUESTION}, format="json")
    after = scrape()

    assert first.status_code == again.status_code == 200
    assert first.json()["cached"] == "" and again.json()["cached"] == "exact"

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # Request latency, labelled by route pattern, method and status class.
    answers_route = {"route": "api/v1/answers", "method": "POST", "status": "2xx"}
    assert delta("cairn_http_request_duration_seconds_count", **answers_route) == 2
    assert delta("cairn_http_request_duration_seconds_bucket", **answers_route, le="+Inf") == 2
    assert delta("cairn_http_request_duration_seconds_sum", **answers_route) > 0
    # One generated answer (the second came from the cache): its call, time to first
    # token, tokens and cost, as the ledger has them.
    generated = LlmCall.objects.filter(provider="local", model="extractive", cache_hit=False)
    totals = generated.aggregate(i=Sum("input_tokens"), o=Sum("output_tokens"), c=Sum("cost"))
    local = {"provider": "local", "model": "extractive"}
    assert generated.count() == 1 and totals["c"] > Decimal(0)
    assert delta("cairn_llm_calls_total", **local, status="ok") == 1
    assert delta("cairn_llm_time_to_first_token_seconds_count", **local) == 1
    assert delta("cairn_llm_tokens_total", **local, type="input") == totals["i"] > 0
    assert delta("cairn_llm_tokens_total", **local, type="output") == totals["o"] > 0
    assert delta("cairn_llm_cost_dollars_total", **local) == pytest.approx(float(totals["c"]))
    # Embeddings (ingestion, the questions, the citation check) go through the ledger too.
    embeddings = LlmCall.objects.filter(model=EMBEDDING_MODEL)
    embedded = {"provider": "local", "model": EMBEDDING_MODEL}
    assert delta("cairn_llm_calls_total", **embedded, status="ok") == embeddings.count() > 0
    embedded_tokens = embeddings.aggregate(i=Sum("input_tokens"))["i"]
    assert delta("cairn_llm_tokens_total", **embedded, type="input") == embedded_tokens
    # The answer cache: one miss, then one exact hit; the semantic series exists at rest.
    assert delta("cairn_answer_cache_misses_total") == 1
    assert delta("cairn_answer_cache_hits_total", kind="exact") == 1
    assert ("cairn_answer_cache_hits_total", frozenset({("kind", "semantic")})) in after
    # Nothing failed: no retries, no fallbacks from these answers.
    assert delta("cairn_llm_retries_total", **local) == 0
    assert delta("cairn_llm_fallbacks_total", **local) == 0
    # Read at scrape time: documents by status, the ingestion queue, the breaker.
    statuses = ("pending", "processing", "ready", "failed")
    by_status = {status: value(after, "cairn_documents", status=status) for status in statuses}
    assert by_status == {"pending": 1, "processing": 0, "ready": 1, "failed": 1}
    assert value(after, "cairn_ingest_queue_documents") == 1
    assert value(after, "cairn_llm_circuit_breaker_state", **local, state="closed") == 1
    assert value(after, "cairn_llm_circuit_breaker_state", **local, state="open") == 0
    # The broker is not Redis here, so no Celery queue length is claimed.
    assert "cairn_celery_queue_messages" not in names(after)


def test_retries_fallbacks_and_an_open_breaker_show(settings) -> None:
    settings.CAIRN_LLM_RETRIES = 2
    settings.CAIRN_BREAKER_THRESHOLD = 3
    settings.CAIRN_ROUTES = {
        **settings.CAIRN_ROUTES,
        "simple": {"chain": "alpha:a1,beta:b1", "max_tokens": 300, "temperature": 0.1},
    }
    alpha = ScriptedProvider("alpha").then(fault("server_error"), fault(), fault())
    beta = ScriptedProvider("beta").then(Say("from beta"))
    gateway = LlmGateway(providers={"alpha": alpha, "beta": beta}, sleep=lambda _: None)
    question = CompletionRequest(system="Answer.", messages=(Message("user", "Hi?"),))
    before = scrape()

    result = GatewayResult()
    list(gateway.stream(GatewayRequest(question, route_named("simple")), result))
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    alpha_labels = {"provider": "alpha", "model": "a1"}
    beta_labels = {"provider": "beta", "model": "b1"}
    assert result.provider == "beta" and result.fallback_used
    assert delta("cairn_llm_calls_total", **alpha_labels, status="error") == 3
    assert delta("cairn_llm_retries_total", **alpha_labels) == 2
    assert delta("cairn_llm_fallbacks_total", **beta_labels) == 1
    assert delta("cairn_llm_retries_total", **beta_labels) == 0
    assert delta("cairn_llm_calls_total", **beta_labels, status="ok") == 1
    # Three consecutive failures opened alpha's breaker; beta's stays closed.
    assert value(after, "cairn_llm_circuit_breaker_state", **alpha_labels, state="open") == 1
    assert value(after, "cairn_llm_circuit_breaker_state", **alpha_labels, state="closed") == 0
    assert value(after, "cairn_llm_circuit_breaker_state", **beta_labels, state="closed") == 1


def test_the_celery_queue_length_is_read_from_redis(kb) -> None:
    document = upload(kb, "queued.md", b"# Queued\n\nWaiting for a worker.\n").document
    with redis_queue() as queue:
        try:
            document_ingest_task.delay(document.pk)
            document_ingest_task.delay(document.pk)
            samples = scrape()
        finally:
            redis.Redis.from_url(TEST_REDIS).delete(queue)

    assert value(samples, "cairn_celery_queue_messages", queue=queue) == 2


def test_requests_through_asgi_are_timed_by_route_never_by_path() -> None:
    before = scrape()

    async_to_sync(AsyncClient().get)("/healthz")
    async_to_sync(AsyncClient().get)("/no/such/page/12345")
    after = scrape()

    healthz = {"route": "healthz", "method": "GET", "status": "2xx"}
    unmatched = {"route": "unmatched", "method": "GET", "status": "4xx"}
    for labels in (healthz, unmatched):
        count = "cairn_http_request_duration_seconds_count"
        assert value(after, count, **labels) - value(before, count, **labels) == 1
    routes = {dict(labels).get("route") for name, labels in after if name.startswith("cairn_http")}
    assert not any("12345" in route for route in routes if route)


def test_in_multiprocess_mode_the_counts_of_every_process_add_up(tmp_path, kb) -> None:
    # Two processes count one call each, in the shared folder, then leave.
    script = (
        "from decimal import Decimal\n"
        "from observability.metrics import llm_call_observe\n"
        "llm_call_observe(provider='remote', model='m1', status='ok', attempt=1,\n"
        "    input_tokens=7, output_tokens=3, cost=Decimal('0.25'), ttft_ms=120.0,\n"
        "    cache_hit=False, fallback_used=False)\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO_ROOT, check=True)
    upload(kb, "pending.md", b"# Pending\n\nNot ingested yet.\n")

    samples = parse(generate_latest(scrape_registry(multiprocess_dir=str(tmp_path))).decode())

    remote = {"provider": "remote", "model": "m1"}
    assert value(samples, "cairn_llm_tokens_total", **remote, type="input") == 14
    assert value(samples, "cairn_llm_tokens_total", **remote, type="output") == 6
    assert value(samples, "cairn_llm_cost_dollars_total", **remote) == pytest.approx(0.5)
    assert value(samples, "cairn_llm_time_to_first_token_seconds_count", **remote) == 2
    # The scrape-time series come along, read once, not once per process.
    assert value(samples, "cairn_documents", status="pending") == 1
