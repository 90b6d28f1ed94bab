import decimal

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models

import flags.models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("kb", "0012_hnsw_halfvec"),
    ]

    operations = [
        migrations.CreateModel(
            name="Flag",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "key",
                    models.CharField(
                        help_text='What the flag changes: "semantic_cache", "prompt_version", '
                        '"route_chain:<route>", "auto_tickets", or a new key that code reads.',
                        max_length=100,
                        validators=[
                            django.core.validators.RegexValidator(
                                flags.models.KEY_PATTERN,
                                "Lower-case letters, digits and underscores, optionally "
                                'followed by ":<name>" (e.g. route_chain:complex).',
                            )
                        ],
                    ),
                ),
                (
                    "variant",
                    models.CharField(
                        help_text='The value subjects in the rollout get: "on"/"off" for '
                        'semantic_cache and auto_tickets, a prompt version (e.g. "v1") for '
                        'prompt_version, a chain ("openai:gpt-4o-mini,local:extractive") for '
                        "route_chain:<route>.",
                        max_length=500,
                    ),
                ),
                (
                    "rollout_percent",
                    models.DecimalField(
                        decimal_places=2,
                        default=decimal.Decimal("0"),
                        help_text="Share of the account's users and API keys that get the "
                        "variant, 0–100 (0.5 allowed). The same subject always falls on the "
                        "same side.",
                        max_digits=5,
                        validators=[
                            django.core.validators.MinValueValidator(decimal.Decimal("0")),
                            django.core.validators.MaxValueValidator(decimal.Decimal("100")),
                        ],
                        verbose_name="rollout (%)",
                    ),
                ),
                (
                    "enabled",
                    models.BooleanField(
                        default=True,
                        help_text="Off: nobody gets the variant, whatever the percentage.",
                    ),
                ),
                ("description", models.TextField(blank=True)),
                (
                    "salt",
                    models.CharField(
                        default=flags.models.salt_new,
                        help_text="Mixed into the hash that picks the subjects. Changing it "
                        "reshuffles who is in the rollout; keep it to grow a rollout from 5% "
                        "to 20% with the same first 5%.",
                        max_length=32,
                    ),
                ),
                ("updated_at", models.DateTimeField(auto_now=True)),
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
                "ordering": ["account", "key"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("account", "key"), name="flags_flag_account_key"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("rollout_percent__gte", 0), ("rollout_percent__lte", 100)
                        ),
                        name="flags_flag_rollout_percent_range",
                    ),
                ],
            },
        ),
    ]
