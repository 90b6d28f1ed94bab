"""Budget alerts: at the soft threshold and at the cap, mail the account's admins and log,
once per budget window."""

from __future__ import annotations

import logging
from decimal import Decimal

from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone

from chat.models import Budget, BudgetWindow
from kb.selectors.accounts import account_admin_emails

logger = logging.getLogger("cairn.budgets")


def _share_used(budget: Budget, window: BudgetWindow) -> float:
    shares = []
    if budget.token_cap:
        shares.append(window.tokens_spent / budget.token_cap)
    if budget.cost_cap:
        shares.append(float(window.cost_spent / Decimal(budget.cost_cap)))
    return max(shares, default=0.0)


def budget_alerts_send(*, window_id: int, refused: bool = False) -> list[str]:
    """Send the alerts ``window`` has newly earned; returns their kinds ("soft", "hard").

    ``refused``: a question was just turned away, which is the cap whatever the figures.
    The conditional updates make each alert go out once, even from concurrent answers.
    """
    window = BudgetWindow.objects.select_related("budget__account", "budget__user").get(
        pk=window_id
    )
    budget = window.budget
    share = _share_used(budget, window)
    sent = []
    for kind, reached in (
        ("soft", share >= budget.soft_threshold),
        ("hard", share >= 1 or refused),
    ):
        if not reached:
            continue
        field = f"{kind}_alerted_at"
        claimed = BudgetWindow.objects.filter(pk=window.pk, **{f"{field}__isnull": True}).update(
            **{field: timezone.now()}
        )
        if not claimed:
            continue
        sent.append(kind)
        _notify(budget, window, kind, share)
    return sent


def _notify(budget: Budget, window: BudgetWindow, kind: str, share: float) -> None:
    who = f"user {budget.user.get_username()} of " if budget.user else ""
    what = (
        f"has used {share:.0%} of its {budget.adjective} answer budget"
        if kind == "soft"
        else f"has reached its {budget.adjective} answer budget; questions are refused"
    )
    subject = f"Cairn: {who}{budget.account.name} {what}"
    body = (
        f"{subject}.\n\nTokens: {window.tokens_spent:,} of {budget.token_cap or 'no cap'}; "
        f"cost: ${window.cost_spent:.4f} of "
        f"{'$' + format(budget.cost_cap, '.2f') if budget.cost_cap else 'no cap'}.\n"
        f"The budget resets at {window.ends_at:%Y-%m-%d %H:%M %Z}. Account admins can change it "
        "in the Cairn admin under Chat → Budgets.\n"
    )
    logger.warning(
        "budget %s alert: account=%s user=%s period=%s share=%.2f",
        kind, budget.account_id, budget.user_id, budget.period, share,
    )  # fmt: skip
    recipients = account_admin_emails(account_id=budget.account_id)
    if recipients:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=True)
