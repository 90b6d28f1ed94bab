"""The SDK providers against the fake servers: the real ``openai`` and ``anthropic`` SDKs
on the real wire protocols, over loopback, with scripted faults."""

from __future__ import annotations

import email.utils
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from kb.embeddings.tokens import count_tokens
from llm.errors import FirstTokenTimeout, ProviderError
from llm.events import CompletionRequest, End, Event, Message, Start, TextDelta, Usage
from llm.providers.anthropic_messages import AnthropicProvider
from llm.providers.base import CallTimeouts, Provider
from llm.providers.openai_chat import OpenAIChatProvider, parse_retry_after
from tests.support.fake_llm import (
    Disconnect,
    FakeLLMServer,
    Fault,
    MalformedJson,
    Reply,
    SlowFirstToken,
    StreamError,
    WrongShape,
    running_fake_llm,
    split_text,
)

REQUEST = CompletionRequest(
    system="You answer questions from Ledgerly's help centre, citing sources.",
    messages=(
        Message("user", "How do I export invoices?"),
        Message("assistant", "From the Invoices page."),
        Message("user", "And as CSV?"),
    ),
    max_tokens=256,
    temperature=0.2,
)
TIMEOUTS = CallTimeouts(connect=2.0, first_token=5.0, total=10.0)
FAST_FIRST_TOKEN = CallTimeouts(connect=2.0, first_token=0.3, total=10.0)
GENEROUS = 2.5  # upper bound, in seconds, for anything that should take ~0.3 s


@dataclass
class Api:
    """One provider under test, with what differs between the two APIs."""

    name: str
    server: FakeLLMServer

    def provider(self, *, streaming: bool = True) -> Provider:
        if self.name == "anthropic":
            return AnthropicProvider(
                "sk-ant-test", self.server.anthropic_base_url, streaming=streaming
            )
        return OpenAIChatProvider(
            "sk-test", self.server.openai_base_url, name=self.name, streaming=streaming
        )

    @property
    def model(self) -> str:
        return "claude-test" if self.name == "anthropic" else "gpt-test"

    @property
    def response_id_prefix(self) -> str:
        return "msg_" if self.name == "anthropic" else "chatcmpl-"

    def run(
        self, *, streaming: bool = True, timeouts: CallTimeouts = TIMEOUTS
    ) -> tuple[list[Event], ProviderError | None]:
        return collect(
            self.provider(streaming=streaming).stream(REQUEST, model=self.model, timeouts=timeouts)
        )


def collect(events: Iterator[Event]) -> tuple[list[Event], ProviderError | None]:
    seen: list[Event] = []
    try:
        for event in events:
            seen.append(event)
    except ProviderError as exc:
        return seen, exc
    return seen, None


def texts(events: list[Event]) -> list[str]:
    return [event.text for event in events if isinstance(event, TextDelta)]


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with running_fake_llm() as fake:
        yield fake
    assert fake.errors == [], "the fake server itself failed"


@pytest.fixture(params=["openai", "anthropic"])
def api(request: pytest.FixtureRequest, server: FakeLLMServer) -> Api:
    return Api(request.param, server)


# --- replies --------------------------------------------------------------------------------


def test_streamed_reply_is_start_deltas_usage_end(api: Api) -> None:
    api.server.script(Reply(text="Hello world", chunks=5, input_tokens=30, output_tokens=2))

    events, error = api.run()

    assert error is None
    start = events[0]
    assert isinstance(start, Start) and start.request_id
    assert start.request_id.startswith(api.response_id_prefix)
    assert events == [
        Start(provider=api.name, model=api.model, request_id=start.request_id),
        *[TextDelta(piece) for piece in split_text("Hello world", 5)],
        Usage(input_tokens=30, output_tokens=2),
        End("stop"),
    ]
    assert "".join(texts(events)) == "Hello world"
    assert not api.server.client_disconnected.is_set()


def test_non_streaming_reply_is_the_same_events_with_one_delta(api: Api) -> None:
    api.server.script(Reply(text="Hello world", input_tokens=30, output_tokens=2))

    events, error = api.run(streaming=False)

    assert error is None
    assert [type(event) for event in events] == [Start, TextDelta, Usage, End]
    assert events[1:] == [TextDelta("Hello world"), Usage(30, 2), End("stop")]
    assert api.server.requests[0].body["stream"] is False


@pytest.mark.parametrize(
    ("finish_reason", "expected"), [("length", "length"), ("content_filter", "content_filter")]
)
def test_finish_reasons_are_mapped(api: Api, finish_reason: str, expected: str) -> None:
    api.server.script(Reply(finish_reason=finish_reason))

    events, error = api.run()

    assert error is None and events[-1] == End(expected)  # type: ignore[arg-type]


def test_openai_usage_includes_cached_prompt_tokens(server: FakeLLMServer) -> None:
    server.script(Reply(input_tokens=1200, output_tokens=7, cache_read_tokens=1024))

    events, _ = Api("openai", server).run()

    assert Usage(input_tokens=1200, output_tokens=7, cache_read_tokens=1024) in events


def test_anthropic_usage_counts_cache_reads_and_writes_into_input(server: FakeLLMServer) -> None:
    """Anthropic's input_tokens leaves the cached tokens out; Usage counts every prompt token."""
    server.script(
        Reply(input_tokens=1500, output_tokens=9, cache_read_tokens=1024, cache_write_tokens=300)
    )

    events, _ = Api("anthropic", server).run()

    assert Usage(1500, 9, cache_read_tokens=1024, cache_write_tokens=300) in events


def test_compatible_server_without_usage_gets_an_estimate(server: FakeLLMServer) -> None:
    server.script(Reply(text="Use Export, then pick CSV.", usage=False))

    events, error = Api("openai_compatible", server).run()

    assert error is None
    prompt = [REQUEST.system, *(message.content for message in REQUEST.messages)]
    expected_input = sum(count_tokens(part) for part in prompt)
    assert events[-2] == Usage(
        input_tokens=expected_input,
        output_tokens=count_tokens("Use Export, then pick CSV."),
        estimated=True,
    )
    assert events[-1] == End("stop")


# --- what goes over the wire ------------------------------------------------------------------


def test_openai_request_streams_with_usage_and_system_first(server: FakeLLMServer) -> None:
    Api("openai", server).run()

    (sent,) = server.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
    assert sent.body["messages"] == [
        {"role": "system", "content": REQUEST.system},
        {"role": "user", "content": "How do I export invoices?"},
        {"role": "assistant", "content": "From the Invoices page."},
        {"role": "user", "content": "And as CSV?"},
    ]
    assert sent.body["temperature"] == 0.2
    assert sent.body["max_completion_tokens"] == 256 and "max_tokens" not in sent.body


def test_compatible_servers_get_max_tokens(server: FakeLLMServer) -> None:
    Api("openai_compatible", server).run()

    assert server.requests[0].body["max_tokens"] == 256
    assert "max_completion_tokens" not in server.requests[0].body


def test_anthropic_request_marks_the_system_prompt_for_caching(server: FakeLLMServer) -> None:
    Api("anthropic", server).run()

    (sent,) = server.requests
    assert sent.path == "/v1/messages"
    assert sent.headers["anthropic-version"]
    assert sent.body["system"] == [
        {"type": "text", "text": REQUEST.system, "cache_control": {"type": "ephemeral"}}
    ]
    assert sent.body["messages"][0] == {"role": "user", "content": "How do I export invoices?"}
    assert sent.body["stream"] is True and sent.body["max_tokens"] == 256
    assert "temperature" not in sent.body  # API 2026-10-21 answers 400 to sampling parameters


# --- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error_class", "retryable", "retry_after"),
    [
        (Fault(429, retry_after=2), "rate_limited", True, 2.0),
        (Fault(429, retry_after_ms=1500), "rate_limited", True, 1.5),
        (Fault(500), "server_error", True, None),
        (Fault(502), "server_error", True, None),
        (Fault(503, retry_after="7"), "server_error", True, 7.0),
        (Fault(529), "overloaded", True, None),
        (Fault(500, should_retry=False), "server_error", False, None),
        (Fault(400), "bad_request", False, None),
        (Fault(401), "auth_error", False, None),
    ],
)
def test_http_errors_are_classified_after_exactly_one_request(
    api: Api, fault: Fault, error_class: str, retryable: bool, retry_after: float | None
) -> None:
    api.server.script(fault, Reply())  # a retry inside the SDK would get the Reply

    events, error = api.run()

    assert events == []
    assert error is not None
    assert (error.error_class, error.retryable, error.status) == (
        error_class,
        retryable,
        fault.status,
    )
    assert error.retry_after == retry_after
    assert len(api.server.requests) == 1
    assert api.server.requests[0].headers["x-stainless-retry-count"] == "0"


def test_retry_after_as_http_date(api: Api) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    api.server.script(Fault(429, retry_after=when))

    _, error = api.run()

    assert error is not None and error.retry_after is not None
    assert 20 <= error.retry_after <= 31


def test_anthropic_overloaded_body_is_parsed(server: FakeLLMServer) -> None:
    server.script(Fault(529, message="Overloaded"))

    _, error = Api("anthropic", server).run()

    assert error is not None and "Overloaded" in str(error)


def test_malformed_json_mid_stream(api: Api) -> None:
    api.server.script(MalformedJson(after_chunks=2, text="abcdefgh", chunks=4))

    events, error = api.run()

    assert texts(events) == ["ab", "cd"]
    assert error is not None
    assert (error.error_class, error.retryable) == ("malformed_response", True)


def test_stream_event_of_the_wrong_shape(api: Api) -> None:
    api.server.script(WrongShape(after_chunks=1, text="abcd", chunks=2))

    events, error = api.run()

    assert texts(events) == ["ab"]
    assert error is not None
    assert (error.error_class, error.retryable) == ("malformed_response", True)


def test_non_streaming_body_of_the_wrong_shape(api: Api) -> None:
    api.server.script(WrongShape())

    events, error = api.run(streaming=False)

    assert events == []
    assert error is not None and error.error_class == "malformed_response"


def test_malformed_json_non_streaming(api: Api) -> None:
    api.server.script(MalformedJson())

    events, error = api.run(streaming=False)

    assert events == []
    assert error is not None and error.error_class == "malformed_response"


def test_disconnect_mid_stream_after_text(api: Api) -> None:
    api.server.script(Disconnect(after_chunks=2, text="abcdefghijkl", chunks=6))

    events, error = api.run()

    assert texts(events) == ["ab", "cd"]
    assert error is not None
    assert (error.error_class, error.retryable) == ("stream_interrupted", True)


def test_disconnect_before_any_response(api: Api) -> None:
    api.server.script(Disconnect(before_headers=True))

    events, error = api.run()

    assert events == []
    assert error is not None
    assert (error.error_class, error.retryable) == ("connection_error", True)


def test_error_event_inside_the_stream(api: Api) -> None:
    kind = "overloaded_error" if api.name == "anthropic" else "server_error"
    api.server.script(StreamError(after_chunks=1, error_type=kind, text="abcd", chunks=2))

    events, error = api.run()

    assert texts(events) == ["ab"]
    assert error is not None
    expected_class = "overloaded" if api.name == "anthropic" else "server_error"
    assert (error.error_class, error.retryable, error.status) == (expected_class, True, None)


def test_connection_refused(api: Api) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    provider: Provider = (
        AnthropicProvider("sk-ant-test", url)
        if api.name == "anthropic"
        else OpenAIChatProvider("sk-test", f"{url}/v1")
    )

    events, error = collect(provider.stream(REQUEST, model=api.model, timeouts=TIMEOUTS))

    assert events == []
    assert error is not None
    assert (error.error_class, error.retryable, error.status) == ("connection_error", True, None)


# --- timeouts and closing ---------------------------------------------------------------------


def test_first_token_timeout_despite_keepalive_traffic(api: Api) -> None:
    """Pings keep the socket busy, so only the watchdog can tell that no text came."""
    api.server.script(SlowFirstToken(seconds=5, keepalive_every=0.05))

    started = time.monotonic()
    events, error = api.run(timeouts=FAST_FIRST_TOKEN)

    assert isinstance(error, FirstTokenTimeout)
    assert (error.error_class, error.retryable) == ("first_token_timeout", True)
    assert time.monotonic() - started < GENEROUS
    assert texts(events) == []
    assert api.server.client_disconnected.wait(GENEROUS)  # the response was closed


def test_first_token_timeout_before_the_response_headers(api: Api) -> None:
    api.server.script(SlowFirstToken(seconds=5, before_headers=True))

    started = time.monotonic()
    events, error = api.run(timeouts=FAST_FIRST_TOKEN)

    assert isinstance(error, FirstTokenTimeout)
    assert events == []
    assert time.monotonic() - started < GENEROUS


def test_a_slow_first_token_within_the_limit_is_fine(api: Api) -> None:
    api.server.script(SlowFirstToken(seconds=0.1, then=Reply(text="late but fine")))

    events, error = api.run(timeouts=CallTimeouts(connect=2.0, first_token=3.0, total=5.0))

    assert error is None and "".join(texts(events)) == "late but fine"


def test_total_timeout_ends_a_trickling_stream(api: Api) -> None:
    api.server.script(Reply(text="x" * 60, chunks=60, chunk_delay=0.05))

    started = time.monotonic()
    events, error = api.run(timeouts=CallTimeouts(connect=2.0, first_token=1.0, total=0.5))

    assert error is not None
    assert (error.error_class, error.retryable) == ("timeout", True)
    assert 0 < len(texts(events)) < 60
    assert time.monotonic() - started < GENEROUS


def test_closing_the_generator_closes_the_connection(api: Api) -> None:
    api.server.script(Reply(text="y" * 200, chunks=100, chunk_delay=0.02))
    events = api.provider().stream(REQUEST, model=api.model, timeouts=TIMEOUTS)

    assert isinstance(next(events), Start)
    assert isinstance(next(events), TextDelta)
    events.close()  # type: ignore[attr-defined]

    assert api.server.client_disconnected.wait(GENEROUS)


# --- Retry-After ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after": "-4"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # in the past
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_http_date_in_the_future() -> None:
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 120, usegmt=True)

    assert parse_retry_after({"retry-after": date}, now=now) == 120.0
