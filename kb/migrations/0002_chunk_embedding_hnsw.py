"""The HNSW cosine index on chunk embeddings, built without locking writes.

CREATE INDEX CONCURRENTLY cannot run inside a transaction, hence its own
non-atomic migration: on a large production table the build can take minutes
and ingestion must keep writing meanwhile.
"""

import pgvector.django.indexes
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("kb", "0001_initial"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="chunk",
            index=pgvector.django.indexes.HnswIndex(
                name="kb_chunk_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
        ),
    ]
