"""Fixtures of the flags tests: an account with a small ingested knowledge base."""

from __future__ import annotations

from decimal import Decimal

import pytest

from flags.bucketing import in_rollout
from flags.models import Flag
from ingest.services.pipeline import document_ingest
from tests.chat.conftest import PLANS, REFUNDS
from tests.factories import make_user, upload


@pytest.fixture
def help_kb(kb):
    """``kb`` with two ingested articles: plans and prices, refunds."""
    for name, content in (("plans.md", PLANS), ("refunds.md", REFUNDS)):
        document_ingest(document_id=upload(kb, name, content).document.pk)
    return kb


def make_flag(account, key: str, variant: str, percent: str | int = 100, **fields) -> Flag:
    """A flag saved as the admin saves it: validated (Flag.clean), then stored."""
    flag = Flag(
        account=account, key=key, variant=variant, rollout_percent=Decimal(str(percent)), **fields
    )
    flag.full_clean()
    flag.save()
    return flag


def users_on_each_side(flag: Flag, account) -> tuple:
    """A member of ``account`` inside ``flag``'s rollout and one outside it (made until
    the hash has put one on each side: the rollout is the hash's choice, not ours)."""
    inside = outside = None
    while inside is None or outside is None:
        user = make_user(staff=False, account=account, role="staff")
        picked = in_rollout(
            salt=flag.salt, key=flag.key, subject=f"user:{user.pk}", percent=flag.rollout_percent
        )
        if picked and inside is None:
            inside = user
        elif not picked and outside is None:
            outside = user
    return inside, outside
