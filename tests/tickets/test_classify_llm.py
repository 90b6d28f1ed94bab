"""Classification through the gateway against the fake OpenAI-compatible server: the
output contract, the one correction, the fallback to the local classifier, the ledger."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache

from llm.models import LlmCall
from tests.factories import make_account
from tests.support.fake_llm import Fault, Reply, fake_llm_routes
from tickets.classification import classify

pytestmark = pytest.mark.django_db

TICKET = "I was charged twice for my subscription this month, please refund one charge."
VALID = {"category": "billing", "urgency": "high", "sentiment": "negative", "confidence": 0.9}
OFF_SCHEMA = {**VALID, "category": "refunds"}  # not one of the account's categories


@pytest.fixture
def server(settings):
    cache.clear()  # the breakers live in the cache
    settings.CAIRN_BREAKER_THRESHOLD = 100
    with fake_llm_routes(settings, "openai_compatible:fake-model,local:extractive") as fake:
        yield fake


def calls(server) -> list[dict]:
    return [r.body for r in server.requests if r.path.endswith("/chat/completions")]


def rows(request_id: str) -> list[tuple[str, str, bool, str]]:
    return [
        (row.feature, row.provider, row.fallback_used, row.error_class)
        for row in LlmCall.objects.filter(request_id=request_id).order_by("id")
        if not row.feature.startswith("embedding:")
    ]


def test_a_valid_reply_is_used(server) -> None:
    server.script(Reply(text=json.dumps(VALID)))

    result = classify(account=make_account(), text=TICKET, request_id="r-valid")

    assert result.classified_by == "openai_compatible/fake-model"
    assert (result.category, result.urgency, result.sentiment, result.confidence) == (
        "billing", "high", "negative", 0.9,
    )  # fmt: skip
    assert len(calls(server)) == 1
    prompt = calls(server)[0]["messages"]
    assert '"enum": ["billing", "technical", "account", "other"]' in prompt[0]["content"]
    assert TICKET in prompt[-1]["content"]
    assert rows("r-valid") == [("ticket_classify", "openai_compatible", False, "")]


def test_a_schema_violation_gets_exactly_one_correction(server) -> None:
    server.script(Reply(text=json.dumps(OFF_SCHEMA)), Reply(text=json.dumps(VALID)))

    result = classify(account=make_account(), text=TICKET, request_id="r-corrected")

    assert len(calls(server)) == 2
    correction = calls(server)[1]["messages"]
    assert correction[-2] == {"role": "assistant", "content": json.dumps(OFF_SCHEMA)}
    assert "category" in correction[-1]["content"] and "refunds" in correction[-1]["content"]
    assert result.classified_by == "openai_compatible/fake-model"
    assert result.category == "billing"
    assert rows("r-corrected") == [
        ("ticket_classify", "openai_compatible", False, ""),
        ("ticket_classify_correction", "openai_compatible", False, ""),
    ]


def test_invalid_json_is_corrected_too(server) -> None:
    server.script(Reply(text="Sure! The category is billing."), Reply(text=json.dumps(VALID)))

    result = classify(account=make_account(), text=TICKET)

    assert len(calls(server)) == 2
    assert "not valid JSON" in calls(server)[1]["messages"][-1]["content"]
    assert result.category == "billing" and result.classified_by != "local"


def test_a_second_violation_falls_back_to_the_local_classifier(server) -> None:
    server.script(Reply(text=json.dumps(OFF_SCHEMA)), Reply(text='{"category": "billing"}'))

    result = classify(account=make_account(), text=TICKET, request_id="r-fallback")

    assert len(calls(server)) == 2  # one correction, never a second
    assert result.classified_by == "local" and result.category == "billing"
    assert rows("r-fallback") == [
        ("ticket_classify", "openai_compatible", False, ""),
        ("ticket_classify_correction", "openai_compatible", False, ""),
        ("ticket_classify", "local", True, "invalid_output"),
    ]
    local = LlmCall.objects.get(request_id="r-fallback", provider="local",
                                feature="ticket_classify")  # fmt: skip
    assert local.model == "nearest-centroid" and local.cost == 0


def test_a_fallback_is_not_cached(server) -> None:
    account = make_account()
    server.script(Reply(text="no"), Reply(text="still no"), Reply(text=json.dumps(VALID)))
    classify(account=account, text=TICKET)

    again = classify(account=account, text=TICKET)

    assert not again.cached and again.classified_by == "openai_compatible/fake-model"


def test_an_outage_falls_back_to_the_local_classifier(server) -> None:
    server.script(Fault(status=500), Fault(status=500))

    result = classify(account=make_account(), text=TICKET, request_id="r-outage")

    assert len(calls(server)) == 1  # retries are off in these routes; no correction
    assert result.classified_by == "local"
    assert rows("r-outage")[-1] == ("ticket_classify", "local", True, "provider_failed")
    assert LlmCall.objects.filter(request_id="r-outage", status="error").exists()


def test_a_server_that_is_gone_falls_back_to_the_local_classifier(settings) -> None:
    with fake_llm_routes(settings) as server:
        gone = server.openai_base_url
    settings.CAIRN_OPENAI_COMPATIBLE_BASE_URL = gone  # nothing listens there any more
    from llm.providers.registry import reset_providers

    reset_providers()
    try:
        result = classify(account=make_account(), text=TICKET, request_id="r-gone")
    finally:
        reset_providers()

    assert result.classified_by == "local"
    assert rows("r-gone")[-1] == ("ticket_classify", "local", True, "provider_failed")


def test_identical_text_makes_no_second_call(server) -> None:
    account = make_account()
    server.script(Reply(text=json.dumps(VALID)))
    classify(account=account, text=TICKET)

    again = classify(account=account, text=TICKET, request_id="r-cached")

    assert again.cached and again.classified_by == "openai_compatible/fake-model"
    assert len(calls(server)) == 1
    assert rows("r-cached") == []


def test_a_route_of_only_the_extractive_answerer_means_the_local_classifier(settings) -> None:
    with fake_llm_routes(settings, "local:extractive") as server:
        result = classify(account=make_account(), text=TICKET, request_id="r-offline")

    assert calls(server) == []
    assert result.classified_by == "local"
    assert rows("r-offline") == [("ticket_classify", "local", False, "")]
