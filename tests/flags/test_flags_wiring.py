"""Flags in the answer path: the semantic cache, the prompt version and a route's chain
follow the asker's variant, and every answer and ledger row records the variants.

Answers go the way the chat sends them (a conversation, then its answer stream), through
the real gateway; the model is the fake OpenAI-compatible server on loopback, or the local
extractive answerer.
"""

from __future__ import annotations

import pytest
from django.test import override_settings

from chat.models import Message
from chat.services.answers import answer_stream
from chat.services.conversations import conversation_start
from ingest.services.demo import demo_load
from ingest.services.pipeline import document_ingest
from kb.models import Account, Document
from kb.services.documents import accounts_delete
from llm.models import LlmCall
from llm.providers.registry import reset_providers
from tests.flags.conftest import make_flag, users_on_each_side
from tests.support.fake_llm import Reply, fake_llm_routes, running_fake_llm

pytestmark = pytest.mark.django_db

ANSWER = "The Growth plan costs $59 per month or $590 per year [1]."


def ask_as(user, knowledge_base, question: str) -> tuple[Message, list[LlmCall]]:
    """The answer to ``question`` asked by ``user`` in a new conversation, and the ledger
    rows of the model calls that made it."""
    _, pending = conversation_start(user_id=user.pk, knowledge_base=knowledge_base, text=question)
    list(answer_stream(message_id=pending.pk, cancelled=lambda: False))
    message = Message.objects.get(pk=pending.pk)
    calls = list(LlmCall.objects.filter(request_id=message.request_id, feature="answer"))
    return message, calls


@pytest.fixture(scope="module")
def demo_kb(django_db_setup, django_db_blocker, tmp_path_factory):
    """The demo knowledge base, ingested once for the module, removed after it."""
    media = override_settings(MEDIA_ROOT=tmp_path_factory.mktemp("demo-media"))
    with django_db_blocker.unblock(), media:
        knowledge_base = demo_load().knowledge_base
        for document in Document.objects.filter(knowledge_base=knowledge_base):
            document_ingest(document_id=document.pk)
    yield knowledge_base
    with django_db_blocker.unblock(), media:
        accounts_delete(accounts=Account.objects.filter(pk=knowledge_base.account_id))


def test_a_semantic_cache_off_rollout_answers_its_users_afresh(demo_kb) -> None:
    account = demo_kb.account
    flag = make_flag(account, "semantic_cache", "off", percent=50)
    inside, outside = users_on_each_side(flag, account)
    first, _ = ask_as(outside, demo_kb, "Who can request a refund?")
    assert first.flags == {}

    # A user outside the rollout gets the paraphrase from the semantic cache…
    served, (served_call,) = ask_as(outside, demo_kb, "Quick question: who can request a refund?")
    # …and one inside it an answer made afresh, with no semantic lookup at all
    fresh, fresh_calls = ask_as(inside, demo_kb, "Quick question: who can request a refund?")

    assert served.cached == "semantic" and served_call.cache_reason == "hit"
    assert fresh.cached == "" and fresh.status == "done"
    (fresh_call,) = [call for call in fresh_calls if call.status == "ok"]
    assert not fresh_call.cache_hit and fresh_call.cache_reason == "off:flag"
    assert fresh.flags == {"semantic_cache": "off"} and fresh_call.flags == fresh.flags
    assert served.flags == {} and served_call.flags == {}


def test_a_prompt_version_rollout_uses_and_records_its_version(settings, help_kb) -> None:
    account = help_kb.account
    flag = make_flag(account, "prompt_version", "v1", percent=50)
    inside, outside = users_on_each_side(flag, account)

    with fake_llm_routes(settings) as server:
        server.default = Reply(text=ANSWER)
        variant, variant_calls = ask_as(inside, help_kb, "How much is the Growth plan?")
        variant_prompt = server.requests[-1].body["messages"][0]["content"]
        # The same question from the control group: not served the v1 answer from a cache
        control, control_calls = ask_as(outside, help_kb, "How much is the Growth plan?")
        control_prompt = server.requests[-1].body["messages"][0]["content"]

    assert len(server.requests) == 2 and control.cached == ""
    assert variant.prompt_version == "answer/v1" and control.prompt_version == "answer/v2"
    assert "CAIRN-CANARY-" not in variant_prompt  # v1 has no canary line; v2 has
    assert "CAIRN-CANARY-" in control_prompt
    assert variant.flags == {"prompt_version": "v1"} and control.flags == {}
    assert [call.flags for call in variant_calls] == [{"prompt_version": "v1"}]
    assert [call.flags for call in control_calls] == [{}]


def test_a_route_chain_rollout_sends_its_users_to_the_flags_chain(settings, help_kb) -> None:
    account = help_kb.account
    # The routes stay on the local extractive answerer; the flag's chain is the fake server.
    flag = make_flag(account, "route_chain:simple", "openai_compatible:flag-model", percent=50)
    inside, outside = users_on_each_side(flag, account)

    with running_fake_llm() as server:
        settings.CAIRN_OPENAI_COMPATIBLE_BASE_URL = server.openai_base_url
        settings.CAIRN_LLM_RETRIES = 0
        reset_providers()
        try:
            server.default = Reply(text=ANSWER)
            variant, (variant_call,) = ask_as(inside, help_kb, "How much is the Growth plan?")
            control, (control_call,) = ask_as(outside, help_kb, "How much is the Growth plan?")
        finally:
            reset_providers()

    assert [r.body["model"] for r in server.requests] == ["flag-model"]
    assert (variant.route, variant.provider, variant.model) == (
        "simple", "openai_compatible", "flag-model",
    )  # fmt: skip
    assert (control.provider, control.model) == ("local", "extractive")
    assert control.cached == ""  # the variant's answer was cached apart
    expected = {"route_chain:simple": "openai_compatible:flag-model"}
    assert variant.flags == expected and variant_call.flags == expected
    assert control.flags == {} and control_call.flags == {}


def test_an_answer_over_the_api_is_bucketed_by_its_api_key(help_kb) -> None:
    from kb.models import ApiKey

    account = help_kb.account
    make_flag(account, "prompt_version", "v1", percent=100)
    key = ApiKey.objects.create(account=account, name="ci", prefix="pfx", digest="dgst")

    _, pending = conversation_start(
        user_id=None, api_key_id=key.pk, knowledge_base=help_kb, text="How much is Growth?"
    )
    list(answer_stream(message_id=pending.pk, cancelled=lambda: False))

    answer = Message.objects.get(pk=pending.pk)
    assert answer.flags == {"prompt_version": "v1"} and answer.prompt_version == "answer/v1"
