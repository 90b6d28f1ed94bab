"""The HNSW index on the embeddings cast to halfvec, with m=24 and ef_construction=100.

Measured by benchmarks/halfvec.py on the 2-core machine (SQuAD chunks replicated and
spread, half of the rows another tenant's, recall@10 against an exact scan, 500 queries,
two builds each):

    100k rows, ef_search 200   recall@10   index     vector channel p50/p95
    vector  m=16 efc=64        0.932       195 MiB   2.0 / 3.6 ms
    halfvec m=16 efc=64        0.934       112 MiB   1.3 / 2.2 ms
    vector  m=24 efc=100       0.961       195 MiB   2.3 / 3.8 ms
    halfvec m=24 efc=100       0.960       116 MiB   1.5 / 2.3 ms

halfvec keeps recall (within 0.003 at ef_search 200 and 400) at 60 % of the size and is
faster; m=24/ef_construction=100 lifts recall by 0.03 at 100k and by 0.1 at 500k (0.71 ->
0.82 at ef_search 200 on that corpus), for 1.6x the build time. The column stays full
precision: exact scans and the distances returned use it; only the index stores 2 bytes
a dimension.

Online: the new index is built with CREATE INDEX CONCURRENTLY (hence a non-atomic
migration, like 0002) while the old one keeps serving; the old one is then dropped
concurrently and the new one takes its name, so whatever refers to
``kb_chunk_embedding_hnsw`` refers to the index searches use. Searches order by the halfvec
expression, which the old index cannot serve: until this migration has run, new code
answers every search by the exact scan (correct, slower), so migrate before deploying.
"""

import pgvector.django.halfvec
import pgvector.django.indexes
from django.contrib.postgres.indexes import OpClass
from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations
from django.db.models.functions import Cast


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("kb", "0011_keyword_index"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="chunk",
            index=pgvector.django.indexes.HnswIndex(
                OpClass(
                    Cast("embedding", pgvector.django.halfvec.HalfVectorField(dimensions=384)),
                    name="halfvec_cosine_ops",
                ),
                name="kb_chunk_embedding_hnsw_half",
                m=24,
                ef_construction=100,
            ),
        ),
        RemoveIndexConcurrently(model_name="chunk", name="kb_chunk_embedding_hnsw"),
        migrations.RenameIndex(
            model_name="chunk",
            new_name="kb_chunk_embedding_hnsw",
            old_name="kb_chunk_embedding_hnsw_half",
        ),
    ]
