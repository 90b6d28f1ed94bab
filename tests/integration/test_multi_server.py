"""More than one machine: two uvicorn servers and two Celery workers, real processes
sharing one PostgreSQL and one Redis and nothing else (tests/integration/cluster.py).

What a load balancer may do to a client, sending each request to either server, must not
show: an answer asked on one streams from the other, rate limits and circuit breakers
count for both, a document ingested by either worker is searchable on both within a
second, and an idempotent request repeated on the other server is answered once.

One set of processes serves every test of the module; each test has its own account,
and the cache (this run's own Redis database) is emptied between tests.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import cycle
from typing import TypeVar

import httpx2
import pytest
from django.conf import settings
from django.db import connection
from django.utils.crypto import get_random_string
from prometheus_client.parser import text_string_to_metric_families

from chat.models import Conversation, Message
from kb.models import Account, Document, KnowledgeBase
from kb.services.api_keys import api_key_create
from llm.models import LlmCall, LlmRoute
from tests.factories import make_account, make_knowledge_base, make_user
from tests.integration.cluster import Cluster, WebServer, running_cluster
from tests.support.fake_llm import FakeLLMServer, Fault, running_fake_llm
from tests.support.worker import _database_url

pytestmark = pytest.mark.django_db(transaction=True)

METRICS_TOKEN = "multi-server-metrics-token"
SERVER_ENV = {
    "CAIRN_API_KEY_RATE_LIMIT": "4/m",
    "CAIRN_BREAKER_THRESHOLD": "2",
    "CAIRN_LLM_RETRIES": "0",
    "CAIRN_METRICS_TOKEN": METRICS_TOKEN,
}
SEARCH_DEADLINE_SECONDS = 1.0

PLANS = b"""# Plans and prices

## Growth plan

The Growth plan costs $59 per month or $590 per year. It includes five users and unlimited invoices.

## Starter plan

The Starter plan costs $19 per month and includes one user.

## Refunds

Annual plans can be refunded within 30 days of purchase. Refunds arrive within 5 business days.
"""
GASKETS = b"""# Kettle maintenance

Descale the kettle's zephyrine gasket every quarter with citric acid, never with vinegar.
"""
LANTERNS = b"""# Lantern repairs

A cracked quillon lens on a storm lantern is replaced, not glued; order part LN-77.
"""

T = TypeVar("T")


# --- the cluster -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLMServer]:
    """A third-party model on loopback, the first entry of the breaker test's routes."""
    with running_fake_llm() as server:
        yield server


@pytest.fixture(scope="module")
def cluster(django_db_setup, fake_llm, tmp_path_factory) -> Iterator[Cluster]:
    with running_cluster(
        folder=tmp_path_factory.mktemp("multi-server"),
        database_url=_database_url(),  # the test database, which this session created
        secret_key=settings.SECRET_KEY,  # so that a session made here is valid there
        CAIRN_OPENAI_COMPATIBLE_BASE_URL=fake_llm.openai_base_url,
        **SERVER_ENV,
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def _nothing_carried_over(cluster, fake_llm) -> Iterator[None]:
    cluster.redis.cache_clear()
    fake_llm.requests.clear()
    yield
    assert all(process.alive for process in cluster.processes), cluster.logs()


@dataclass
class Tenant:
    account: Account
    knowledge_base: KnowledgeBase
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def make_tenant() -> Tenant:
    account = make_account()
    _, key = api_key_create(account=account, name="tests", scopes=["read", "answer", "ingest"])
    return Tenant(account, make_knowledge_base(account, "Help"), key)


def wait_until(condition: Callable[[], T], *, timeout: float, what: str, every: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        if value := condition():
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def upload_through(server: WebServer, tenant: Tenant, name: str, content: bytes) -> int:
    response = httpx2.post(
        f"{server.url}/api/v1/documents", headers=tenant.headers, timeout=30,
        data={"knowledge_base": tenant.knowledge_base.slug},
        files={"file": (name, content, "text/markdown")},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def ready(document_id: int, cluster: Cluster) -> bool:
    status = Document.objects.values_list("status", flat=True).get(pk=document_id)
    assert status != Document.Status.FAILED, cluster.logs()
    return status == Document.Status.READY


def tenant_with_plans(cluster: Cluster) -> Tenant:
    tenant = make_tenant()
    document = upload_through(cluster.servers[0], tenant, "plans.md", PLANS)
    wait_until(lambda: ready(document, cluster), timeout=120, what="plans.md to be ingested")
    return tenant


def ask(
    server: WebServer, tenant: Tenant, question: str, *, idempotency_key: str = ""
) -> httpx2.Response:
    headers = dict(tenant.headers)
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return httpx2.post(
        f"{server.url}/api/v1/answers", headers=headers, timeout=60,
        json={"question": question, "knowledge_base": tenant.knowledge_base.slug},
    )  # fmt: skip


def sse_events(lines: Iterator[str]) -> list[tuple[str, str]]:
    events, event, data = [], "", []
    for line in lines:
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and event:
            events.append((event, "\n".join(data)))
            if event == "done":
                break
            event, data = "", []
    return events


# --- the five checks ---------------------------------------------------------------------


def test_documents_ingested_by_either_worker_are_found_on_both_servers_within_a_second(
    cluster,
) -> None:
    tenant = make_tenant()
    wait_until(cluster.workers_idle, timeout=120, what="both workers to be idle", every=0.5)
    # Each server has already searched the empty knowledge base, in both modes.
    for server in cluster.servers:
        for mode in ("keyword", "vector"):
            assert not search_hits(server, tenant, "zephyrine gasket", mode)

    # When two documents are uploaded at once, one through each server, so that each
    # (idle, one task at a time) worker takes one…
    with ThreadPoolExecutor(2) as pool:
        uploaded = pool.map(
            lambda args: upload_through(*args),
            [(cluster.servers[0], tenant, "kettle.md", GASKETS),
             (cluster.servers[1], tenant, "lantern.md", LANTERNS)],
        )  # fmt: skip
        gaskets, lanterns = uploaded
        # …then each is found, by keyword and by vector, on both servers, within a second
        # of the moment it is ready.
        found = pool.map(
            lambda args: found_everywhere(cluster, tenant, *args),
            [(gaskets, "zephyrine gasket", "How often is the kettle descaled?"),
             (lanterns, "quillon lens", "How do I fix a broken lantern lens?")],
        )  # fmt: skip
        misses = [miss for result in found for miss in result]
    assert not misses, f"not found within {SEARCH_DEADLINE_SECONDS} s of being ready: {misses}"

    ingested_by = {
        int(run["args"].strip("(),")): worker.name
        for worker in cluster.workers
        for run in worker.task_runs("ingest.tasks.document_ingest_task")
        if run.get("return_value") == "'ready'"
    }
    assert {ingested_by.get(gaskets), ingested_by.get(lanterns)} == {"worker-1", "worker-2"}, (
        f"each worker should have ingested one document: {ingested_by}"
    )


def search_hits(server: WebServer, tenant: Tenant, query: str, mode: str) -> set[int]:
    """The ids of the documents a search through ``server`` finds."""
    response = httpx2.get(
        f"{server.url}/api/v1/search", headers=tenant.headers, timeout=30,
        params={"q": query, "mode": mode, "k": 5, "knowledge_base": tenant.knowledge_base.slug},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    if mode == "vector" and body["nothing_relevant"]:
        return set()
    return {hit["document"]["id"] for hit in body["hits"]}


def found_everywhere(
    cluster: Cluster, tenant: Tenant, document: int, words: str, question: str
) -> list[str]:
    """Wait for ``document`` to be ready, then search for it on every server in both modes
    at once, each until it is found or a second has passed; return what missed."""
    try:
        wait_until(lambda: ready(document, cluster), timeout=120, what=f"document {document}",
                   every=0.02)  # fmt: skip
    finally:
        connection.close()  # this thread's own
    deadline = time.monotonic() + SEARCH_DEADLINE_SECONDS

    def found(server: WebServer, mode: str, query: str) -> str:
        while True:
            if document in search_hits(server, tenant, query, mode):
                return ""
            if time.monotonic() > deadline:
                return f"document {document} by {mode} on {server.name}"
            time.sleep(0.02)

    searches = [
        (server, mode, query)
        for server in cluster.servers
        for mode, query in (("keyword", words), ("vector", question))
    ]
    with ThreadPoolExecutor(len(searches)) as pool:
        return [miss for miss in pool.map(lambda args: found(*args), searches) if miss]


def test_an_answer_asked_through_one_server_streams_from_the_other(cluster, client) -> None:
    first, second = cluster.servers
    tenant = tenant_with_plans(cluster)
    user = make_user(staff=False, account=tenant.account, role="staff")
    conversation = Conversation.objects.create(
        account=tenant.account, knowledge_base=tenant.knowledge_base, user_id=user.pk
    )
    client.force_login(user)  # a session in the shared database
    csrf = get_random_string(32)  # the browser's CSRF cookie and header
    cookies = {
        settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value,
        settings.CSRF_COOKIE_NAME: csrf,
    }

    # When the question is asked on the first server (the htmx form)…
    asked = httpx2.post(
        f"{first.url}/chat/c/{conversation.pk}/ask", data={"question": "What does Growth cost?"},
        headers={"HX-Request": "true", "X-CSRFToken": csrf}, cookies=cookies, timeout=30,
    )  # fmt: skip
    assert asked.status_code == 200, asked.text
    placeholder = re.search(r'sse-connect="([^"]+)"', asked.text)
    assert placeholder, asked.text

    # …and the page's event stream reaches the second
    with httpx2.stream(
        "GET", f"{second.url}{placeholder.group(1)}", cookies=cookies, timeout=60
    ) as stream:
        assert stream.status_code == 200
        events = sse_events(stream.iter_lines())
        streamed_by = stream.headers["X-Request-ID"]

    # Then the second server generates and streams it, word by word, to the end
    assert [name for name, _ in events].count("token") > 1, events
    assert events[-1][0] == "done" and "$59" in events[-1][1]
    answer = Message.objects.get(conversation=conversation, role=Message.Role.ASSISTANT)
    assert answer.status == Message.Status.DONE and "$59" in answer.content
    assert answer.request_id == streamed_by, "generated by the request the second server served"


def test_a_rate_limit_counts_the_questions_of_both_servers(cluster) -> None:
    # Given an API key allowed 4 questions a minute (CAIRN_API_KEY_RATE_LIMIT=4/m)
    tenant = make_tenant()
    servers = cycle(cluster.servers)

    # When it asks 4 questions, two through each server, then one more through each
    allowed = [ask(next(servers), tenant, f"What is rule {n}?") for n in range(4)]
    refused = [ask(server, tenant, "What is one rule too many?") for server in cluster.servers]

    # Then neither server lets a fifth through, though each has seen only two
    assert [response.status_code for response in allowed] == [200] * 4, allowed[-1].text
    assert [response.status_code for response in refused] == [429, 429]
    for response in refused:
        assert "API key" in response.json()["error"]["message"]
        assert int(response.headers["Retry-After"]) >= 1


def test_a_circuit_breaker_opened_by_one_server_is_open_for_the_other(cluster, fake_llm) -> None:
    first, second = cluster.servers
    tenant = tenant_with_plans(cluster)
    # Given routes that try a third-party model first, and it failing twice
    # (CAIRN_BREAKER_THRESHOLD=2, no retries)
    for name in ("simple", "complex"):
        LlmRoute.objects.create(name=name, chain="openai_compatible:fake-model,local:extractive")
    fake_llm.script(Fault(status=500), Fault(status=500))

    # When the first server's questions meet both failures (and fall back)…
    for question in ("What does Growth cost?", "How many users has Starter?"):
        response = ask(first, tenant, question)
        assert (response.status_code, response.json()["provider"]) == (200, "local")
    assert len(fake_llm.requests) == 2

    # …then the second server does not call the model at all: its breaker is open there
    response = ask(second, tenant, "When do refunds arrive?")
    assert (response.status_code, response.json()["provider"]) == (200, "local")
    assert len(fake_llm.requests) == 2, "the second server called the model the first saw fail"
    request_id = Message.objects.get(pk=response.json()["message_id"]).request_id
    skipped = LlmCall.objects.filter(request_id=request_id, provider="openai_compatible")
    assert [(call.status, call.error_class) for call in skipped] == [("skipped", "circuit_open")]
    assert breaker_state(second, "openai_compatible", "fake-model") == "open"


def breaker_state(server: WebServer, provider: str, model: str) -> str:
    """The breaker state ``server``'s /metrics reports for ``provider:model``."""
    response = httpx2.get(
        f"{server.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    for family in text_string_to_metric_families(response.text):
        if family.name != "cairn_llm_circuit_breaker_state":
            continue
        for sample in family.samples:
            labels = sample.labels
            if (labels["provider"], labels["model"]) == (provider, model) and sample.value == 1:
                return labels["state"]
    raise AssertionError(f"no breaker state for {provider}:{model} in\n{response.text}")


def test_an_idempotent_request_repeated_on_the_other_server_is_answered_once(cluster) -> None:
    tenant = tenant_with_plans(cluster)
    key = get_random_string(20)
    start = threading.Barrier(2)

    def send(server: WebServer) -> httpx2.Response:
        start.wait()
        return ask(server, tenant, "What does the Growth plan cost?", idempotency_key=key)

    # When the same request reaches both servers at once (a client retrying on a timeout,
    # its load balancer picking the other server), and once more later on the second
    with ThreadPoolExecutor(2) as pool:
        at_once = list(pool.map(send, cluster.servers))
    later = ask(cluster.servers[1], tenant, "What does the Growth plan cost?", idempotency_key=key)

    # Then all three get the same answer, generated and recorded once
    responses = [*at_once, later]
    assert [response.status_code for response in responses] == [200] * 3, responses[0].text
    assert len({response.json()["message_id"] for response in responses}) == 1
    assert Message.objects.filter(role=Message.Role.ASSISTANT, idempotency_key=key).count() == 1
    assert LlmCall.objects.filter(feature="answer").count() == 1
    assert "$59" in later.json()["answer"]
