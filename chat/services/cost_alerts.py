"""Daily cost alerts: tell an account's admins, once a day, that its spend passed an amount.

Unlike a budget this refuses nothing; it only tells. The amount is the account's
``daily_cost_alert``, or else CAIRN_DAILY_COST_ALERT; neither set, no alert. The
day starts at midnight in CAIRN_BUDGET_TIMEZONE, like a budget day, and its spend
is the sum of the account's ledger rows (``LlmCall.cost``) since then.

Once a day is kept in the database, not the cache: a conditional update of
``Account.daily_cost_alerted_on`` claims the day's alert, so however many workers
check at once, and whatever restarts in between, one mail goes out per day.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Sum
from django.utils import timezone

from chat.models import Budget
from chat.services.budgets import window_bounds
from config.dispatch import enqueue_on_commit
from kb.models import Account
from kb.selectors.accounts import account_admin_emails
from llm.models import LlmCall

logger = logging.getLogger("cairn.costs")


def cost_alert_amount(*, account: Account) -> Decimal | None:
    """The day's spend, in dollars, past which ``account`` is alerted; None: no alert."""
    if account.daily_cost_alert is not None:
        return account.daily_cost_alert
    amount: Decimal | None = settings.CAIRN_DAILY_COST_ALERT
    return amount


def cost_alert_enqueue(*, account: Account, cost: Decimal) -> None:
    """After an answer that cost ``cost``: check the account's day in a task, if alerts
    apply. A free answer cannot take the day past anything, so it queues nothing."""
    if cost <= 0 or cost_alert_amount(account=account) is None:
        return
    enqueue_on_commit("chat.tasks.cost_alert_check_task", account_id=account.pk, quiet=True)


def cost_alert_check(*, account: Account, now: datetime | None = None) -> bool:
    """Alert if the day's spend has passed the amount and nobody was told yet today.

    Returns True when this call sent the alert (mail to the account's admins, and a
    ``cairn.costs`` warning; without admins with an address, only the warning).
    """
    amount = cost_alert_amount(account=account)
    if amount is None:
        return False
    moment = now or timezone.now()
    day_start, _ = window_bounds(Budget.Period.DAY, moment)
    spent = LlmCall.objects.filter(account_id=account.pk, created_at__gte=day_start).aggregate(
        total=Sum("cost")
    )["total"] or Decimal(0)
    logger.info(
        "daily cost of account %s: $%.4f (alert above $%.2f)", account.pk, spent, amount,
        extra={"account_id": account.pk, "spent": spent, "alert_amount": amount},
    )  # fmt: skip
    if spent <= amount:
        return False
    day = day_start.date()
    claimed = (
        Account.objects.filter(pk=account.pk)
        .exclude(daily_cost_alerted_on=day)
        .update(daily_cost_alerted_on=day)
    )
    if not claimed:  # already told today
        return False
    logger.warning(
        "daily cost alert: account %s spent $%.4f on %s, above $%.2f",
        account.pk, spent, day.isoformat(), amount,
        extra={"account_id": account.pk, "spent": spent, "alert_amount": amount, "day": day},
    )  # fmt: skip
    _mail(account, spent, amount, day_start)
    return True


def _mail(account: Account, spent: Decimal, amount: Decimal, day_start: datetime) -> None:
    recipients = account_admin_emails(account_id=account.pk)
    if not recipients:
        return
    subject = (
        f"Cairn: {account.name} has spent ${spent:.2f} on language models today "
        f"(alert at ${amount:.2f})"
    )
    body = (
        f"{subject}.\n\nSince {day_start:%Y-%m-%d %H:%M} {settings.CAIRN_BUDGET_TIMEZONE}, "
        f"answers and embeddings for {account.name} have cost ${spent:.4f}, more than the "
        f"daily alert amount of ${amount:.2f}. This is the only such mail today; nothing is "
        "refused (budgets do that).\n\nWho spent what: the Cairn admin, Chat → LLM calls. "
        "Account admins can change the amount under Accounts → Daily cost alert.\n"
    )
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=True)
