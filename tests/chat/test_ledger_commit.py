"""A ledger row is committed without waiting for the disk, and only itself."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from llm.ledger import CallContext, llm_call_record
from llm.models import LlmCall
from tests.factories import make_account


def _context(account_id: int) -> CallContext:
    return CallContext(
        request_id="r-1", account_id=account_id, user_id=None, route="default", feature="answer"
    )


def _synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_row_recorded_inside_a_callers_transaction_leaves_its_commit_synchronous() -> None:
    account = make_account()
    with transaction.atomic():
        llm_call_record(
            context=_context(account.pk),
            provider="local",
            model="extractive",
            attempt=1,
            status="ok",
        )
        # SET LOCAL would last until this outer commit: the caller's own writes (a
        # budget's settle, say) would lose their durability with it.
        assert _synchronous_commit() == "on"
    assert LlmCall.objects.filter(account=account).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_row_of_its_own_is_recorded_and_the_session_keeps_its_setting() -> None:
    account = make_account()
    llm_call_record(
        context=_context(account.pk),
        provider="local",
        model="extractive",
        attempt=1,
        status="ok",
    )
    assert LlmCall.objects.filter(account=account).count() == 1
    assert _synchronous_commit() == "on"  # SET LOCAL ended with the row's own commit
