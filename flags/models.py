"""Per-account feature flags: a variant rolled out to a deterministic share of subjects.

A flag says "for ``rollout_percent`` % of this account's subjects (users, API keys), the
behaviour ``key`` takes the value ``variant``"; everybody else keeps today's default (the
"control" group). Which subjects are in is decided by a hash (``flags.bucketing``), so a
user keeps their variant on every request and in every process, with nothing stored per user.
"""

from __future__ import annotations

import re
import secrets
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from flags.registry import validator_for

# "semantic_cache", "prompt_version", "route_chain:complex", "auto_tickets", "new_thing".
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(:[A-Za-z0-9_.-]+)?$")


def salt_new() -> str:
    """A fresh salt, so two flags at the same percentage do not pick the same subjects."""
    return secrets.token_hex(8)


class Flag(models.Model):
    """One account's rollout of one behaviour. Unique per (account, key)."""

    account = models.ForeignKey("kb.Account", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(
        max_length=100,
        validators=[
            RegexValidator(
                KEY_PATTERN,
                "Lower-case letters, digits and underscores, optionally followed by "
                '":<name>" (e.g. route_chain:complex).',
            )
        ],
        help_text='What the flag changes: "semantic_cache", "prompt_version", '
        '"route_chain:<route>", "auto_tickets", or a new key that code reads.',
    )
    variant = models.CharField(
        max_length=500,
        help_text='The value subjects in the rollout get: "on"/"off" for semantic_cache and '
        'auto_tickets, a prompt version (e.g. "v1") for prompt_version, a chain '
        '("openai:gpt-4o-mini,local:extractive") for route_chain:<route>.',
    )
    rollout_percent = models.DecimalField(
        "rollout (%)",
        max_digits=5,
        decimal_places=2,
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(100))],
        help_text="Share of the account's users and API keys that get the variant, 0–100 "
        "(0.5 allowed). The same subject always falls on the same side.",
    )
    enabled = models.BooleanField(
        default=True, help_text="Off: nobody gets the variant, whatever the percentage."
    )
    description = models.TextField(blank=True)
    salt = models.CharField(
        max_length=32,
        default=salt_new,
        help_text="Mixed into the hash that picks the subjects. Changing it reshuffles who is "
        "in the rollout; keep it to grow a rollout from 5% to 20% with the same first 5%.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account", "key"]
        constraints = [
            models.UniqueConstraint(fields=["account", "key"], name="flags_flag_account_key"),
            models.CheckConstraint(
                condition=models.Q(rollout_percent__gte=0) & models.Q(rollout_percent__lte=100),
                name="flags_flag_rollout_percent_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key} = {self.variant} ({self.rollout_percent}%)"

    def clean(self) -> None:
        """Check the variant of a key some app understands (validators in flags.registry)."""
        super().clean()
        self.variant = self.variant.strip()
        if not self.variant:
            raise ValidationError({"variant": "A flag needs a variant."})
        validator = validator_for(self.key)
        if validator is None:
            return
        try:
            validator(self.key, self.variant)
        except ValidationError as error:
            raise ValidationError({"variant": error.messages}) from error
        except ValueError as error:
            raise ValidationError({"variant": str(error)}) from error
