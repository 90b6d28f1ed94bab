"""Unit embeddings computed once: stored at ingestion, read by every process after.

The embedder is the real one, wrapped to record what it is asked to embed; the table is
the real one in PostgreSQL.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.answering.extractive import ExtractiveAnswerer
from chat.answering.pipeline import AnswerOutcome, AnswerRequest, answer_compose
from ingest.services.pipeline import document_ingest
from kb.embeddings import registry
from kb.embeddings.local import MINILM_MODEL_ID
from kb.embeddings.texts import text_digest, texts_embed, texts_forget
from kb.models import Chunk, Document, KnowledgeBase, TextEmbedding
from kb.selectors.search import chunk_search
from kb.services.documents import knowledge_bases_delete
from kb.units import chunk_units
from llm.gateway import LlmGateway
from tests.chat.conftest import PLANS, REFUNDS
from tests.factories import make_account, make_knowledge_base, upload
from tests.support.tasks import tasks_run_inline

pytestmark = pytest.mark.django_db


class RecordingEmbedder:
    """The real embedder, remembering every text it embedded and the vector it gave."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.model_id, self.dimension = inner.model_id, inner.dimension
        self.embedded: list[str] = []
        self.vectors: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.inner.embed(texts)
        self.embedded.extend(texts)
        self.vectors.update(zip(texts, vectors, strict=True))
        return vectors


@pytest.fixture
def embedder(monkeypatch) -> Iterator[RecordingEmbedder]:
    """The process's MiniLM embedder, recording (the registry hands it to every caller)."""
    recording = RecordingEmbedder(registry.get_embedder(MINILM_MODEL_ID))
    monkeypatch.setitem(registry._instances, MINILM_MODEL_ID, recording)
    texts_forget()
    yield recording
    texts_forget()


def ingested(knowledge_base: KnowledgeBase, django_capture_on_commit_callbacks) -> None:
    """The two help articles ingested as the worker does, the tasks queued on commit run."""
    with tasks_run_inline(), django_capture_on_commit_callbacks(execute=True):
        for name, content in (("plans.md", PLANS), ("refunds.md", REFUNDS)):
            document_ingest(document_id=upload(knowledge_base, name, content).document.pk)


def unit_texts(knowledge_base: KnowledgeBase) -> set[str]:
    """What ingestion stores: each unit as scored, and as an answer quoting it reads."""
    return {
        text
        for chunk in Chunk.objects.filter(knowledge_base=knowledge_base).select_related("document")
        for unit in chunk_units(
            chunk.text, title=chunk.document.title, heading_path=chunk.heading_path
        )
        for text in unit.embedded_texts
    }


def stored(knowledge_base: KnowledgeBase) -> dict[bytes, np.ndarray]:
    return {
        bytes(digest): np.frombuffer(bytes(vector), dtype=np.float32)
        for digest, vector in TextEmbedding.objects.filter(
            knowledge_base=knowledge_base, model_id=MINILM_MODEL_ID
        ).values_list("digest", "vector")
    }


def ask(knowledge_base: KnowledgeBase, question: str) -> AnswerOutcome:
    """The whole answer path with the extractive answerer (retrieval, rerank, quoting, the
    citation check); the semantic answer cache off, so every call computes."""
    outcome = AnswerOutcome()
    request = AnswerRequest(
        account=knowledge_base.account, knowledge_base=knowledge_base, question=question,
        use_cache=False,
    )  # fmt: skip
    gateway = LlmGateway(providers={"local": ExtractiveAnswerer(token_delay=0)})
    list(answer_compose(request, outcome, gateway=gateway))
    return outcome


def test_a_ready_document_has_its_units_stored_by_the_task_queued_on_commit(
    kb, embedder, django_capture_on_commit_callbacks
) -> None:
    ingested(kb, django_capture_on_commit_callbacks)

    units = unit_texts(kb)
    rows = stored(kb)
    assert units and set(rows) == {text_digest(text) for text in units}
    for text in units:  # the embedder's float32 values, byte for byte
        assert np.array_equal(rows[text_digest(text)], embedder.vectors[text])


def test_the_document_is_ready_before_its_units_are_embedded(kb, embedder) -> None:
    # Given no worker ran the queued task (the test's transaction never commits)
    document = upload(kb, "plans.md", PLANS).document

    document_ingest(document_id=document.pk)

    document.refresh_from_db()
    assert document.status == Document.Status.READY
    assert not TextEmbedding.objects.filter(knowledge_base=kb).exists()


def test_a_fresh_process_reads_the_stored_vectors_instead_of_embedding(
    kb, embedder, django_capture_on_commit_callbacks
) -> None:
    ingested(kb, django_capture_on_commit_callbacks)
    units = unit_texts(kb)
    texts_forget()  # what a new web process remembers
    embedder.embedded.clear()

    result = chunk_search(
        account=kb.account, knowledge_bases=[kb], query="How much is the Growth plan?",
        rerank=True,
    )  # fmt: skip
    outcome = ask(kb, "How much does the Growth plan cost?")

    assert result.hits and outcome.status == "done"
    assert not set(embedder.embedded) & units  # every unit vector came from the table


def test_the_citation_check_reads_the_quotes_vectors_from_the_table_too(
    kb, embedder, django_capture_on_commit_callbacks
) -> None:
    ingested(kb, django_capture_on_commit_callbacks)
    question = "How long do refunds take?"
    first = ask(kb, question)
    texts_forget()  # a new process, asked the same question
    embedder.embedded.clear()

    again = ask(kb, question)

    assert again.text == first.text and again.status == "done"
    assert set(embedder.embedded) <= {question}  # at most the question itself


def test_vectors_are_looked_up_in_one_query_and_written_through(kb, embedder) -> None:
    texts = ["Refunds arrive within 5 business days.", "The Starter plan has one user."]
    first = texts_embed(MINILM_MODEL_ID, texts, knowledge_base_id=kb.pk)
    texts_forget()
    embedder.embedded.clear()

    with CaptureQueriesContext(connection) as queries:
        again = texts_embed(MINILM_MODEL_ID, texts, knowledge_base_id=kb.pk)

    assert embedder.embedded == []
    assert np.array_equal(first, again)
    assert TextEmbedding.objects.filter(knowledge_base=kb).count() == 2
    assert len([q for q in queries if "kb_textembedding" in q["sql"]]) == 1


def test_another_knowledge_base_does_not_read_these_vectors(kb, embedder) -> None:
    text = "Refunds arrive within 5 business days."
    texts_embed(MINILM_MODEL_ID, [text], knowledge_base_id=kb.pk)
    other = make_knowledge_base(make_account(), "Other")
    texts_forget()
    embedder.embedded.clear()

    texts_embed(MINILM_MODEL_ID, [text], knowledge_base_id=other.pk)

    assert embedder.embedded == [text]  # embedded again, and stored for the other one too
    assert TextEmbedding.objects.filter(digest=text_digest(text)).count() == 2


def test_deleting_a_knowledge_base_deletes_its_vectors_and_no_one_elses(
    kb, embedder, django_capture_on_commit_callbacks
) -> None:
    ingested(kb, django_capture_on_commit_callbacks)
    other = make_knowledge_base(kb.account, "Other")
    texts_forget()
    texts_embed(MINILM_MODEL_ID, sorted(unit_texts(kb))[:3], knowledge_base_id=other.pk)
    assert TextEmbedding.objects.filter(knowledge_base=kb).exists()

    knowledge_bases_delete(knowledge_bases=KnowledgeBase.objects.filter(pk=kb.pk))

    assert not TextEmbedding.objects.filter(knowledge_base_id=kb.pk).exists()
    assert TextEmbedding.objects.filter(knowledge_base=other).count() == 3


def test_a_failed_write_does_not_fail_the_search(
    kb, embedder, django_capture_on_commit_callbacks
) -> None:
    ingested(kb, django_capture_on_commit_callbacks)
    question = "How do I ask for a refund?"
    expected = [hit.chunk.pk for hit in chunk_search(
        account=kb.account, knowledge_bases=[kb], query=question, rerank=True
    ).hits]  # fmt: skip
    # Given the table refuses every write (a real error from PostgreSQL) and nothing is stored
    TextEmbedding.objects.all().delete()
    texts_forget()
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION pg_temp.refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'disk full'; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON kb_textembedding "
            "FOR EACH ROW EXECUTE FUNCTION pg_temp.refuse()"
        )

    result = chunk_search(account=kb.account, knowledge_bases=[kb], query=question, rerank=True)

    assert [hit.chunk.pk for hit in result.hits] == expected
    assert not TextEmbedding.objects.exists()  # and the test's transaction still works


def test_a_write_for_a_deleted_knowledge_base_is_dropped_without_breaking_the_caller(
    kb, embedder
) -> None:
    vectors = texts_embed(MINILM_MODEL_ID, ["Some sentence here."], knowledge_base_id=10**9)

    assert vectors.shape == (1, 384)
    assert KnowledgeBase.objects.filter(pk=kb.pk).exists()  # the transaction goes on


def test_the_answer_is_the_same_from_memory_from_the_table_and_from_neither(
    kb, embedder, django_capture_on_commit_callbacks
) -> None:
    ingested(kb, django_capture_on_commit_callbacks)
    questions = ["How much does the Growth plan cost?", "How long do refunds take?"]

    def answers() -> list[tuple[str, list[str]]]:
        return [
            (o.text, [s.text for s in o.sentences])
            for o in (ask(kb, question) for question in questions)
        ]

    texts_forget()
    from_table = answers()
    from_memory = answers()
    TextEmbedding.objects.all().delete()
    texts_forget()
    from_neither = answers()

    assert from_table == from_memory == from_neither
    assert all("[1]" in text or "[2]" in text for text, _ in from_table)  # real answers


def test_the_command_fills_and_prunes_a_knowledge_base(kb, embedder) -> None:
    # Given a knowledge base ingested before unit vectors were stored, and a stale row
    document_ingest(document_id=upload(kb, "plans.md", PLANS).document.pk)
    texts_embed(MINILM_MODEL_ID, ["A sentence no chunk has."], knowledge_base_id=kb.pk)

    out = io.StringIO()

    call_command("units_embed", "--kb", kb.slug, "--prune", stdout=out)

    assert "1 pruned" in out.getvalue()
    assert set(stored(kb)) == {text_digest(text) for text in unit_texts(kb)}
