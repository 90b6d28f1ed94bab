"""Budgets: reserve an answer's estimated cost before any model call, settle after.

Enforcement is atomic in PostgreSQL. A reservation is, per applicable budget window,
one conditional UPDATE (``spent + reserved + estimate <= cap``); the row lock makes
concurrent reservations queue, and PostgreSQL re-checks the condition on the row
each one finds, so however many answers start at once, what is reserved never
exceeds a cap. Settling replaces the estimate with what the ledger says the answer
cost, exactly once per request (a conditional update on the reservation).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from chat.models import Budget, BudgetReservation, BudgetWindow
from config.dispatch import enqueue_on_commit

logger = logging.getLogger(__name__)


class BudgetExhausted(Exception):
    """A hard cap would be exceeded; ``resets_at`` says when the window starts again."""

    def __init__(self, message: str, *, resets_at: datetime) -> None:
        super().__init__(message)
        self.resets_at = resets_at

    @property
    def retry_after(self) -> int:
        return max(1, int((self.resets_at - timezone.now()).total_seconds()))


@dataclass(frozen=True)
class BudgetHold:
    request_id: str
    soft_exceeded: bool  # past a soft threshold: answer on the cheaper route


def window_bounds(period: str, moment: datetime) -> tuple[datetime, datetime]:
    """The day or month containing ``moment``, in CAIRN_BUDGET_TIMEZONE."""
    local = moment.astimezone(ZoneInfo(settings.CAIRN_BUDGET_TIMEZONE))
    if period == Budget.Period.DAY:
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        end = (start + timedelta(days=1, hours=2)).replace(hour=0)
    else:
        start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def _window(budget: Budget, now: datetime) -> BudgetWindow:
    start, end = window_bounds(budget.period, now)
    try:
        with transaction.atomic():
            window, _ = BudgetWindow.objects.get_or_create(
                budget=budget, starts_at=start, defaults={"ends_at": end}
            )
    except IntegrityError:  # created by a concurrent reservation in between
        window = BudgetWindow.objects.get(budget=budget, starts_at=start)
    return window


def _applicable(account_id: int, user_id: int | None) -> list[Budget]:
    return list(
        Budget.objects.filter(account_id=account_id).filter(
            Q(user__isnull=True) | Q(user_id=user_id)
        )
    )


def _exhausted_message(budget: Budget, resets_at: datetime) -> str:
    whose = "Your" if budget.user_id else "Your account's"
    local = resets_at.astimezone(ZoneInfo(settings.CAIRN_BUDGET_TIMEZONE))
    return (
        f"{whose} {budget.adjective} answer budget is used up. It resets at "
        f"{local:%Y-%m-%d %H:%M} {settings.CAIRN_BUDGET_TIMEZONE}; an account admin can raise it."
    )


def budget_reserve(
    *, account_id: int, user_id: int | None, request_id: str, tokens: int, cost: Decimal
) -> BudgetHold:
    """Hold ``tokens`` and ``cost`` against every budget of the account (and user).

    Raises BudgetExhausted (nothing held) if any hard cap would be exceeded.
    """
    now = timezone.now()
    budgets = _applicable(account_id, user_id)
    windows = [(budget, _window(budget, now)) for budget in budgets]
    soft = False
    refused: BudgetExhausted | None = None
    refused_window = 0
    with transaction.atomic():
        for budget, window in windows:
            held = BudgetWindow.objects.filter(pk=window.pk)
            if budget.token_cap is not None:
                held = held.filter(
                    tokens_spent__lte=budget.token_cap - tokens - F("tokens_reserved")
                )
            if budget.cost_cap is not None:
                held = held.filter(cost_spent__lte=budget.cost_cap - cost - F("cost_reserved"))
            if not held.update(
                tokens_reserved=F("tokens_reserved") + tokens,
                cost_reserved=F("cost_reserved") + cost,
            ):
                transaction.set_rollback(True)
                refused = BudgetExhausted(
                    _exhausted_message(budget, window.ends_at), resets_at=window.ends_at
                )
                refused_window = window.pk
                break
            window.refresh_from_db()
            soft = soft or _past_soft(budget, window)
        if refused is None:
            reservation = BudgetReservation.objects.create(
                request_id=request_id, account_id=account_id, tokens=tokens, cost=cost
            )
            reservation.windows.set([window for _, window in windows])
    if refused is not None:
        _alerts_enqueue([refused_window], refused=True)
        raise refused
    return BudgetHold(request_id=request_id, soft_exceeded=soft)


def _past_soft(budget: Budget, window: BudgetWindow) -> bool:
    tokens = window.tokens_spent + window.tokens_reserved
    cost = window.cost_spent + window.cost_reserved
    if budget.token_cap and tokens >= budget.soft_threshold * budget.token_cap:
        return True
    return bool(budget.cost_cap and cost >= Decimal(str(budget.soft_threshold)) * budget.cost_cap)


def budget_settle(*, request_id: str, tokens: int, cost: Decimal) -> bool:
    """Replace the hold of ``request_id`` with what the answer cost (0 if it failed).

    Idempotent: only the first call for a request changes anything (returns True).
    """
    with transaction.atomic():
        settled = BudgetReservation.objects.filter(
            request_id=request_id, settled_at__isnull=True
        ).update(settled_at=timezone.now(), settled_tokens=tokens, settled_cost=cost)
        if not settled:
            return False
        reservation = BudgetReservation.objects.get(request_id=request_id)
        window_ids = list(reservation.windows.values_list("pk", flat=True))
        BudgetWindow.objects.filter(pk__in=window_ids).update(
            tokens_reserved=F("tokens_reserved") - reservation.tokens,
            cost_reserved=F("cost_reserved") - reservation.cost,
            tokens_spent=F("tokens_spent") + tokens,
            cost_spent=F("cost_spent") + cost,
        )
    _alerts_enqueue(window_ids)
    return True


def _alerts_enqueue(window_ids: list[int], *, refused: bool = False) -> None:
    """Alerts are mailed by a task: an SMTP server's pace is not the answer's business."""
    if not window_ids:
        return
    enqueue_on_commit(
        "chat.tasks.budget_alerts_send_task", window_ids=window_ids, refused=refused, quiet=True
    )
