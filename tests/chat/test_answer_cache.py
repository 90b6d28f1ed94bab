"""Exact and semantic answer caches: scoped by account and content version, free when hit."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.cache import cache

from chat.llm.answer_cache import CacheScope
from chat.llm.events import CompletionRequest, Message, Usage
from chat.llm.gateway import GatewayRequest, GatewayResult, LlmGateway
from chat.llm.routing import ChainEntry, Route
from chat.models import LlmCall
from kb.embeddings.local import MINILM_MODEL_ID
from tests.chat.scripted import Say, ScriptedProvider
from tests.factories import make_account

pytestmark = pytest.mark.django_db

ROUTE = Route("simple", (ChainEntry("alpha", "a1"),), max_tokens=300, temperature=0.1)
CONTEXT = "Passages: [1] Refunds are paid within 14 days."


ACCOUNTS: dict[str, int] = {}


@pytest.fixture(autouse=True)
def _clean(settings):
    settings.CAIRN_LLM_PRICES = '{"alpha:a1": {"input": 1.0, "output": 1.0}}'
    cache.clear()
    ACCOUNTS.update(one=make_account("One").pk, two=make_account("Two").pk)


def ask(
    gateway, question: str, *, account: str = "one", version: int = 3, history=()
) -> GatewayResult:
    account_id = ACCOUNTS[account]
    completion = CompletionRequest(
        system=f"Answer from the passages.\n{CONTEXT}",
        messages=(*history, Message("user", question)),
    )
    scope = CacheScope(account_id, ((10, version),), MINILM_MODEL_ID)
    result = GatewayResult()
    list(gateway.stream(
        GatewayRequest(completion, ROUTE, account_id=None, cache_scope=scope, question=question),
        result,
    ))  # fmt: skip
    return result


@pytest.fixture
def alpha() -> ScriptedProvider:
    return ScriptedProvider("alpha").then(*[Say("Within 14 days.", Usage(500, 10))] * 10)


def test_the_same_question_is_answered_from_the_exact_cache_at_no_cost(alpha) -> None:
    gateway = LlmGateway(providers={"alpha": alpha})

    first = ask(gateway, "How long do refunds take?")
    second = ask(gateway, "  how long do REFUNDS take?  ")

    assert len(alpha.calls) == 1
    assert (first.cached, second.cached) == ("", "exact")
    assert second.text.strip() == first.text.strip()
    hit = LlmCall.objects.get(cache_hit=True)
    assert hit.cost == Decimal(0) and hit.provider == "alpha"


def test_a_paraphrase_is_answered_from_the_semantic_cache(alpha) -> None:
    gateway = LlmGateway(providers={"alpha": alpha})
    ask(gateway, "How long do refunds take?")

    paraphrase = ask(gateway, "How long do refunds usually take?")  # cosine 0.988

    assert paraphrase.cached == "semantic" and len(alpha.calls) == 1


def test_a_different_question_is_not_served_from_the_cache(alpha) -> None:
    gateway = LlmGateway(providers={"alpha": alpha})
    ask(gateway, "How long do refunds take?")

    other = ask(gateway, "Which identity providers support single sign-on?")

    assert other.cached == "" and len(alpha.calls) == 2


def test_changed_documents_invalidate_cached_answers(alpha) -> None:
    gateway = LlmGateway(providers={"alpha": alpha})
    ask(gateway, "How long do refunds take?", version=3)

    after_change = ask(gateway, "How long do refunds take?", version=4)

    assert after_change.cached == "" and len(alpha.calls) == 2


def test_another_account_never_gets_this_accounts_answer(alpha) -> None:
    gateway = LlmGateway(providers={"alpha": alpha})
    ask(gateway, "How long do refunds take?", account="one")

    other = ask(gateway, "How long do refunds take?", account="two")

    assert other.cached == "" and len(alpha.calls) == 2


def test_follow_up_questions_are_not_cached(alpha) -> None:
    gateway = LlmGateway(providers={"alpha": alpha})
    history = (Message("user", "How long do refunds take?"), Message("assistant", "14 days."))

    ask(gateway, "And for Enterprise?", history=history)
    again = ask(gateway, "And for Enterprise?", history=history)

    assert again.cached == "" and len(alpha.calls) == 2


def test_cached_entries_expire(alpha, settings) -> None:
    settings.CAIRN_ANSWER_CACHE_TTL = 0  # stored already expired
    gateway = LlmGateway(providers={"alpha": alpha})
    ask(gateway, "How long do refunds take?")

    again = ask(gateway, "How long do refunds take?")

    assert again.cached == "" and len(alpha.calls) == 2
