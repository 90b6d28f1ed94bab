"""Embeddings of short texts (quotable units) per knowledge base, read by every process
instead of embedding the same sentences again (kb.embeddings.texts).

The foreign key is declared here, not by Django: Django's are DEFERRABLE INITIALLY
DEFERRED, so a row written inside a caller's transaction for a knowledge base deleted
meanwhile would fail that caller's COMMIT. This one is checked at once (inside the
savepoint the write runs in) and cascades in the database too.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("kb", "0009_document_live_version"),
    ]

    operations = [
        migrations.CreateModel(
            name="TextEmbedding",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),  # fmt: skip
                ("model_id", models.CharField(max_length=200)),
                ("digest", models.BinaryField(max_length=32)),
                ("vector", models.BinaryField()),
                (
                    "knowledge_base",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="kb.knowledgebase",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("knowledge_base", "model_id", "digest"),
                        name="kb_textembedding_unique",
                    )
                ],
            },
        ),
        migrations.RunSQL(
            "ALTER TABLE kb_textembedding ADD CONSTRAINT kb_textembedding_knowledge_base_fk "
            "FOREIGN KEY (knowledge_base_id) REFERENCES kb_knowledgebase (id) ON DELETE CASCADE",
            "ALTER TABLE kb_textembedding DROP CONSTRAINT kb_textembedding_knowledge_base_fk",
        ),
    ]
