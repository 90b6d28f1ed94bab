"""What leaves for a third-party provider: PII redacted (per account), and nothing at all
for accounts that allow local providers only.

The provider is the real ``openai`` SDK talking to the fake OpenAI-compatible server on
loopback, so the assertions read the request bodies exactly as a provider would receive
them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from chat.models import Message
from llm.events import CompletionRequest, ContextPassage
from llm.events import Message as ChatMessage
from llm.models import LlmCall, LlmRoute, SemanticCacheEntry
from llm.privacy import PlaceholderRestorer, completion_redact
from llm.providers.registry import reset_providers
from tests.support.api import api_client
from tests.support.fake_llm import Reply, fake_llm_routes

pytestmark = pytest.mark.django_db

ANSWERS = "/api/v1/answers"
ASKER_EMAIL = "jane.doe@customer.example"
ASKER_CARD = "4111 1111 1111 1111"
QUESTION = f"My card {ASKER_CARD} was charged twice; I am {ASKER_EMAIL}. How do I ask for a refund?"


@pytest.fixture
def fake_llm(settings) -> Iterator:
    with fake_llm_routes(settings, "openai_compatible:fake-model,local:extractive") as server:
        yield server


def sent_text(server) -> str:
    """Everything the provider received, as one string."""
    return "\n".join(json.dumps(r.body) for r in server.requests)


def ask(account, question: str = QUESTION):
    client, _, _ = api_client(account, ["answer"])
    response = client.post(ANSWERS, {"question": question}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


# --- the restorer on its own -------------------------------------------------------------


@pytest.mark.parametrize("cut", range(1, len("Write to [EMAIL_1] today [1].")))
def test_a_placeholder_cut_anywhere_by_the_stream_is_restored_whole(cut: int) -> None:
    streamed = "Write to [EMAIL_1] today [1]."
    restorer = PlaceholderRestorer({"[EMAIL_1]": ASKER_EMAIL})

    shown = [restorer.feed(streamed[:cut]), restorer.feed(streamed[cut:]), restorer.flush()]

    assert "".join(shown) == f"Write to {ASKER_EMAIL} today [1]."
    assert not any("[EMA" in piece or "IL_1]" in piece for piece in shown)


def test_one_value_keeps_one_placeholder_across_system_history_passages_and_question() -> None:
    completion = CompletionRequest(
        system="You answer for Ledgerly.",
        messages=(
            ChatMessage("user", f"I am {ASKER_EMAIL}"),
            ChatMessage("assistant", "Hello."),
            ChatMessage("user", f"Passage: contact {ASKER_EMAIL}. Question: is {ASKER_EMAIL} ok?"),
        ),
        question=f"is {ASKER_EMAIL} ok?",
        passages=(ContextPassage(1, f"contact {ASKER_EMAIL}"),),
    )

    redacted, mapping = completion_redact(completion)

    assert mapping == {"[EMAIL_1]": ASKER_EMAIL}
    everything = json.dumps([redacted.system, [m.content for m in redacted.messages],
                             redacted.question, redacted.passages[0].text])  # fmt: skip
    assert ASKER_EMAIL not in everything and everything.count("[EMAIL_1]") == 5


# --- through the API, to a provider on the wire ---------------------------------------------


def test_personal_data_never_reaches_a_third_party_provider_but_the_asker_reads_it(
    help_kb, fake_llm
) -> None:
    # The model sees two addresses (the passage's and the asker's) as [EMAIL_1], [EMAIL_2].
    fake_llm.script(
        Reply("Write to [EMAIL_1] with your workspace name [1]. "
              "Say you are [EMAIL_2] and name the card [CARD_1].", chunks=29)
    )  # fmt: skip

    answer = ask(help_kb.account)

    sent = sent_text(fake_llm)
    assert fake_llm.requests, "the provider was called"
    assert ASKER_EMAIL not in sent and "4111" not in sent
    assert "[EMAIL_1]" in sent and "[EMAIL_2]" in sent and "[CARD_1]" in sent
    # The document's own address is personal data too: redacted on the way out, restored back.
    assert "billing@ledgerly.example" not in sent
    assert ASKER_EMAIL in answer["answer"] and ASKER_CARD in answer["answer"]
    assert "billing@ledgerly.example" in answer["answer"]
    assert "[EMAIL_" not in answer["answer"] and "[CARD_" not in answer["answer"]
    stored = Message.objects.get(pk=answer["message_id"])
    assert ASKER_EMAIL in stored.content  # the asker's own history shows what was said


def test_an_account_that_switches_redaction_off_sends_the_prompt_as_it_is(
    help_kb, fake_llm
) -> None:
    help_kb.account.redact_pii = False
    help_kb.account.save(update_fields=["redact_pii"])
    fake_llm.script(Reply("Write to billing@ledgerly.example with your workspace name [1]."))

    ask(help_kb.account)

    assert ASKER_EMAIL in sent_text(fake_llm)


def test_a_local_provider_gets_the_real_text(help_kb, settings, fake_llm) -> None:
    """An on-premises server declared local is not a third party: nothing to redact."""
    settings.CAIRN_OPENAI_COMPATIBLE_LOCAL = True
    reset_providers()
    fake_llm.script(Reply("Write to billing@ledgerly.example with your workspace name [1]."))

    ask(help_kb.account)

    assert ASKER_EMAIL in sent_text(fake_llm)


def test_questions_with_personal_data_stay_out_of_the_answer_caches(help_kb, fake_llm) -> None:
    reply = Reply("Write to billing@ledgerly.example with your workspace name [1]. "
                  "Mention [EMAIL_2].")  # fmt: skip
    fake_llm.script(reply, reply)

    first = ask(help_kb.account)
    other = ask(help_kb.account, QUESTION.replace("jane.doe", "john.roe"))

    assert len(fake_llm.requests) == 2, "the second asker was not served the first's answer"
    assert "john.roe@customer.example" in other["answer"] and ASKER_EMAIL in first["answer"]
    assert ASKER_EMAIL not in other["answer"]
    assert not SemanticCacheEntry.objects.exists()
    assert not LlmCall.objects.filter(cache_hit=True).exists()


def test_an_account_without_consent_never_reaches_a_third_party_provider(help_kb, fake_llm) -> None:
    help_kb.account.local_providers_only = True
    help_kb.account.save(update_fields=["local_providers_only"])

    answer = ask(help_kb.account, "How do I ask for a refund?")

    assert fake_llm.requests == []
    assert answer["provider"] == "local"
    assert "billing@ledgerly.example" in answer["answer"]
    assert not LlmCall.objects.exclude(provider="local").exists()


def test_without_consent_a_chain_of_third_parties_only_still_answers_locally(
    help_kb, fake_llm
) -> None:
    LlmRoute.objects.update(chain="openai_compatible:fake-model")
    help_kb.account.local_providers_only = True
    help_kb.account.save(update_fields=["local_providers_only"])

    answer = ask(help_kb.account, "How do I ask for a refund?")

    assert fake_llm.requests == [] and answer["provider"] == "local"
    assert "billing@ledgerly.example" in answer["answer"]
