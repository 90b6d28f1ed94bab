"""Every reliability branch of the gateway, with the official SDKs against fake servers.

The fake servers (tests/support/fake_llm.py) speak OpenAI's and Anthropic's real wire
protocols; attempt counts are read from the requests they received.
"""

from __future__ import annotations

import json
import socket
from decimal import Decimal

import pytest
from django.core.cache import cache

from llm.events import CompletionRequest, End, Error, Message, Start, TextDelta
from llm.gateway import INTERRUPTED_MESSAGE, GatewayRequest, GatewayResult, LlmGateway
from llm.models import LlmCall
from llm.providers.anthropic_messages import AnthropicProvider
from llm.providers.openai_chat import OpenAIChatProvider
from llm.routing import ChainEntry, Route
from tests.support.fake_llm import (
    Disconnect,
    Fault,
    MalformedJson,
    Reply,
    SlowFirstToken,
    running_fake_llm,
)

pytestmark = pytest.mark.django_db

QUESTION = CompletionRequest(
    system="You answer from the documents.",
    messages=(Message("user", "How long do refunds take?"),),
)
RETRIES = 2
CHAIN = (ChainEntry("openai", "gpt-test"), ChainEntry("anthropic", "claude-test"))


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.CAIRN_LLM_RETRIES = RETRIES
    settings.CAIRN_BREAKER_THRESHOLD = 100
    # Well under the scripted slow first token (2 s), yet with room for a loaded 2-core
    # machine: 0.4 s once timed out an ordinary first call there.
    settings.CAIRN_LLM_FIRST_TOKEN_TIMEOUT = 1.0
    settings.CAIRN_LLM_CALL_TIMEOUT = 3.0
    settings.CAIRN_LLM_FALLBACK_CALL_TIMEOUT = 3.0
    claude = {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75}
    settings.CAIRN_LLM_PRICES = json.dumps(
        {
            "openai:gpt-test": {"input": 2.0, "output": 8.0, "cache_read": 0.5},
            "anthropic:claude-test": claude,
        }
    )
    cache.clear()


@pytest.fixture
def server():
    with running_fake_llm() as fake:
        yield fake


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)  # recorded, not slept: the tests stay fast


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def gateway(server, sleeps) -> LlmGateway:
    return LlmGateway(
        providers={
            "openai": OpenAIChatProvider("sk-test", base_url=server.openai_base_url, name="openai"),
            "anthropic": AnthropicProvider("sk-ant-test", base_url=server.anthropic_base_url),
        },
        sleep=sleeps,
    )


def calls_to(server, api: str) -> int:
    suffix = "/chat/completions" if api == "openai" else "/messages"
    return sum(1 for r in server.requests if r.path.endswith(suffix))


def run(gateway: LlmGateway, *chain: ChainEntry, key: str = "") -> tuple[list, GatewayResult]:
    result = GatewayResult()
    route = Route("simple", chain or CHAIN, max_tokens=200, temperature=0.1)
    events = list(gateway.stream(GatewayRequest(QUESTION, route, idempotency_key=key), result))
    return events, result


def text_of(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 529])
def test_a_retryable_status_is_retried_then_answered(gateway, server, sleeps, status) -> None:
    server.script(Fault(status=status), Reply(text="Refunds take 14 days."))

    events, result = run(gateway)

    assert calls_to(server, "openai") == 2 and calls_to(server, "anthropic") == 0
    assert text_of(events) == "Refunds take 14 days." and result.provider == "openai"
    assert len(sleeps.calls) == 1


def test_retry_after_is_honoured(gateway, server, sleeps) -> None:
    server.script(Fault(status=429, retry_after=2), Reply())

    run(gateway)

    assert sleeps.calls == [2.0]


def test_a_provider_down_falls_back_after_its_retries(gateway, server, sleeps) -> None:
    server.script(*[Fault(status=503)] * (RETRIES + 1), Reply(text="From the fallback."))

    events, result = run(gateway)

    assert calls_to(server, "openai") == RETRIES + 1 and calls_to(server, "anthropic") == 1
    assert text_of(events) == "From the fallback." and result.fallback_used
    assert LlmCall.objects.filter(provider="anthropic", fallback_used=True, status="ok").exists()


def test_a_bad_request_is_not_retried(gateway, server) -> None:
    server.script(Fault(status=400), Reply(text="Fallback."))

    run(gateway)

    assert calls_to(server, "openai") == 1 and calls_to(server, "anthropic") == 1


def test_connection_errors_are_retried_then_fall_back(server, sleeps) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    gateway = LlmGateway(
        providers={
            "openai": OpenAIChatProvider("sk", base_url=f"http://127.0.0.1:{closed_port}/v1"),
            "anthropic": AnthropicProvider("sk", base_url=server.anthropic_base_url),
        },
        sleep=sleeps,
    )

    events, result = run(gateway)

    errors = LlmCall.objects.filter(provider="openai").values_list("error_class", flat=True)
    assert list(errors) == ["connection_error"] * (RETRIES + 1)
    assert result.provider == "anthropic" and text_of(events)


def test_a_slow_first_token_times_out_and_is_retried(gateway, server) -> None:
    server.script(SlowFirstToken(seconds=2.0), Reply(text="Quick this time."))

    events, _ = run(gateway)

    assert calls_to(server, "openai") == 2
    assert text_of(events) == "Quick this time."
    assert LlmCall.objects.filter(error_class="first_token_timeout").count() == 1


def test_malformed_json_before_any_text_is_retried(gateway, server) -> None:
    server.script(MalformedJson(after_chunks=0), Reply(text="Clean answer."))

    events, _ = run(gateway)

    assert calls_to(server, "openai") == 2 and text_of(events) == "Clean answer."


def test_a_disconnect_after_text_ends_with_an_error_and_no_duplicate_text(gateway, server) -> None:
    server.script(
        Disconnect(after_chunks=2, text="Refunds are paid back within fourteen days.", chunks=4)
    )

    events, result = run(gateway)

    assert calls_to(server, "openai") == 1 and calls_to(server, "anthropic") == 0
    sent = text_of(events)
    assert sent and "Refunds are paid back within fourteen days.".startswith(sent)
    assert isinstance(events[-1], Error) and events[-1].message == INTERRUPTED_MESSAGE
    assert sum(isinstance(e, Start) for e in events) == 1
    assert result.failed and LlmCall.objects.get().status == "interrupted"


def test_everything_down_gives_the_static_message_within_the_attempt_cap(
    gateway, server, settings
) -> None:
    server.script(*[Fault(status=500)] * 20)

    events, result = run(gateway)

    total = calls_to(server, "openai") + calls_to(server, "anthropic")
    assert total == (RETRIES + 1) * len(CHAIN)
    assert events[0] == Start("static", "fallback") and events[-1] == End("error")
    assert text_of(events) == settings.CAIRN_LLM_FALLBACK_MESSAGE


def test_an_open_breaker_is_skipped_without_a_request(gateway, server, settings) -> None:
    settings.CAIRN_BREAKER_THRESHOLD, settings.CAIRN_LLM_RETRIES = 1, 0
    server.script(Fault(status=503), Reply(text="anthropic answers"), Reply(text="anthropic again"))

    run(gateway)
    run(gateway)

    assert calls_to(server, "openai") == 1 and calls_to(server, "anthropic") == 2
    assert gateway.breaker("openai:gpt-test").state() == "open"


def test_a_client_retry_with_the_same_key_is_answered_once_and_charged_once(
    gateway, server
) -> None:
    server.script(Reply(text="Refunds take 14 days.", input_tokens=1000, output_tokens=100))

    first, _ = run(gateway, key="retry-1")
    second, result = run(gateway, key="retry-1")

    assert calls_to(server, "openai") == 1
    assert text_of(second) == text_of(first) and result.replayed
    costs = LlmCall.objects.filter(idempotency_key="retry-1").values_list("cost", "cache_hit")
    assert sorted(costs) == [(Decimal(0), True), (Decimal("0.00280000"), False)]


def test_anthropic_prompt_caching_is_requested_and_cache_reads_are_priced_as_such(
    gateway, server
) -> None:
    server.script(
        Reply(text="Cached.", input_tokens=10_000, output_tokens=100, cache_read_tokens=8_000)
    )

    run(gateway, ChainEntry("anthropic", "claude-test"))

    body = server.requests[-1].body
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    call = LlmCall.objects.get()
    assert (call.input_tokens, call.cache_read_tokens) == (10_000, 8_000)
    # 2,000 x $3 + 8,000 x $0.3 + 100 x $15, per million
    assert call.cost == Decimal("0.00990000")


def test_total_attempts_never_exceed_retries_plus_one_times_the_chain(gateway, server) -> None:
    server.script(*[Fault(status=429)] * 3, *[Fault(status=529)] * 3)

    run(gateway)

    assert len(server.requests) <= (RETRIES + 1) * len(CHAIN)
    assert LlmCall.objects.exclude(provider="static").count() == len(server.requests)
