"""Tracing: one trace per answer and per ingestion, no text in spans, nothing while off."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ingest.services.pipeline import document_ingest
from observability.tracing import (
    span,
    tracer_provider,
    tracing_active,
    tracing_configure,
    tracing_disable,
    tracing_enable,
)
from tests.factories import upload
from tests.support.api import api_client

PLANS = b"""# Plans and prices

## Growth plan

The Growth plan costs $59 per month or $590 per year. It includes five users and unlimited invoices.
"""
QUESTION = "How much does the Growth plan cost per month?"
INGEST_STEPS = ["ingest.parse", "ingest.chunk", "ingest.embed", "ingest.scan", "ingest.store"]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on, into memory, each span exported as it ends."""
    exporter = InMemorySpanExporter()
    tracing_enable(exporter=exporter, batch=False, set_global=False)
    yield exporter
    tracing_disable()


def by_name(finished: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in finished}


def attrs(finished: ReadableSpan) -> dict[str, Any]:
    return dict(finished.attributes or {})


def times(finished: ReadableSpan) -> tuple[int, int]:
    assert finished.start_time is not None and finished.end_time is not None
    return finished.start_time, finished.end_time


def attribute_texts(finished: tuple[ReadableSpan, ...]) -> list[str]:
    return [str(v) for s in finished for v in attrs(s).values()]


def test_an_answer_is_one_trace_retrieve_then_generate_then_verify(kb, spans) -> None:
    document_ingest(document_id=upload(kb, "plans.md", PLANS).document.pk)
    spans.clear()
    client, _, _ = api_client(kb.account, ["answer"])

    response = client.post("/api/v1/answers", {"question": QUESTION}, format="json")

    assert response.status_code == 200 and "$59" in response.json()["answer"]
    finished = spans.get_finished_spans()
    named = by_name(finished)
    answer = named["answer"]
    steps = [named["retrieve"], named["generate"], named["verify"]]
    assert {s.context.trace_id for s in steps} == {answer.context.trace_id}
    assert all(s.parent is not None and s.parent.span_id == answer.context.span_id for s in steps)
    retrieve, generate, verify = steps
    assert times(retrieve)[1] <= times(generate)[0] and times(generate)[1] <= times(verify)[0]
    assert attrs(generate)["cairn.provider"] == "local"
    assert attrs(generate)["cairn.model"] == "extractive"
    assert [e.name for e in generate.events] == ["first_token"]
    assert attrs(retrieve)["cairn.hits"] > 0
    assert attrs(verify)["cairn.grounded"] is True
    assert attrs(answer)["cairn.status"] == "done"
    assert attrs(answer)["cairn.knowledge_base"] == kb.pk
    # Ids and outcomes only: neither the question nor the passages nor the answer.
    for text in attribute_texts(finished):
        assert "Growth" not in text and "$59" not in text


def test_an_ingestion_is_one_trace_of_its_steps(kb, spans) -> None:
    document = upload(kb, "plans.md", PLANS).document

    document_ingest(document_id=document.pk)

    finished = spans.get_finished_spans()
    named = by_name(finished)
    root = named["ingest"]
    assert attrs(root)["cairn.document_id"] == document.pk
    steps = [named[name] for name in INGEST_STEPS]
    assert [s.name for s in sorted(steps, key=lambda s: times(s)[0])] == INGEST_STEPS
    assert all(s.context.trace_id == root.context.trace_id for s in steps)
    assert all(s.parent is not None and s.parent.span_id == root.context.span_id for s in steps)
    assert attrs(named["ingest.chunk"])["cairn.chunks"] >= 1
    assert attrs(named["ingest.store"])["cairn.outcome"] == "ready"
    for text in attribute_texts(finished):
        assert "Growth" not in text and "$59" not in text


def test_a_failing_step_records_the_error_class_not_its_message(kb, spans) -> None:
    document = upload(kb, "empty.txt", b"   \n").document

    document_ingest(document_id=document.pk)

    named = by_name(spans.get_finished_spans())
    parse = named["ingest.parse"]
    assert not parse.status.is_ok and parse.status.description == "ParseError"
    assert attrs(parse)["exception.type"] == "ParseError"
    assert not parse.events  # no exception event, which would carry the message
    assert "ingest.chunk" not in named  # the pipeline stopped there


def test_with_tracing_off_nothing_is_recorded_and_no_provider_is_installed(kb) -> None:
    exporter = InMemorySpanExporter()
    tracing_enable(exporter=exporter, batch=False, set_global=False)
    tracing_disable()

    document_ingest(document_id=upload(kb, "plans.md", PLANS).document.pk)
    with span("anything", document_id=1) as current:
        current.set(chunks=3)

    assert exporter.get_finished_spans() == ()
    assert not tracing_active() and tracer_provider() is None
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    # Off, span() hands out one shared no-op: no object is made per call.
    assert span("a") is span("b", chunks=1)


def test_off_by_default_in_the_settings(settings) -> None:
    assert settings.CAIRN_OTEL_ENABLED is False
    assert tracer_provider() is None  # config.apps ran tracing_configure at start-up


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP traces receiver: keeps what is posted, answers 200."""

    received: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def otlp_collector(monkeypatch) -> Iterator[list[tuple[str, str, bytes]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    _Collector.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    yield _Collector.received
    server.shutdown()
    server.server_close()


def test_enabled_spans_go_over_otlp_http_to_the_standard_endpoint(otlp_collector) -> None:
    tracing_configure(enabled=True)
    try:
        with span("ingest", document_id=7):
            with span("ingest.parse", mime_type="text/markdown"):
                pass
        provider = tracer_provider()
        assert provider is not None and provider.force_flush()
    finally:
        tracing_disable()

    [(path, content_type, body)] = otlp_collector
    assert path == "/v1/traces" and content_type == "application/x-protobuf"
    export = ExportTraceServiceRequest.FromString(body)
    [resource_spans] = export.resource_spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "cairn"
    exported = {s.name: s for scope in resource_spans.scope_spans for s in scope.spans}
    assert set(exported) == {"ingest", "ingest.parse"}
    assert exported["ingest.parse"].parent_span_id == exported["ingest"].span_id
    attributes = {a.key: a.value for a in exported["ingest"].attributes}
    assert attributes["cairn.document_id"].int_value == 7
