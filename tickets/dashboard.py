"""The tickets' section of the admin dashboard: time to first response and time to
resolution per queue, median and 90th percentile, over the dashboard's period.

Registered into ``chat.dashboard.sections`` by ``register()`` (called from
``TicketsConfig.ready``): chat may not import tickets. Tickets count when they were
*opened* in the period; a ticket still waiting for its first response (or still
unsolved) counts in ``tickets`` but not in the percentiles, which ``percentile_cont``
computes in SQL over the answered (solved) ones only — one query, whatever the volume.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, DurationField, ExpressionWrapper, F, FloatField, Func
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from chat.dashboard.sections import section_register
from chat.selectors.dashboard import DashboardScope, PercentileCont
from tickets.models import Ticket

SECTION = "tickets"
NO_QUEUE = "(no queue)"
ALL_QUEUES = "All queues"


class EpochSeconds(Func):
    """An interval as seconds (PostgreSQL's ``EXTRACT(EPOCH FROM …)``)."""

    template = "EXTRACT(EPOCH FROM (%(expressions)s))"
    output_field = FloatField()


def _seconds_since_opened(field: str) -> EpochSeconds:
    return EpochSeconds(ExpressionWrapper(F(field) - F("created_at"), output_field=DurationField()))


@dataclass(frozen=True)
class QueueTimings:
    """Seconds; None when no ticket of the queue got there in the period."""

    queue: str
    account: str
    tickets: int
    responded: int
    solved: int
    first_response_p50: float | None
    first_response_p90: float | None
    resolution_p50: float | None
    resolution_p90: float | None


def _aggregates() -> dict[str, Any]:
    figures: dict[str, Any] = {
        "tickets": Count("id"),
        "responded": Count("first_response_at"),
        "solved": Count("solved_at"),
    }
    for name, field in (("first_response", "first_response_at"), ("resolution", "solved_at")):
        for fraction in (0.5, 0.9):
            figures[f"{name}_p{round(fraction * 100)}"] = PercentileCont(
                _seconds_since_opened(field), fraction=fraction
            )
    return figures


def _timings(row: Mapping[str, Any], queue: str, account: str) -> QueueTimings:
    return QueueTimings(
        queue=queue, account=account, tickets=row["tickets"], responded=row["responded"],
        solved=row["solved"],
        first_response_p50=row["first_response_p50"], first_response_p90=row["first_response_p90"],
        resolution_p50=row["resolution_p50"], resolution_p90=row["resolution_p90"],
    )  # fmt: skip


def ticket_timings(*, scope: DashboardScope) -> tuple[list[QueueTimings], QueueTimings | None]:
    """(per queue, largest first; over every queue of the scope), for tickets opened in
    the scope's days. Two queries."""
    tickets = Ticket.objects.filter(created_at__gte=scope.since)
    if scope.account_ids is not None:
        tickets = tickets.filter(account_id__in=scope.account_ids)
    # Any: the stubs cannot follow annotations given as **kwargs.
    grouped: Any = tickets.values("queue_id", "queue__name", "account__name").annotate(
        **_aggregates()
    )
    rows = list(grouped.order_by("-tickets", "queue__name"))
    per_queue = [
        _timings(row, row["queue__name"] or NO_QUEUE, row["account__name"]) for row in rows
    ]
    if not per_queue:
        return [], None
    overall = tickets.aggregate(**_aggregates())
    return per_queue, _timings(overall, ALL_QUEUES, "")


def duration(seconds: float | None) -> str:
    """A duration as people say it: "45 s", "12 min", "3.5 h", "2.1 d" ("–" for none)."""
    if seconds is None:
        return "–"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def tickets_section(scope: DashboardScope, request: HttpRequest) -> SafeString | None:
    per_queue, overall = ticket_timings(scope=scope)
    accounts = {row.account for row in per_queue}
    rows = [
        {
            "timings": row,
            "first_response": (duration(row.first_response_p50), duration(row.first_response_p90)),
            "resolution": (duration(row.resolution_p50), duration(row.resolution_p90)),
        }
        for row in ([*per_queue, overall] if overall is not None else [])
    ]
    return render_to_string(
        "tickets/_dashboard_section.html",
        {"rows": rows, "show_account": len(accounts) > 1},
        request=request,
    )


def register() -> None:
    """Add the section to the dashboard (from ``TicketsConfig.ready``)."""
    section_register(SECTION, tickets_section)
