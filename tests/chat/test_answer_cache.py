"""Exact and semantic answer caches: scoped by account and content version, free when hit,
and a semantic hit only for the same question (same wording rules, same passages)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.test import override_settings

from chat.models import Message as ChatMessage
from chat.services.answers import answer_stream
from chat.services.conversations import conversation_start
from ingest.services.demo import demo_load
from ingest.services.pipeline import document_ingest
from kb.embeddings.local import MINILM_MODEL_ID
from kb.embeddings.queries import _query_embedding, query_embedding
from kb.models import Account, Chunk, Document
from kb.services.documents import accounts_delete
from llm.answer_cache import CacheScope, answer_cache_lookup
from llm.events import CompletionRequest, Message, Usage
from llm.gateway import GatewayRequest, GatewayResult, LlmGateway
from llm.models import LlmCall, SemanticCacheEntry
from llm.routing import ChainEntry, Route
from observability.metrics import scrape_registry
from tests.chat.scripted import Say, ScriptedProvider
from tests.factories import make_account, make_user

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


# --- which semantic hits are served (llm.question_agreement, semantic_match) -------


def sources_ask(gateway, question: str, sources: tuple[int, ...]) -> GatewayResult:
    """Ask through the gateway as the pipeline does: with the question's own passages."""
    completion = CompletionRequest(
        system=f"Answer.\n{CONTEXT}", messages=(Message("user", question),)
    )
    scope = CacheScope(ACCOUNTS["one"], ((10, 3),), MINILM_MODEL_ID)
    result = GatewayResult()
    request = GatewayRequest(
        completion, ROUTE, cache_scope=scope, question=question, cache_sources=sources
    )
    list(gateway.stream(request, result))
    return result


def test_a_cosine_match_that_negates_the_question_is_generated_afresh_and_says_why(alpha) -> None:
    gateway = LlmGateway(providers={"alpha": alpha})
    ask(gateway, "Who can request a refund?")

    negated = ask(gateway, "Who cannot request a refund?")  # cosine 0.958

    assert negated.cached == "" and len(alpha.calls) == 2
    assert negated.cache_reason == "miss:negation"
    answered = LlmCall.objects.filter(provider="alpha").latest("pk")
    assert answered.cache_reason == "miss:negation" and not answered.cache_hit


def test_a_near_twin_that_disagrees_does_not_hide_an_entry_that_agrees() -> None:
    alpha = ScriptedProvider("alpha").then(Say("Every plan."), Say("The Starter plan."))
    gateway = LlmGateway(providers={"alpha": alpha})
    sources_ask(gateway, "Hi, which plan includes SSO? Thanks", (1, 2, 3))
    sources_ask(gateway, "So, which plan does not include SSO?", (1, 2, 3))

    # Nearest: the first (cosine 0.975, no "not"); next: the second (0.970), which agrees.
    asked = sources_ask(gateway, "Hi, which plan does not include SSO? Thanks", (1, 2, 3))

    assert asked.cached == "semantic" and asked.text.strip() == "The Starter plan."
    assert len(alpha.calls) == 2


def test_a_semantic_hit_needs_the_cached_answers_passages_among_the_questions_own(alpha) -> None:
    gateway = LlmGateway(providers={"alpha": alpha})
    sources_ask(gateway, "How long do refunds take?", (11, 12, 13, 14, 15, 16))

    elsewhere = sources_ask(gateway, "So, how long do refunds take?", (21, 11, 12, 13, 14))
    reordered = sources_ask(gateway, "Well, how long do refunds take?", (12, 11, 13, 31, 32))

    assert elsewhere.cached == "" and elsewhere.cache_reason == "miss:sources"
    # The best three cached passages found, the tail may differ: the same question.
    assert reordered.cached == "semantic" and reordered.cache_reason == "hit"


def test_a_passage_the_cached_answer_cites_must_be_found_too() -> None:
    alpha = ScriptedProvider("alpha").then(Say("Within 14 days [5]."), Say("Within 14 days."))
    gateway = LlmGateway(providers={"alpha": alpha})
    sources_ask(gateway, "How long do refunds take?", (11, 12, 13, 14, 15))

    asked = sources_ask(gateway, "So, how long do refunds take?", (11, 12, 13, 14, 16))

    assert asked.cached == "" and asked.cache_reason == "miss:sources"


def test_every_semantic_lookup_is_counted_by_its_reason(alpha) -> None:
    def count(reason: str) -> float:
        value = scrape_registry().get_sample_value(
            "cairn_semantic_cache_lookups_total", {"reason": reason}
        )
        return value or 0.0

    gateway = LlmGateway(providers={"alpha": alpha})
    before = {r: count(r) for r in ("miss:empty", "miss:negation", "hit")}

    ask(gateway, "Who can request a refund?")
    ask(gateway, "Who cannot request a refund?")
    ask(gateway, "Quick question: who can request a refund?")

    assert {r: count(r) - before[r] for r in before} == {
        "miss:empty": 1, "miss:negation": 1, "hit": 1,
    }  # fmt: skip


# --- what a semantic hit writes (llm.answer_cache._hit_count) ---------------------


def _synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


def test_a_paraphrase_cached_for_another_route_is_not_served(alpha) -> None:
    gateway = LlmGateway(providers={"alpha": alpha})
    ask(gateway, "How long do refunds take?")
    other_route = Route("complex", ROUTE.chain, max_tokens=300, temperature=0.1)
    completion = CompletionRequest(
        system=f"Answer from the passages.\n{CONTEXT}",
        messages=(Message("user", "How long do refunds usually take?"),),
    )
    scope = CacheScope(ACCOUNTS["one"], ((10, 3),), MINILM_MODEL_ID)
    result = GatewayResult()
    request = GatewayRequest(
        completion, other_route, cache_scope=scope, question="How long do refunds usually take?"
    )

    list(gateway.stream(request, result))

    assert result.cached == "" and result.cache_reason == "miss:empty"


def test_a_semantic_hit_is_counted_inside_the_callers_transaction(alpha) -> None:
    gateway = LlmGateway(providers={"alpha": alpha})
    ask(gateway, "How long do refunds take?")
    question = "How long do refunds usually take?"
    completion = CompletionRequest(system="Answer.", messages=(Message("user", question),))
    scope = CacheScope(ACCOUNTS["one"], ((10, 3),), MINILM_MODEL_ID)

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO ON")  # whatever came before
        lookup = answer_cache_lookup(
            scope=scope, route=ROUTE.name, question=question, request=completion
        )
        # The asynchronous commit of the counter must not spread to the caller's writes.
        assert _synchronous_commit() == "on"

    assert lookup.reason == "hit"
    assert SemanticCacheEntry.objects.get(account_id=ACCOUNTS["one"]).hits == 1


def test_a_semantic_lookup_reuses_the_vector_retrieval_made(alpha) -> None:
    gateway = LlmGateway(providers={"alpha": alpha})
    ask(gateway, "How long do refunds take?")
    query_embedding(MINILM_MODEL_ID, "How long do refunds usually take?")  # as retrieval does
    misses = _query_embedding.cache_info().misses

    paraphrase = ask(gateway, "How long do refunds usually take?")

    assert paraphrase.cached == "semantic"
    assert _query_embedding.cache_info().misses == misses  # not embedded a second time


@pytest.mark.django_db(transaction=True)
def test_a_semantic_hit_is_counted_in_autocommit_without_changing_the_session(alpha) -> None:
    gateway = LlmGateway(providers={"alpha": alpha})
    ask(gateway, "How long do refunds take?")

    assert not connection.in_atomic_block
    hits = [ask(gateway, q).cached for q in ("How long do refunds usually take?",) * 2]

    assert hits == ["semantic", "semantic"]
    assert SemanticCacheEntry.objects.get(account_id=ACCOUNTS["one"]).hits == 2
    assert _synchronous_commit() == "on"  # set for the counter's statement only


# --- end to end on the demo knowledge base, through the real answer pipeline -------------


@pytest.fixture(scope="module")
def demo_kb(django_db_setup, django_db_blocker, tmp_path_factory):
    """The demo knowledge base, every document parsed and embedded: once for the module
    (ingesting it is the slow part), removed after it."""
    media = override_settings(MEDIA_ROOT=tmp_path_factory.mktemp("demo-media"))
    with django_db_blocker.unblock(), media:
        knowledge_base = demo_load().knowledge_base
        for document in Document.objects.filter(knowledge_base=knowledge_base):
            document_ingest(document_id=document.pk)
    yield knowledge_base
    with django_db_blocker.unblock(), media:
        accounts_delete(accounts=Account.objects.filter(pk=knowledge_base.account_id))


def answered(knowledge_base, question: str) -> tuple[ChatMessage, LlmCall]:
    """Ask as the chat does (a conversation, then its answer stream): the answer and the
    ledger row of the call that produced it."""
    user = make_user(staff=False, account=knowledge_base.account, role="staff")
    _, pending = conversation_start(user_id=user.pk, knowledge_base=knowledge_base, text=question)
    list(answer_stream(message_id=pending.pk, cancelled=lambda: False))
    message = ChatMessage.objects.get(pk=pending.pk)
    call = LlmCall.objects.get(request_id=message.request_id, feature="answer",
                               provider=message.provider, model=message.model)  # fmt: skip
    return message, call


def test_who_cannot_request_a_refund_is_not_answered_with_who_can(demo_kb) -> None:
    first, _ = answered(demo_kb, "Who can request a refund?")

    second, call = answered(demo_kb, "Who cannot request a refund?")

    assert first.cached == "" and SemanticCacheEntry.objects.filter(account=demo_kb.account)
    assert second.cached == ""
    assert call.cache_reason == "miss:negation" and not call.cache_hit


def test_a_paraphrase_on_the_demo_knowledge_base_is_served_from_the_cache(demo_kb) -> None:
    first, _ = answered(demo_kb, "Who can request a refund?")

    again, call = answered(demo_kb, "Quick question: who can request a refund?")

    assert again.cached == "semantic" and again.content == first.content
    assert call.cache_hit and call.cache_reason == "hit" and call.cost == 0


def test_a_paraphrase_whose_retrieval_disagrees_is_generated_afresh(demo_kb) -> None:
    answered(demo_kb, "Who can request a refund?")
    # Given an entry whose answer was written from another article's passages…
    elsewhere = list(
        Chunk.objects.filter(knowledge_base=demo_kb)
        .exclude(document__title__icontains="refund")
        .values_list("pk", flat=True)[:6]
    )
    SemanticCacheEntry.objects.filter(account=demo_kb.account).update(sources=elsewhere)

    again, call = answered(demo_kb, "Quick question: who can request a refund?")

    assert again.cached == "" and call.cache_reason == "miss:sources"
