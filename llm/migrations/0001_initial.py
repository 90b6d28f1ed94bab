"""The gateway's models, taken over from chat without a row moving.

chat's migrations made the tables (``chat_llmcall``, ``chat_llmroute``,
``chat_semanticcacheentry``); this one only tells Django's state that they are llm's now
(chat 0015 drops them from chat's state), and moves their content types so that admin
permissions and log entries follow them.
"""

from decimal import Decimal

import django.db.models.deletion
import pgvector.django.vector
from django.conf import settings
from django.db import migrations, models

MOVED = ("llmcall", "llmroute", "semanticcacheentry")


def content_types_to(app_label: str, other: str):
    def move(apps, schema_editor):
        ContentType = apps.get_model("contenttypes", "ContentType")
        ContentType.objects.filter(app_label=other, model__in=MOVED).update(app_label=app_label)

    return move


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("kb", "0012_hnsw_halfvec"),
        ("chat", "0014_escalation_and_flags"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    state_operations = [
        migrations.CreateModel(
            name="LlmRoute",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.SlugField(unique=True)),
                (
                    "chain",
                    models.TextField(
                        help_text="Comma-separated provider:model entries, tried in order, e.g. anthropic:claude-haiku-4-5, openai:gpt-4o-mini, local:extractive"
                    ),
                ),
                ("max_tokens", models.PositiveIntegerField(default=800)),
                ("temperature", models.FloatField(default=0.2)),
            ],
            options={
                "db_table": "chat_llmroute",
            },
        ),
        migrations.CreateModel(
            name="LlmCall",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("request_id", models.CharField(db_index=True, max_length=64)),
                ("idempotency_key", models.CharField(blank=True, max_length=128)),
                ("route", models.CharField(blank=True, max_length=50)),
                (
                    "feature",
                    models.CharField(help_text='What asked: "answer", "embedding"…', max_length=50),
                ),
                ("provider", models.CharField(max_length=50)),
                ("model", models.CharField(max_length=200)),
                ("attempt", models.PositiveSmallIntegerField(default=1)),
                ("input_tokens", models.PositiveIntegerField(default=0)),
                ("output_tokens", models.PositiveIntegerField(default=0)),
                ("cache_read_tokens", models.PositiveIntegerField(default=0)),
                ("cache_write_tokens", models.PositiveIntegerField(default=0)),
                ("tokens_estimated", models.BooleanField(default=False)),
                (
                    "cost",
                    models.DecimalField(decimal_places=8, default=Decimal("0"), max_digits=14),
                ),
                ("latency_ms", models.PositiveIntegerField(default=0)),
                ("time_to_first_token_ms", models.PositiveIntegerField(blank=True, null=True)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("ok", "OK"),
                            ("error", "Error"),
                            ("interrupted", "Interrupted after output began"),
                            ("cancelled", "Cancelled by the client"),
                            ("skipped", "Skipped (circuit open)"),
                        ],
                        max_length=12,
                    ),
                ),
                ("error_class", models.CharField(blank=True, max_length=50)),
                ("cache_hit", models.BooleanField(default=False)),
                (
                    "cache_reason",
                    models.CharField(
                        blank=True,
                        help_text='Why the semantic cache served this answer or not, e.g. "hit", "miss:negation", "miss:sources" (blank: no semantic lookup).',
                        max_length=60,
                    ),
                ),
                ("fallback_used", models.BooleanField(default=False)),
                ("flags", models.JSONField(blank=True, default=dict)),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                (
                    "account",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="kb.account",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "db_table": "chat_llmcall",
                "ordering": ["-created_at"],
                "indexes": [
                    models.Index(fields=["account", "created_at"], name="chat_llmcall_account")
                ],
            },
        ),
        migrations.CreateModel(
            name="SemanticCacheEntry",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("scope_key", models.CharField(max_length=300)),
                ("route", models.CharField(max_length=50)),
                ("embedding_model", models.CharField(max_length=200)),
                ("question", models.TextField()),
                ("embedding", pgvector.django.vector.VectorField(dimensions=384)),
                ("answer", models.TextField()),
                ("provider", models.CharField(max_length=50)),
                ("model", models.CharField(max_length=200)),
                (
                    "sources",
                    models.JSONField(
                        blank=True,
                        default=list,
                        help_text="Chunk ids behind the answer's [1], [2]…",
                    ),
                ),
                ("hits", models.PositiveIntegerField(default=0)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("expires_at", models.DateTimeField(db_index=True)),
                (
                    "account",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="kb.account",
                    ),
                ),
            ],
            options={
                "db_table": "chat_semanticcacheentry",
                "indexes": [
                    models.Index(
                        fields=["account", "scope_key", "route"], name="chat_semcache_scope"
                    )
                ],
            },
        ),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=state_operations),
        migrations.RunPython(content_types_to("llm", "chat"), content_types_to("chat", "llm")),
    ]
