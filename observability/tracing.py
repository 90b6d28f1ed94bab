"""OpenTelemetry tracing, off unless CAIRN_OTEL_ENABLED, and nearly free while off.

The code says ``with span("retrieve", knowledge_base=kb.pk) as current:`` (or
decorates a function with ``@traced("ingest", "document_id")``). While tracing is
off that is one global lookup returning a shared no-op context manager: no
OpenTelemetry object is made and the SDK is not even imported. While on, each is
a span of the ``cairn`` tracer, current for what runs inside it, so nested spans
share a trace.

Attributes are named ``cairn.<keyword>``. They hold ids, counts, names of models
and outcomes, never prompt, question, answer or document text. For the same reason
a failing span records the exception's class, not its message (which may quote
input).

Export: OTLP over HTTP, configured by the standard variables
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``…),
through a batching processor that exports from its own thread and survives the fork
of Celery's prefork pool.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, ParamSpec, TypeVar

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

AttributeValue = str | bool | int | float
P = ParamSpec("P")
R = TypeVar("R")

ATTRIBUTE_PREFIX = "cairn."
SERVICE_NAME = "cairn"

_tracer: Tracer | None = None
_provider: TracerProvider | None = None


class SpanHandle:
    """What ``with span(...) as current`` gives: attributes and events added as they
    become known (who answered, how many chunks). A no-op while tracing is off."""

    __slots__ = ("_span",)

    def __init__(self, otel_span: Span | None) -> None:
        self._span = otel_span

    def set(self, **attributes: AttributeValue | None) -> None:
        if self._span is not None:
            self._span.set_attributes(_attributes(attributes))

    def event(self, name: str, **attributes: AttributeValue | None) -> None:
        if self._span is not None:
            self._span.add_event(name, _attributes(attributes))


_NOOP = nullcontext(SpanHandle(None))


def _attributes(attributes: Mapping[str, AttributeValue | None]) -> dict[str, AttributeValue]:
    return {f"{ATTRIBUTE_PREFIX}{k}": v for k, v in attributes.items() if v is not None}


def span(name: str, **attributes: AttributeValue | None) -> AbstractContextManager[SpanHandle]:
    """A span named ``name`` around the ``with`` block (None-valued attributes are left out)."""
    tracer = _tracer
    if tracer is None:
        return _NOOP
    return _recording(tracer, name, attributes)


@contextmanager
def _recording(
    tracer: Tracer, name: str, attributes: Mapping[str, AttributeValue | None]
) -> Iterator[SpanHandle]:
    from opentelemetry.trace import Status, StatusCode

    with tracer.start_as_current_span(
        name,
        attributes=_attributes(attributes),
        record_exception=False,
        set_status_on_exception=False,
    ) as otel_span:
        try:
            yield SpanHandle(otel_span)
        except Exception as exc:
            otel_span.set_attribute("exception.type", type(exc).__qualname__)
            otel_span.set_status(Status(StatusCode.ERROR, type(exc).__qualname__))
            raise


def traced(name: str, *keyword_attributes: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Make every call of the decorated function a span; the keyword arguments named in
    ``keyword_attributes`` become its attributes (``@traced("ingest", "document_id")``)."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if _tracer is None:
                return function(*args, **kwargs)
            values: dict[str, AttributeValue] = {}
            for key in keyword_attributes:
                value = kwargs.get(key)
                if isinstance(value, str | bool | int | float):  # what a span can hold
                    values[key] = value
            with span(name, **values):
                return function(*args, **kwargs)

        return wrapper

    return decorate


def tracing_active() -> bool:
    return _tracer is not None


def tracer_provider() -> TracerProvider | None:
    """The provider spans go to, or None while tracing is off."""
    return _provider


def tracing_enable(
    *, exporter: SpanExporter | None = None, batch: bool = True, set_global: bool = True
) -> TracerProvider:
    """Start recording spans into ``exporter`` (default: OTLP over HTTP, configured by the
    OTEL_EXPORTER_OTLP_* variables). ``batch=False`` exports each span as it ends (tests).

    ``set_global`` also makes it OpenTelemetry's global provider, for libraries that
    trace through the global API; that can be done once per process, so tests leave it.
    """
    global _tracer, _provider
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    if _provider is not None:
        tracing_disable()
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(
        BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    )
    if set_global:
        trace.set_tracer_provider(provider)
    _provider, _tracer = provider, provider.get_tracer(SERVICE_NAME)
    return provider


def tracing_disable() -> None:
    """Stop recording; spans not yet exported are flushed first."""
    global _tracer, _provider
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def tracing_configure(*, enabled: bool) -> None:
    """At start-up (``config.apps``): trace if the settings say so, once per process."""
    if enabled and _provider is None:
        tracing_enable()
