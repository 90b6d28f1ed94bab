"""An answer does no work twice: its question is embedded once, and nothing else is.

Ingestion stores the vectors of every quotable unit, both as the reranker and the answerer
score it and as an answer quoting it reads (kb.units.Unit.embedded_texts), so the citation
check finds them too. The prompt-injection guard (run twice on the way in) and retrieval
share the question's one embedding. The embedder is the real one, wrapped in the registry
to count what it is asked; the vectors are read from the real table in PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from chat.models import Message
from chat.services.answers import answer_stream
from chat.services.conversations import conversation_start
from ingest.services.pipeline import document_ingest
from kb.embeddings import registry
from kb.embeddings.local import MINILM_MODEL_ID, SMALL_BATCH
from kb.embeddings.queries import _query_embedding
from kb.embeddings.texts import texts_forget
from kb.guard.injection import injection_scan
from kb.models import KnowledgeBase
from tests.chat.conftest import PLANS, REFUNDS
from tests.factories import upload
from tests.support.tasks import tasks_run_inline

pytestmark = pytest.mark.django_db


class CountingEmbedder:
    """The real embedder, keeping every batch of texts it was asked to embed."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.model_id, self.dimension = inner.model_id, inner.dimension
        self.batches: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(list(texts))
        return self.inner.embed(texts)

    @property
    def embedded(self) -> list[str]:
        return [text for batch in self.batches for text in batch]


@pytest.fixture
def embedder(monkeypatch, settings) -> Iterator[CountingEmbedder]:
    """The registry's MiniLM, counting; the process warmed up as ops.warmup warms it
    (the guard's reference phrases are embedded once per process, before any question)."""
    settings.CAIRN_EXTRACTIVE_TOKEN_DELAY_MS = 0
    injection_scan("How do I export my invoices?")
    counting = CountingEmbedder(registry.get_embedder(MINILM_MODEL_ID))
    monkeypatch.setitem(registry._instances, MINILM_MODEL_ID, counting)
    yield counting
    texts_forget()
    _query_embedding.cache_clear()


@pytest.fixture
def ingested_kb(kb, embedder, django_capture_on_commit_callbacks) -> KnowledgeBase:
    """``kb`` with two help articles ingested as the worker ingests them (the units task
    queued on commit included), then seen by a fresh web process: nothing in memory."""
    with tasks_run_inline(), django_capture_on_commit_callbacks(execute=True):
        for name, content in (("plans.md", PLANS), ("refunds.md", REFUNDS)):
            document_ingest(document_id=upload(kb, name, content).document.pk)
    texts_forget()
    _query_embedding.cache_clear()
    embedder.batches.clear()
    return kb


def ask(knowledge_base: KnowledgeBase, question: str) -> Message:
    """A question as the chat and the API ask it: checked, recorded, answered, persisted."""
    _, answer = conversation_start(user_id=None, knowledge_base=knowledge_base, text=question)
    for _ in answer_stream(message_id=answer.pk, cancelled=lambda: False):
        pass
    return Message.objects.get(pk=answer.pk)


def test_an_answer_embeds_its_question_once_and_nothing_else(ingested_kb, embedder) -> None:
    question = "How much does the Growth plan cost?"

    answer = ask(ingested_kb, question)

    assert answer.status == Message.Status.DONE and "[1]" in answer.content
    assert answer.provider == "local" and answer.citations.exists()
    # The guard twice, retrieval, the reranker, the answerer and the citation check:
    # one embedding of the question, every unit and quote read from the table.
    assert embedder.batches == [[question]]


def test_the_next_question_embeds_only_itself(ingested_kb, embedder) -> None:
    ask(ingested_kb, "How much does the Growth plan cost?")
    embedder.batches.clear()

    answer = ask(ingested_kb, "How long do refunds take to arrive?")

    assert answer.status == Message.Status.DONE
    assert embedder.batches == [["How long do refunds take to arrive?"]]


def test_a_question_of_several_lines_is_still_embedded_as_retrieval_writes_it(
    ingested_kb, embedder
) -> None:
    # The guard reads the question as asked; retrieval collapses its whitespace.
    question = "How much does the Growth plan cost?\nPer year, please."

    ask(ingested_kb, question)

    assert embedder.embedded.count(question) == 1  # the guard's, for both its scans
    assert embedder.embedded.count(" ".join(question.split())) == 1  # retrieval's


def test_a_few_texts_are_embedded_on_one_thread_and_the_setting_is_restored(
    monkeypatch,
) -> None:
    import torch

    minilm = registry.get_embedder(MINILM_MODEL_ID)
    model = minilm._load()  # type: ignore[attr-defined]
    seen: list[int] = []
    encode = model.encode

    def spying_encode(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return encode(*args, **kwargs)

    monkeypatch.setattr(model, "encode", spying_encode)
    before = torch.get_num_threads()

    minilm.embed(["How much does the Growth plan cost?"])
    minilm.embed([f"Sentence number {n}." for n in range(SMALL_BATCH + 1)])

    assert seen[0] == 1
    assert seen[1] == before  # a batch keeps the threads it was given
    assert torch.get_num_threads() == before
