"""The gateway's rules: retries, fallbacks, breakers, streaming safety, idempotency, ledger."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from llm.events import CompletionRequest, End, Error, Message, Start, TextDelta, Usage
from llm.gateway import INTERRUPTED_MESSAGE, GatewayRequest, GatewayResult, LlmGateway
from llm.models import LlmCall
from llm.routing import ChainEntry, Route
from tests.chat.scripted import Say, ScriptedProvider, fault

pytestmark = pytest.mark.django_db

QUESTION = CompletionRequest(
    system="Answer from the documents.", messages=(Message("user", "Hi?"),)
)


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.CAIRN_LLM_RETRIES = 2
    settings.CAIRN_BREAKER_THRESHOLD = 100
    settings.CAIRN_LLM_PRICES = json.dumps(
        {"alpha:a1": {"input": 3.0, "output": 15.0}, "beta:b1": {"input": 1.0, "output": 2.0}}
    )
    from django.core.cache import cache

    cache.clear()


def route(*entries: str) -> Route:
    chain = tuple(ChainEntry(*e.split(":")) for e in entries)
    return Route("simple", chain, max_tokens=300, temperature=0.1)


def run(gateway: LlmGateway, request: GatewayRequest) -> tuple[list, GatewayResult]:
    result = GatewayResult()
    return list(gateway.stream(request, result)), result


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def gateway_with(clock: Clock, **providers: ScriptedProvider) -> LlmGateway:
    return LlmGateway(providers=providers, sleep=clock.sleep, clock=clock)


def test_a_good_answer_streams_and_is_priced_in_the_ledger(clock) -> None:
    alpha = ScriptedProvider("alpha").then(Say("Refunds take 14 days.", Usage(1000, 200)))

    events, result = run(
        gateway_with(clock, alpha=alpha), GatewayRequest(QUESTION, route("alpha:a1"))
    )

    assert isinstance(events[0], Start) and isinstance(events[-1], End)
    assert (
        "".join(e.text for e in events if isinstance(e, TextDelta)).strip()
        == "Refunds take 14 days."
    )
    call = LlmCall.objects.get()
    assert (call.provider, call.model, call.status, call.attempt) == ("alpha", "a1", "ok", 1)
    # 1000 x $3 + 200 x $15 per million
    assert call.cost == Decimal("0.00600000") and result.usage == Usage(1000, 200)


def test_retryable_failures_are_retried_with_backoff_honouring_retry_after(clock) -> None:
    alpha = ScriptedProvider("alpha").then(
        fault("rate_limited", status=429, retry_after=1.5), fault("server_error"), Say("ok")
    )

    events, result = run(
        gateway_with(clock, alpha=alpha), GatewayRequest(QUESTION, route("alpha:a1"))
    )

    assert len(alpha.calls) == 3 and result.attempts == 3
    assert clock.slept[0] == 1.5  # Retry-After wins
    assert 0 <= clock.slept[1] <= 1.0  # full jitter: uniform(0, base x 2)
    statuses = list(
        LlmCall.objects.order_by("attempt").values_list("attempt", "status", "error_class")
    )
    assert statuses == [(1, "error", "rate_limited"), (2, "error", "server_error"), (3, "ok", "")]


def test_a_non_retryable_failure_falls_back_at_once(clock) -> None:
    alpha = ScriptedProvider("alpha").then(fault("bad_request", retryable=False, status=400))
    beta = ScriptedProvider("beta").then(Say("from beta"))

    events, result = run(
        gateway_with(clock, alpha=alpha, beta=beta),
        GatewayRequest(QUESTION, route("alpha:a1", "beta:b1")),
    )

    assert len(alpha.calls) == 1 and len(beta.calls) == 1
    assert isinstance(events[0], Start) and events[0].provider == "beta"
    assert result.fallback_used and result.provider == "beta"
    assert LlmCall.objects.get(provider="beta").fallback_used


def test_fallback_calls_get_the_shorter_timeout(clock, settings) -> None:
    settings.CAIRN_LLM_CALL_TIMEOUT, settings.CAIRN_LLM_FALLBACK_CALL_TIMEOUT = 10.0, 5.0
    alpha = ScriptedProvider("alpha").then(fault(retryable=False))
    beta = ScriptedProvider("beta")

    run(
        gateway_with(clock, alpha=alpha, beta=beta),
        GatewayRequest(QUESTION, route("alpha:a1", "beta:b1")),
    )

    assert alpha.calls[0][1].total == 10.0 and beta.calls[0][1].total == 5.0


def test_when_everything_fails_the_static_message_comes_and_attempts_are_capped(
    clock, settings
) -> None:
    alpha = ScriptedProvider("alpha").then(*[fault()] * 10)
    beta = ScriptedProvider("beta").then(*[fault("overloaded", status=529)] * 10)

    events, result = run(
        gateway_with(clock, alpha=alpha, beta=beta),
        GatewayRequest(QUESTION, route("alpha:a1", "beta:b1")),
    )

    retries, chain = settings.CAIRN_LLM_RETRIES, 2
    assert len(alpha.calls) + len(beta.calls) == (retries + 1) * chain
    assert events[0] == Start("static", "fallback")
    assert events[1] == TextDelta(settings.CAIRN_LLM_FALLBACK_MESSAGE)
    assert events[-1] == End("error") and result.failed
    assert LlmCall.objects.filter(status="error").count() == (retries + 1) * chain + 1


def test_a_failure_after_the_first_token_ends_with_an_error_and_no_fallback(clock) -> None:
    from tests.chat.scripted import Fail

    alpha = ScriptedProvider("alpha").then(
        Fail(fault("stream_interrupted").error, after_text="Refunds are")
    )
    beta = ScriptedProvider("beta")

    events, result = run(
        gateway_with(clock, alpha=alpha, beta=beta),
        GatewayRequest(QUESTION, route("alpha:a1", "beta:b1")),
    )

    assert beta.calls == [], "no fallback once text was sent: it would repeat or contradict it"
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "Refunds are "
    assert events[-1] == Error(INTERRUPTED_MESSAGE, "stream_interrupted", retryable=False)
    assert LlmCall.objects.get().status == "interrupted"


def test_an_open_breaker_skips_its_provider_until_the_cool_down_then_probes(
    clock, settings
) -> None:
    settings.CAIRN_BREAKER_THRESHOLD, settings.CAIRN_BREAKER_COOLDOWN = 2, 30.0
    settings.CAIRN_LLM_RETRIES = 0
    alpha = ScriptedProvider("alpha").then(fault(), fault())
    beta = ScriptedProvider("beta")
    gateway = gateway_with(clock, alpha=alpha, beta=beta)
    request = GatewayRequest(QUESTION, route("alpha:a1", "beta:b1"))

    run(gateway, request)
    run(gateway, request)  # second failure opens alpha's breaker
    run(gateway, request)  # skipped: alpha is not called

    assert len(alpha.calls) == 2 and len(beta.calls) == 3
    assert gateway.breaker("alpha:a1").state() == "open"
    assert LlmCall.objects.filter(
        provider="alpha", status="skipped", error_class="circuit_open"
    ).exists()


def test_a_client_retry_with_the_same_idempotency_key_is_not_charged_twice(clock) -> None:
    alpha = ScriptedProvider("alpha").then(Say("Refunds take 14 days.", Usage(1000, 200)))
    gateway = gateway_with(clock, alpha=alpha)
    request = GatewayRequest(QUESTION, route("alpha:a1"), account_id=None, idempotency_key="k-1")

    first, _ = run(gateway, request)
    second, result = run(
        gateway, GatewayRequest(QUESTION, route("alpha:a1"), idempotency_key="k-1")
    )

    assert len(alpha.calls) == 1 and result.replayed
    assert (
        "".join(e.text for e in second if isinstance(e, TextDelta)).strip()
        == "Refunds take 14 days."
    )
    charged = LlmCall.objects.filter(idempotency_key="k-1")
    assert sum(c.cost for c in charged) == Decimal("0.00600000")
    assert charged.filter(cache_hit=True).get().cost == 0


def test_the_request_deadline_stops_retrying(clock, settings) -> None:
    settings.CAIRN_LLM_REQUEST_TIMEOUT = 2.0
    alpha = ScriptedProvider("alpha").then(
        *[fault("rate_limited", status=429, retry_after=1.5)] * 5
    )

    events, result = run(
        gateway_with(clock, alpha=alpha), GatewayRequest(QUESTION, route("alpha:a1"))
    )

    assert len(alpha.calls) == 2  # 0 s, then 1.5 s; a third at 3.0 s would pass the deadline
    assert events[0].provider == "static"


def test_missing_usage_is_estimated_with_the_shipped_tokenizer(clock) -> None:
    alpha = ScriptedProvider("alpha").then(Say("Refunds take fourteen days.", usage=None))

    run(gateway_with(clock, alpha=alpha), GatewayRequest(QUESTION, route("alpha:a1")))

    call = LlmCall.objects.get()
    assert call.tokens_estimated and call.input_tokens > 0 and call.output_tokens > 0
