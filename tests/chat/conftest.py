"""Fixtures of the chat tests: a small knowledge base with known facts, its staff user."""

from __future__ import annotations

import pytest

from ingest.services.pipeline import document_ingest
from tests.factories import make_user, upload

PLANS = b"""# Plans and prices

## Growth plan

The Growth plan costs $59 per month or $590 per year. It includes five users and unlimited invoices.

## Starter plan

The Starter plan costs $19 per month and includes one user.
"""

REFUNDS = b"""# Refunds

Annual plans can be refunded within 30 days of purchase, pro rata.
Monthly plans are not refunded, but you can cancel at any time before the next billing date.

## How to ask for a refund

Write to billing@ledgerly.example with your workspace name. Refunds arrive within 5 business days.
"""


@pytest.fixture
def help_kb(kb):
    """``kb`` with two ingested articles: plans and prices, refunds."""
    for name, content in (("plans.md", PLANS), ("refunds.md", REFUNDS)):
        document_ingest(document_id=upload(kb, name, content).document.pk)
    return kb


@pytest.fixture
def staff(help_kb):
    return make_user(staff=False, account=help_kb.account, role="staff")
