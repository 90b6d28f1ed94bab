"""JSON log lines and the request id that follows one answer: web → gateway → ledger → task."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import httpx2
import pytest
import sseclient

from chat.models import Message
from ingest.services.pipeline import document_ingest
from llm.models import LlmCall
from observability.logging import request_id_bound, request_id_get
from tests.factories import upload
from tests.support.api import api_client
from tests.support.live_server import running_asgi_server
from tests.support.tasks import tasks_run_inline
from tests.support.worker import Worker, redis_queue, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "How much does the Growth plan cost per month?"
PLANS = b"""# Plans and prices

## Growth plan

The Growth plan costs $59 per month or $590 per year. It includes five users.
"""
GENERATED_ID = re.compile(r"[0-9a-f]{32}")
# The extractive answerer at a price, so that an answer costs money and its account's
# daily cost check (a task) runs after it.
PRICED = json.dumps({"local:extractive": {"input": 1000, "output": 1000}})

LogLines = Callable[[], list[dict]]


@pytest.fixture
def plans_kb(kb):
    document_ingest(document_id=upload(kb, "plans.md", PLANS).document.pk)
    return kb


@pytest.fixture
def json_log() -> Iterator[LogLines]:
    """What the configured console handler writes, captured: a handler on the root logger
    with that handler's own formatter and filters (JSON by default, PII filter first)."""
    root = logging.getLogger()
    console = next(h for h in root.handlers if h.get_name() == "console")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(console.formatter)
    for log_filter in console.filters:
        handler.addFilter(log_filter)
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


def _lines(lines: list[dict], logger: str) -> list[dict]:
    return [line for line in lines if line["logger"] == logger]


def _answer_ledger_ids_since(before: set[int]) -> set[str]:
    """Request ids of the gateway's ledger rows (the model calls of answers) written since
    ``before``. Embeddings made outside an answer (ingestion, the question guard) have
    ledger rows with ids of their own."""
    rows = LlmCall.objects.exclude(pk__in=before).filter(feature="answer")
    return set(rows.values_list("request_id", flat=True))


def _ledger_rows() -> set[int]:
    return set(LlmCall.objects.values_list("pk", flat=True))


def _worker_lines(log: Path) -> list[dict]:
    """The worker's log records; its start-up banner is plain text, not records."""
    text = log.read_text() if log.exists() else ""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_one_answer_carries_one_request_id_through_web_gateway_ledger_and_task_logs(
    plans_kb, json_log, settings, tmp_path
) -> None:
    settings.CAIRN_LLM_PRICES = PRICED
    plans_kb.account.daily_cost_alert = Decimal("0.01")
    plans_kb.account.save()
    client, _, _ = api_client(plans_kb.account, ["answer"])
    log = tmp_path / "worker.log"
    before = _ledger_rows()

    with redis_queue() as queue:
        worker = Worker(queue, log, CAIRN_LOG_FORMAT="json").start()
        try:
            response = client.post("/api/v1/answers", {"question": QUESTION}, format="json")
            request_id = response["X-Request-ID"]
            task_lines = wait_for(
                lambda: [
                    line for line in _lines(_worker_lines(log), "cairn.costs")
                    if line["request_id"] == request_id
                ],
                timeout=120, what="the cost check's log line in the worker", log=log,
            )  # fmt: skip
        finally:
            worker.stop()

    assert response.status_code == 200 and GENERATED_ID.fullmatch(request_id)
    body = response.json()
    assert Message.objects.get(pk=body["message_id"]).request_id == request_id
    assert _answer_ledger_ids_since(before) == {request_id}, "the gateway's ledger row"
    answer_rows = LlmCall.objects.filter(request_id=request_id)
    assert {"answer", "embedding:answer"} <= set(answer_rows.values_list("feature", flat=True))
    lines = json_log()
    (web,) = [line for line in _lines(lines, "cairn.requests") if line["path"] == "/api/v1/answers"]
    assert web["request_id"] == request_id and web["status"] == 200 and web["method"] == "POST"
    (gateway,) = _lines(lines, "llm.gateway")
    assert gateway["request_id"] == request_id
    assert [gateway[f] for f in ("provider", "model", "status")] == ["local", "extractive", "ok"]
    assert gateway["attempt"] == 1 and gateway["latency_ms"] >= 0 and gateway["input_tokens"] > 0
    assert QUESTION not in json.dumps(gateway), "no prompt text in the gateway's line"
    assert task_lines[0]["message"].startswith(f"daily cost of account {plans_kb.account_id}:")
    assert all(line["request_id"] == request_id for line in task_lines)
    worker_lines = log.read_text().splitlines()
    assert all(json.loads(line) for line in worker_lines if line.startswith("{"))


def test_an_incoming_request_id_is_honoured_and_names_the_answers_ledger_rows(
    plans_kb, json_log
) -> None:
    client, _, _ = api_client(plans_kb.account, ["answer"])
    before = _ledger_rows()

    response = client.post(
        "/api/v1/answers", {"question": QUESTION}, format="json",
        HTTP_X_REQUEST_ID="edge-7f3a.2026:11",
    )  # fmt: skip

    assert response["X-Request-ID"] == "edge-7f3a.2026:11"
    assert _answer_ledger_ids_since(before) == {"edge-7f3a.2026:11"}
    assert {line["request_id"] for line in _lines(json_log(), "cairn.requests")} == {
        "edge-7f3a.2026:11"
    }


@pytest.mark.parametrize(
    "hostile",
    ["x" * 65, 'abc\n{"level": "INFO"}', "two words", "ünïcode", "<script>", ""],
)
def test_a_hostile_or_oversized_request_id_is_replaced_by_a_new_one(client, hostile) -> None:
    response = client.get("/healthz", HTTP_X_REQUEST_ID=hostile)

    assert response.status_code == 200
    assert GENERATED_ID.fullmatch(response["X-Request-ID"])


def test_a_request_id_sent_twice_gives_the_second_answer_ledger_rows_of_its_own(
    plans_kb,
) -> None:
    client, _, _ = api_client(plans_kb.account, ["answer"])

    def ask(question: str) -> dict:
        response = client.post(
            "/api/v1/answers", {"question": question}, format="json",
            HTTP_X_REQUEST_ID="retried-id",
        )  # fmt: skip
        assert response.status_code == 200
        return response.json()

    first, second = ask(QUESTION), ask("How much does the Growth plan cost per year?")

    first_id = Message.objects.get(pk=first["message_id"]).request_id
    second_id = Message.objects.get(pk=second["message_id"]).request_id
    assert first_id == "retried-id"
    assert re.fullmatch(r"retried-id-[0-9a-f]{8}", second_id), "found by the client's id"
    assert LlmCall.objects.filter(request_id=second_id).count() >= 1
    assert Decimal(second["usage"]["cost"]) == sum(
        (c.cost for c in LlmCall.objects.filter(request_id=second_id)), Decimal(0)
    )


def test_a_streamed_answer_is_generated_under_its_requests_id(plans_kb) -> None:
    _, _, key = api_client(plans_kb.account, ["answer"])
    before = _ledger_rows()

    with running_asgi_server() as live, httpx2.stream(
        "POST", f"{live.url}/api/v1/answers", json={"question": QUESTION, "stream": True},
        headers={"Authorization": f"Bearer {key}", "X-Request-ID": "sse-trail-1"}, timeout=60,
    ) as response:  # fmt: skip
        events = list(sseclient.SSEClient(response.iter_bytes()).events())
        header = response.headers["X-Request-ID"]

    done = json.loads(events[-1].data)
    # Generated on a pool thread after the view returned: the id went with it.
    assert header == "sse-trail-1"
    assert Message.objects.get(pk=done["message_id"]).request_id == "sse-trail-1"
    assert _answer_ledger_ids_since(before) == {"sse-trail-1"}


def test_log_lines_are_json_objects_with_time_level_logger_request_id_and_extras(
    json_log,
) -> None:
    logger = logging.getLogger("cairn.tests")

    with request_id_bound("trail-42"):
        logger.info("answered in %d ms", 812, extra={"tokens": 120, "cost": Decimal("0.25")})
    try:
        raise ValueError("the provider said no")
    except ValueError:
        logger.exception("call failed")

    answered, failed = _lines(json_log(), "cairn.tests")
    assert answered["message"] == "answered in 812 ms" and answered["level"] == "INFO"
    assert answered["request_id"] == "trail-42"
    assert answered["tokens"] == 120 and answered["cost"] == "0.25"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", answered["ts"])
    assert failed["level"] == "ERROR" and failed["request_id"] is None
    assert "Traceback" in failed["exc"] and "ValueError: the provider said no" in failed["exc"]
    assert request_id_get() is None, "unbound after the block"


def test_an_email_address_in_a_logged_message_or_extra_field_is_redacted(json_log) -> None:
    logger = logging.getLogger("cairn.tests")

    logger.warning(
        "mail to %s bounced", "ann@example.com",
        extra={"recipient": "ann@example.com", "cc": ["bob@example.org"], "attempts": 2},
    )  # fmt: skip

    (line,) = _lines(json_log(), "cairn.tests")
    assert "example.com" not in json.dumps(line) and "bob@" not in json.dumps(line)
    assert line["message"] == "mail to [EMAIL_1] bounced"
    assert line["recipient"] == "[EMAIL_1]" and line["cc"] == ["[EMAIL_1]"]
    assert line["attempts"] == 2


def test_a_task_run_inline_keeps_the_callers_request_id(plans_kb, json_log) -> None:
    from chat.tasks import cost_alert_check_task

    plans_kb.account.daily_cost_alert = Decimal("1.00")
    plans_kb.account.save()

    with request_id_bound("caller-id"), tasks_run_inline():
        cost_alert_check_task.delay(plans_kb.account_id)
        after = request_id_get()

    (check,) = _lines(json_log(), "cairn.costs")
    assert check["request_id"] == after == "caller-id"
