"""Daily cost alerts: one mail and one warning per account per day past the amount."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.urls import reverse

from chat.services.answers import answer_stream
from chat.services.conversations import conversation_start
from chat.services.cost_alerts import cost_alert_check
from kb.models import Account
from llm.models import LlmCall
from tests.factories import make_user
from tests.support.tasks import tasks_run_inline

pytestmark = pytest.mark.django_db

QUESTION = "How much does the Growth plan cost per month?"


@pytest.fixture
def account(help_kb) -> Account:
    account = help_kb.account
    admin = make_user(account=account, role="admin")
    admin.email = "owner@ledgerly.example"
    admin.save()
    make_user(account=account, role="staff").save()  # staff are not told
    return account


def spend(account: Account, dollars: str, at: datetime | None = None) -> None:
    """A ledger row of ``dollars`` for the account (made at ``at``, default now)."""
    call = LlmCall.objects.create(
        request_id="r", account=account, feature="answer", provider="openai",
        model="gpt-4o-mini", status="ok", cost=Decimal(dollars),
    )  # fmt: skip
    if at is not None:
        LlmCall.objects.filter(pk=call.pk).update(created_at=at)


def logged(caplog, level: str) -> list[str]:
    records = [r for r in caplog.records if r.name == "cairn.costs"]
    return [r.getMessage() for r in records if r.levelname == level]


def warnings(caplog) -> list[str]:
    return logged(caplog, "WARNING")


def test_the_admins_get_one_mail_and_one_warning_the_day_spend_passes_the_amount(
    account, caplog
) -> None:
    account.daily_cost_alert = Decimal("1.00")
    account.save()
    spend(account, "0.60")
    assert cost_alert_check(account=account) is False  # $0.60: below

    spend(account, "0.55")
    sent = cost_alert_check(account=account)
    spend(account, "3.00")
    again = cost_alert_check(account=account)  # still today: already told

    assert (sent, again) == (True, False)
    assert [m.to for m in mail.outbox] == [["owner@ledgerly.example"]]
    assert "has spent $1.15 on language models today (alert at $1.00)" in mail.outbox[0].subject
    assert len(warnings(caplog)) == 1
    assert f"account {account.pk} spent $1.1500" in warnings(caplog)[0]


def test_spend_up_to_the_amount_sends_nothing(account, caplog) -> None:
    account.daily_cost_alert = Decimal("2.00")
    account.save()
    spend(account, "1.50")
    spend(account, "0.50")  # exactly the amount: not past it

    assert cost_alert_check(account=account) is False
    assert mail.outbox == [] and warnings(caplog) == []


def test_a_new_day_in_the_budget_time_zone_alerts_again(account, settings, caplog) -> None:
    settings.CAIRN_BUDGET_TIMEZONE = "Pacific/Auckland"
    account.daily_cost_alert = Decimal("1.00")
    account.save()
    local = ZoneInfo("Pacific/Auckland")
    yesterday_late = datetime(2026, 3, 9, 23, 30, tzinfo=local)
    today_early = datetime(2026, 3, 10, 0, 30, tzinfo=local)

    spend(account, "1.20", at=yesterday_late)
    assert cost_alert_check(account=account, now=yesterday_late) is True
    spend(account, "0.70", at=today_early)  # yesterday's spend does not count today
    assert cost_alert_check(account=account, now=today_early) is False
    spend(account, "0.70", at=today_early + timedelta(minutes=5))
    assert cost_alert_check(account=account, now=today_early + timedelta(minutes=10)) is True

    assert len(mail.outbox) == 2 and len(warnings(caplog)) == 2
    account.refresh_from_db()
    assert account.daily_cost_alerted_on == today_early.date()


def test_the_servers_default_amount_applies_to_accounts_without_their_own(
    account, settings
) -> None:
    settings.CAIRN_DAILY_COST_ALERT = Decimal("5")
    spend(account, "6.00")

    assert cost_alert_check(account=account) is True
    assert "(alert at $5.00)" in mail.outbox[0].subject


def test_no_alert_when_neither_the_account_nor_the_server_sets_an_amount(
    account, settings, caplog
) -> None:
    settings.CAIRN_DAILY_COST_ALERT = None
    spend(account, "1000.00")

    assert cost_alert_check(account=account) is False
    assert mail.outbox == [] and warnings(caplog) == []


def _answer(help_kb, staff) -> None:
    _, answer = conversation_start(user_id=staff.pk, knowledge_base=help_kb, text=QUESTION)
    list(answer_stream(message_id=answer.pk, cancelled=lambda: False))


def checks(caplog) -> list[str]:
    return logged(caplog, "INFO")


def test_an_answer_that_costs_money_is_followed_by_the_check_in_a_task(
    help_kb, account, staff, settings, caplog, django_capture_on_commit_callbacks
) -> None:
    settings.CAIRN_LLM_PRICES = json.dumps({"local:extractive": {"input": 1000, "output": 1000}})
    account.daily_cost_alert = Decimal("0.01")
    account.save()

    with tasks_run_inline(), django_capture_on_commit_callbacks(execute=True):
        _answer(help_kb, staff)

    assert len(checks(caplog)) == 1 and len(warnings(caplog)) == 1
    assert len(mail.outbox) == 1
    assert LlmCall.objects.filter(account=account, cost__gt=0).exists()


def test_a_free_answer_or_an_account_without_an_amount_is_not_checked(
    help_kb, account, staff, settings, caplog, django_capture_on_commit_callbacks
) -> None:
    account.daily_cost_alert = Decimal("0.01")
    account.save()
    with tasks_run_inline(), django_capture_on_commit_callbacks(execute=True):
        _answer(help_kb, staff)  # the extractive answerer is free without a price

        settings.CAIRN_LLM_PRICES = json.dumps(
            {"local:extractive": {"input": 1000, "output": 1000}}
        )
        account.daily_cost_alert = None
        account.save()
        _answer(help_kb, staff)  # paid, but no amount set

    assert checks(caplog) == [] and mail.outbox == []


def test_the_amount_is_set_in_the_account_admin(account, client) -> None:
    superuser = make_user()
    superuser.is_superuser = True
    superuser.save()
    client.force_login(superuser)
    url = reverse("admin:kb_account_change", args=[account.pk])

    page = client.get(url).content.decode()

    assert 'name="daily_cost_alert"' in page
    assert "Last daily cost alert" in page  # read-only: the alert sets it
