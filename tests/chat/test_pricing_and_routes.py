"""Prices per call, and how routes are configured and chosen."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from llm.events import Usage
from llm.models import LlmCall, LlmRoute
from llm.pricing import call_cost, parse_price_table
from llm.routing import (
    COMPLEX,
    SIMPLE,
    ChainEntry,
    classify_question,
    parse_chain,
    route_named,
)

TABLE = parse_price_table(
    json.dumps(
        {
            "anthropic:claude-haiku": {
                "input": 1.0,
                "output": 5.0,
                "cache_read": 0.1,
                "cache_write": 1.25,
            },
            "openai:gpt-4o-mini": {"input": 0.15, "output": 0.6},
        }
    )
)


def test_cached_prompt_tokens_are_priced_as_such() -> None:
    # 10,000 prompt tokens: 6,000 read from cache, 1,000 written to it, 3,000 plain; 500 out
    usage = Usage(10_000, 500, cache_read_tokens=6_000, cache_write_tokens=1_000)

    cost = call_cost(usage, TABLE["anthropic:claude-haiku"])

    # (3,000 x 1.0 + 6,000 x 0.1 + 1,000 x 1.25 + 500 x 5.0) / 1e6
    assert cost == Decimal("0.00735000")


def test_cache_prices_default_to_the_input_price() -> None:
    usage = Usage(1_000_000, 1_000_000, cache_read_tokens=400_000)

    assert call_cost(usage, TABLE["openai:gpt-4o-mini"]) == Decimal("0.75000000")


def test_chains_parse_and_reject_malformed_entries() -> None:
    assert parse_chain(" anthropic:claude-haiku , local:extractive ") == (
        ChainEntry("anthropic", "claude-haiku"),
        ChainEntry("local", "extractive"),
    )
    with pytest.raises(ValueError, match="is not provider:model"):
        parse_chain("gpt-4o")


@pytest.mark.django_db
def test_an_admin_route_overrides_the_environment(settings) -> None:
    settings.CAIRN_ROUTES = {
        "simple": {"chain": "openai:gpt-4o-mini", "max_tokens": 500, "temperature": 0.1}
    }
    assert route_named("simple").chain == (ChainEntry("openai", "gpt-4o-mini"),)

    LlmRoute.objects.create(name="simple", chain="anthropic:claude-haiku, openai:gpt-4o-mini",
                            max_tokens=300, temperature=0.0)  # fmt: skip

    route = route_named("simple")
    assert [e.key for e in route.chain] == ["anthropic:claude-haiku", "openai:gpt-4o-mini"]
    assert (route.max_tokens, route.temperature) == (300, 0.0)


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What does the Growth plan cost?", SIMPLE),
        ("Why was my bank sync paused?", COMPLEX),
        ("Compare the Starter and Growth plans", COMPLEX),
        ("How do refunds work? And what about credits?", COMPLEX),
        (" ".join(["word"] * 60), COMPLEX),
    ],
)
def test_the_classifier_sends_reasoning_and_long_questions_to_complex(question, expected) -> None:
    assert classify_question(question) == expected


@pytest.mark.django_db
def test_the_ledger_is_visible_per_account_in_the_admin(client) -> None:
    from django.urls import reverse

    from tests.factories import make_account, make_user

    mine, theirs = make_account("Mine"), make_account("Theirs")
    for account, model in ((mine, "my-model"), (theirs, "their-model")):
        LlmCall.objects.create(request_id="r", account=account, feature="answer",
                               provider="openai", model=model, status="ok")  # fmt: skip
    client.force_login(make_user(account=mine, role="staff"))

    page = client.get(reverse("admin:llm_llmcall_changelist")).content.decode()

    assert "my-model" in page and "their-model" not in page


@pytest.mark.django_db
def test_a_route_with_a_malformed_chain_is_refused_in_the_admin(admin_client) -> None:
    from django.urls import reverse

    response = admin_client.post(
        reverse("admin:llm_llmroute_add"),
        {"name": "simple", "chain": "gpt-4o", "max_tokens": 300, "temperature": 0.1},
    )

    assert "is not provider:model" in response.content.decode()
    assert not LlmRoute.objects.exists()
