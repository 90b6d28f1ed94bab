"""Changing the embedding model re-embeds in the background, then switches at once."""

from __future__ import annotations

import numpy as np
import pytest

from ingest.services.pipeline import document_ingest
from kb.embeddings.inputs import chunk_embedding_input
from kb.embeddings.local import MINILM_MODEL_ID
from kb.models import Chunk
from kb.services.reembedding import (
    ReembeddingRejected,
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
