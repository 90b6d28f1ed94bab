"""Changing the embedding model re-embeds in the background, then switches at once."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from django.db import connection, transaction

from ingest.services.pipeline import document_ingest
from kb.embeddings.inputs import chunk_embedding_input
from kb.embeddings.local import MINILM_MODEL_ID
from kb.models import Chunk
from kb.services.reembedding import (
    ReembeddingRejected,
    ReembedProgress,
    knowledge_base_reembed_start,
    knowledge_base_reembed_step,
)
from tests.factories import upload
from tests.support.fake_openai import fake_vector

pytestmark = pytest.mark.django_db

NEW_MODEL = "openai:text-embedding-3-small"
TEXT = b"# Plans\n\n" + b"\n\n".join(
    f"## Plan {i}\n\nPlan {i} includes {i * 5} seats and support on weekdays.".encode()
    for i in range(6)
)


def test_searches_use_the_old_vectors_until_every_chunk_has_a_new_one(kb, fake_openai) -> None:
    document = upload(kb, "plans.md", TEXT).document
    document_ingest(document_id=document.pk)
    old = {c.pk: np.array(c.embedding) for c in Chunk.objects.filter(knowledge_base=kb)}
    assert len(old) >= 2

    assert knowledge_base_reembed_start(knowledge_base=kb, model_id=NEW_MODEL) is True
    progress = knowledge_base_reembed_step(knowledge_base_id=kb.pk, batch_size=1)

    # Mid-way: the live column and the model are untouched.
    kb.refresh_from_db()
    assert progress.state == "running" and progress.remaining == len(old) - 1
    assert kb.embedding_model == MINILM_MODEL_ID and kb.reembedding_model == NEW_MODEL
    for chunk in Chunk.objects.filter(knowledge_base=kb):
        assert np.allclose(chunk.embedding, old[chunk.pk])

    while progress.state == "running":
        progress = knowledge_base_reembed_step(knowledge_base_id=kb.pk, batch_size=1)

    # Switched in one step: every vector is the new model's, the model is recorded.
    kb.refresh_from_db()
    assert progress.state == "switched"
    assert (kb.embedding_model, kb.reembedding_model) == (NEW_MODEL, "")
    assert kb.content_version == 2
    for chunk in Chunk.objects.filter(knowledge_base=kb):
        expected = fake_vector(
            chunk_embedding_input(heading_path=chunk.heading_path, text=chunk.text), 384
        )
        assert np.allclose(chunk.embedding, expected, atol=1e-5)
        assert chunk.embedding_next is None


def test_documents_ingested_during_reembedding_get_both_vectors(kb, fake_openai) -> None:
    knowledge_base_reembed_start(knowledge_base=kb, model_id=NEW_MODEL)
    document = upload(kb, "plans.md", TEXT).document

    document_ingest(document_id=document.pk)

    chunks = list(Chunk.objects.filter(document=document))
    assert all(chunk.embedding_next is not None for chunk in chunks)
    assert knowledge_base_reembed_step(knowledge_base_id=kb.pk).state == "switched"


def test_an_unknown_model_is_refused(kb) -> None:
    with pytest.raises(ReembeddingRejected, match="unknown embedding model"):
        knowledge_base_reembed_start(knowledge_base=kb, model_id="word2vec")


def _wait_for_a_lock_wait(deadline_seconds: float = 60) -> None:
    """Until some backend of this database waits for a row lock (the blocked swap)."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
        time.sleep(0.05)
    raise AssertionError("the swap never reached the chunk rows")


@pytest.mark.django_db(transaction=True)
def test_uploads_become_ready_while_the_swap_rewrites_the_vectors(kb, fake_openai) -> None:
    # Given a knowledge base whose chunks all have their new vectors but one
    document_ingest(document_id=upload(kb, "plans.md", TEXT).document.pk)
    old = {c.pk: np.array(c.embedding) for c in Chunk.objects.filter(knowledge_base=kb)}
    knowledge_base_reembed_start(knowledge_base=kb, model_id=NEW_MODEL)
    while knowledge_base_reembed_step(knowledge_base_id=kb.pk, batch_size=1).remaining > 1:
        pass
    # ... and a reader holding the first chunk's row, so the swap stops there, mid-way.
    first_pk = min(old)
    holding, release = threading.Event(), threading.Event()

    def hold_first_chunk() -> None:
        try:
            with transaction.atomic():
                list(Chunk.objects.select_for_update().filter(pk=first_pk).values_list("pk"))
                holding.set()
                release.wait(120)
        finally:
            connection.close()

    outcome: dict[str, object] = {}

    def swap() -> None:
        try:
            outcome["progress"] = knowledge_base_reembed_step(
                knowledge_base_id=kb.pk, batch_size=1, swap_batch_size=1
            )
        finally:
            connection.close()

    holder = threading.Thread(target=hold_first_chunk)
    holder.start()
    assert holding.wait(30)
    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        _wait_for_a_lock_wait()

        # When a document is uploaded and ingested while the swap is under way
        # (a lock wait longer than this fails the ingestion instead of hanging the test)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '20s'")
        added = upload(kb, "faq.md", b"# FAQ\n\nRefunds take five working days.").document
        document_ingest(document_id=added.pk)

        # Then it is ready before the swap ends, with both vectors,
        added.refresh_from_db()
        assert added.status == added.Status.READY, added.error
        assert "progress" not in outcome  # the swap is still waiting
        assert all(c.embedding_next is not None for c in Chunk.objects.filter(document=added))
        # and searches still see the old model's vectors only.
        kb.refresh_from_db()
        assert kb.embedding_model == MINILM_MODEL_ID
        for chunk in Chunk.objects.filter(knowledge_base=kb).exclude(document=added):
            assert np.allclose(chunk.embedding, old[chunk.pk])
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
        release.set()
        holder.join(60)
        swapper.join(120)

    # And the swap then switches every chunk, the new document's included, to the new model.
    assert outcome["progress"] == ReembedProgress("switched", 0)
    kb.refresh_from_db()
    assert (kb.embedding_model, kb.reembedding_model) == (NEW_MODEL, "")
    for chunk in Chunk.objects.filter(knowledge_base=kb):
        expected = fake_vector(
            chunk_embedding_input(heading_path=chunk.heading_path, text=chunk.text), 384
        )
        assert np.allclose(chunk.embedding, expected, atol=1e-5)
        assert chunk.embedding_next is None
