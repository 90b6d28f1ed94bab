"""Where an account (and user) stands against its budgets right now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Q
from django.utils import timezone

from chat.models import Budget, BudgetWindow
from chat.services.budgets import window_bounds


@dataclass(frozen=True)
class BudgetStanding:
    """The tightest of the applicable budgets: what is left, and when it next resets."""

    tokens_left: int | None  # None: no token cap applies
    cost_left: Decimal | None
    resets_at: datetime
    share_left: float = 1.0  # of the tightest cap, 0-1 (for a meter)


def budget_standing(*, account_id: int, user_id: int | None) -> BudgetStanding | None:
    """None when no budget applies."""
    now = timezone.now()
    budgets = Budget.objects.filter(account_id=account_id).filter(
        Q(user__isnull=True) | Q(user_id=user_id)
    )
    tokens_left: int | None = None
    cost_left: Decimal | None = None
    share_left = 1.0
    resets: list[datetime] = []
    for budget in budgets:
        start, end = window_bounds(budget.period, now)
        resets.append(end)
        window = BudgetWindow.objects.filter(budget=budget, starts_at=start).first()
        used_tokens = window.tokens_spent + window.tokens_reserved if window else 0
        used_cost = window.cost_spent + window.cost_reserved if window else Decimal(0)
        if budget.token_cap is not None:
            left = max(budget.token_cap - used_tokens, 0)
            tokens_left = left if tokens_left is None else min(tokens_left, left)
            share_left = min(share_left, left / budget.token_cap if budget.token_cap else 0.0)
        if budget.cost_cap is not None:
            left_cost = max(budget.cost_cap - used_cost, Decimal(0))
            cost_left = left_cost if cost_left is None else min(cost_left, left_cost)
            share_left = min(
                share_left, float(left_cost / budget.cost_cap) if budget.cost_cap else 0.0
            )
    if not resets:
        return None
    return BudgetStanding(tokens_left, cost_left, min(resets), share_left)


def budget_headers(standing: BudgetStanding | None) -> dict[str, str]:
    """X-Budget-Remaining-Tokens / -Cost and X-Budget-Reset (ISO 8601), when budgets apply."""
    if standing is None:
        return {}
    headers = {"X-Budget-Reset": standing.resets_at.isoformat()}
    if standing.tokens_left is not None:
        headers["X-Budget-Remaining-Tokens"] = str(standing.tokens_left)
    if standing.cost_left is not None:
        headers["X-Budget-Remaining-Cost"] = f"{standing.cost_left:.4f}"
    return headers
