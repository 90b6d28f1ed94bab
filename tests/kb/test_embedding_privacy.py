"""Embeddings follow the account's privacy rules, as answers do.

A local-only account never gets an API embedding model (refused where the model is
chosen, and again by the embedder when it is called); with redact_pii, text sent to an
API embedding model has its PII replaced by placeholders; the local model sees text as is.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from ingest.services.pipeline import document_ingest
from kb.embeddings.base import EmbeddingError
from kb.embeddings.local import MINILM_MODEL_ID
from kb.embeddings.registry import get_embedder
from kb.embeddings.usage import embedding_context
from kb.models import Account, Chunk, Document
from kb.services.reembedding import ReembeddingRejected, knowledge_base_reembed_start
from tests.factories import upload
from tests.support.api import api_client, error_of

pytestmark = pytest.mark.django_db

API_MODEL = "openai:text-embedding-3-small"
PII_TEXT = "Write to jane.doe@example.com or call +44 20 7946 0958 about refunds."


def _policy(account: Account, *, local_only: bool = False, redact: bool = False) -> None:
    account.local_providers_only, account.redact_pii = local_only, redact
    account.save(update_fields=["local_providers_only", "redact_pii"])


def _sent_inputs(fake_openai) -> list[str]:
    return [text for request in fake_openai.requests for text in request["body"]["input"]]


# --- local_providers_only: refused where the model is chosen ------------------------------


def test_the_admin_refuses_an_api_model_for_a_local_only_account(kb, client) -> None:
    _policy(kb.account, local_only=True)
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-12345678")
    client.force_login(admin)
    form = {
        "account": kb.account.pk, "name": kb.name, "slug": kb.slug, "description": "",
        "embedding_model": API_MODEL,
    }  # fmt: skip

    response = client.post(reverse("admin:kb_knowledgebase_change", args=[kb.pk]), form)

    assert response.status_code == 200  # the form again, with the error
    assert "allows local providers only" in response.content.decode()
    kb.refresh_from_db()
    assert (kb.embedding_model, kb.reembedding_model) == (MINILM_MODEL_ID, "")


def test_reembedding_with_an_api_model_is_refused_for_a_local_only_account(kb) -> None:
    _policy(kb.account, local_only=True)

    with pytest.raises(ReembeddingRejected, match="local providers only"):
        knowledge_base_reembed_start(knowledge_base=kb, model_id=API_MODEL)

    kb.refresh_from_db()
    assert kb.reembedding_model == ""


def test_the_api_refuses_a_knowledge_base_for_a_local_only_account_when_the_default_is_an_api_model(
    kb, settings
) -> None:
    _policy(kb.account, local_only=True)
    settings.CAIRN_EMBEDDING_MODEL = API_MODEL
    client, _, _ = api_client(kb.account, ["ingest"])

    response = client.post("/api/v1/knowledge-bases", {"name": "Private"}, format="json")

    assert response.status_code == 400
    assert "local providers only" in error_of(response)["message"]
    assert not kb.account.knowledge_bases.filter(name="Private").exists()


# --- local_providers_only: the embedder refuses at call time --------------------------------


def test_the_api_embedder_sends_nothing_for_a_local_only_account(kb, fake_openai) -> None:
    # Given a knowledge base that got an API model before its account became local-only
    kb.embedding_model = API_MODEL
    kb.save(update_fields=["embedding_model"])
    _policy(kb.account, local_only=True)
    document = upload(kb, "faq.md", b"# FAQ\n\nRefunds take five days.").document

    document_ingest(document_id=document.pk)

    document.refresh_from_db()
    assert document.status == Document.Status.FAILED
    assert "local providers only" in document.error
    assert fake_openai.requests == []


def test_the_call_time_refusal_is_permanent_not_retried(kb, fake_openai) -> None:
    _policy(kb.account, local_only=True)

    with (
        embedding_context(account_id=kb.account_id, feature="query"),
        pytest.raises(EmbeddingError) as raised,
    ):
        get_embedder(API_MODEL).embed(["refunds"])

    assert raised.value.transient is False
    assert fake_openai.requests == []


# --- redact_pii ----------------------------------------------------------------------------


def test_text_sent_to_an_api_embedding_model_is_pii_redacted(kb, fake_openai) -> None:
    _policy(kb.account, redact=True)
    kb.embedding_model = API_MODEL
    kb.save(update_fields=["embedding_model"])
    document = upload(kb, "contact.md", f"# Contact\n\n{PII_TEXT}".encode()).document

    document_ingest(document_id=document.pk)

    sent = " ".join(_sent_inputs(fake_openai))
    assert "[EMAIL_1]" in sent and "[PHONE_1]" in sent
    assert "jane.doe@example.com" not in sent and "7946" not in sent
    # What is stored and shown stays the real text.
    assert "jane.doe@example.com" in Chunk.objects.get(document=document).text


def test_questions_are_redacted_the_same_way_so_they_stay_comparable(kb, fake_openai) -> None:
    _policy(kb.account, redact=True)

    with embedding_context(account_id=kb.account_id, feature="query"):
        get_embedder(API_MODEL).embed(["Who reads jane.doe@example.com?"])

    assert _sent_inputs(fake_openai) == ["Who reads [EMAIL_1]?"]


def test_without_redact_pii_the_api_model_receives_the_text_as_it_is(kb, fake_openai) -> None:
    _policy(kb.account, redact=False)

    with embedding_context(account_id=kb.account_id, feature="query"):
        get_embedder(API_MODEL).embed([PII_TEXT])

    assert _sent_inputs(fake_openai) == [PII_TEXT]


def test_the_local_model_is_allowed_for_a_local_only_account(kb) -> None:
    _policy(kb.account, local_only=True, redact=True)
    document = upload(kb, "contact.md", f"# Contact\n\n{PII_TEXT}".encode()).document

    document_ingest(document_id=document.pk)

    document.refresh_from_db()
    assert document.status == Document.Status.READY
