"""The admin dashboard: usage, quality and ingestion figures as server-rendered charts.

Served at /admin/dashboard/ through ``admin.site.admin_view`` (config/urls.py), so the
admin's login, staff check, CSRF and no-cache rules apply; which accounts' figures a user
sees is decided by ``chat.selectors.dashboard.dashboard_access``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.safestring import SafeString

from chat.dashboard.charts import (
    GREY,
    Formatter,
    Series,
    bar_chart,
    data_table,
    dollars,
    line_chart,
    milliseconds,
    percent,
    plain_number,
    stacked_bar_chart,
)
from chat.dashboard.sections import dashboard_sections
from chat.selectors.dashboard import (
    DEFAULT_PERIOD,
    OTHER,
    PERIODS,
    DailySeries,
    Dashboard,
    Percentiles,
    dashboard_access,
    dashboard_read,
    dashboard_scope,
)
from kb.models import Account

UP_COLOR, DOWN_COLOR = "#009e73", "#d55e00"
PERCENTILE_COLORS = ("#0072b2", "#e69f00", "#d55e00")


class DashboardFilterForm(forms.Form):
    period = forms.TypedChoiceField(
        choices=[(days, f"Last {days} days") for days in PERIODS],
        coerce=int,
        empty_value=None,
        required=False,
    )
    account = forms.TypedChoiceField(coerce=int, empty_value=None, required=False)

    def __init__(self, data: dict[str, Any], *, accounts: Sequence[Account]) -> None:
        super().__init__(data)
        account_field = cast(forms.TypedChoiceField, self.fields["account"])
        account_field.choices = [("", "All accounts")] + [(a.pk, a.name) for a in accounts]


def dashboard(request: HttpRequest) -> HttpResponse:
    """Cost, latency, rates, feedback, unanswered questions and ingestion failures for
    a period (7, 30 or 90 days) and one or all of the user's accounts."""
    access = dashboard_access(user=request.user)
    if not access.allowed:
        raise PermissionDenied("The dashboard is for account admins.")
    form = DashboardFilterForm(
        {"period": str(DEFAULT_PERIOD), **request.GET.dict()}, accounts=access.accounts
    )
    valid = form.is_valid()
    scope = dashboard_scope(
        access=access,
        account_id=form.cleaned_data["account"] if valid else None,
        period_days=(form.cleaned_data["period"] if valid else None) or DEFAULT_PERIOD,
    )
    figures = dashboard_read(scope=scope)
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "form": form,
        "figures": figures,
        "tiles": dashboard_tiles(figures),
        "panels": dashboard_panels(figures),
        "failures_panel": dashboard_failures_panel(figures),
        "variant_splits": dashboard_variant_splits(figures),
        "sections": dashboard_sections(scope=scope, request=request),
    }
    return TemplateResponse(request, "admin/dashboard.html", context)


# --- presentation ------------------------------------------------------------------------


def _maybe(value: float | None, fmt: Formatter) -> str:
    return "–" if value is None else fmt(value)


def chart_label(day: date) -> str:
    return f"{day:%b} {day.day}"


@dataclass(frozen=True)
class Tile:
    label: str
    value: str
    note: str


@dataclass(frozen=True)
class Panel:
    """A chart with its heading, where its numbers come from, and its table."""

    id: str
    heading: str
    source: str
    svg: SafeString
    table: SafeString


def dashboard_tiles(figures: Dashboard) -> list[Tile]:
    rates, latency, feedback = figures.rates, figures.latency, figures.feedback
    return [
        Tile("Cost", dollars(float(figures.cost.total)), f"{figures.cost.calls:,} model calls"),
        Tile("Answers", f"{latency.answers:,}", "finished (answered or abstained)"),
        Tile(
            "Answer latency p95",
            _maybe(latency.latency_overall.p95, milliseconds),
            f"p50 {_maybe(latency.latency_overall.p50, milliseconds)}",
        ),
        Tile(
            "First token p95",
            _maybe(latency.first_token_overall.p95, milliseconds),
            f"p50 {_maybe(latency.first_token_overall.p50, milliseconds)}",
        ),
        Tile(
            "Cache hits", _maybe(rates.cache_hit_rate, percent), f"of {rates.total_calls:,} calls"
        ),
        Tile(
            "Errors",
            _maybe(rates.error_rate, percent),
            f"fallbacks {_maybe(rates.fallback_rate, percent)}",
        ),
        Tile(
            "Helpful",
            _maybe(feedback.helpful_rate, percent),
            f"{feedback.total_up:,} up, {feedback.total_down:,} down",
        ),
        Tile("Failed documents", f"{figures.failures.total:,}", "ingestion failures"),
    ]


def _series(daily: Sequence[DailySeries]) -> list[Series]:
    return [Series(s.name, s.values, GREY if s.name == OTHER else None) for s in daily]


def _percentile_series(per_day: Sequence[Percentiles]) -> list[Series]:
    return [
        Series(name, [getattr(p, name) for p in per_day], color)
        for name, color in zip(("p50", "p95", "p99"), PERCENTILE_COLORS, strict=True)
    ]


def _panel(
    *,
    chart_id: str,
    heading: str,
    source: str,
    kind: str,
    days: Sequence[date],
    series: Sequence[Series],
    fmt: Formatter,
    **options: Any,
) -> Panel:
    labels = [chart_label(day) for day in days]
    description = f"{heading}, {chart_label(days[0])} to {chart_label(days[-1])}. {source}"
    common: dict[str, Any] = {
        "chart_id": chart_id,
        "title": heading,
        "description": description,
        "labels": labels,
        "fmt": fmt,
        **options,
    }
    if kind == "bars":
        svg = bar_chart(values=series[0].values, color=series[0].color or GREY, **common)
    elif kind == "stacked":
        svg = stacked_bar_chart(series=series, **common)
    else:
        svg = line_chart(series=series, **common)
    table = data_table(
        caption=heading, labels=[day.isoformat() for day in days], series=series, fmt=fmt
    )
    return Panel(chart_id, heading, source, svg, table)


def dashboard_panels(figures: Dashboard) -> list[Panel]:
    """The charts of cost, speed and quality (ingestion's is apart, by its list)."""
    days = figures.scope.days
    rates, latency, feedback = figures.rates, figures.latency, figures.feedback
    return [
        _panel(
            chart_id="cost-by-account",
            heading="Cost per day by account",
            source="Sum of the cost of every model call (answers and embeddings) in the ledger.",
            kind="stacked",
            days=days,
            series=_series(figures.cost.by_account),
            fmt=dollars,
        ),
        _panel(
            chart_id="cost-by-feature",
            heading="Cost per day by feature",
            source="The same ledger, by what made the call (answer, embedding:query…).",
            kind="stacked",
            days=days,
            series=_series(figures.cost.by_feature),
            fmt=dollars,
        ),
        _panel(
            chart_id="answer-latency",
            heading="Answer latency",
            source="Whole answers (answered or abstained), from the question to the last "
            "word: p50, p95 and p99 per day.",
            kind="lines",
            days=days,
            series=_percentile_series(latency.latency),
            fmt=milliseconds,
        ),
        _panel(
            chart_id="first-token",
            heading="Time to first token",
            source="The same answers, until their first word was on its way to the asker.",
            kind="lines",
            days=days,
            series=_percentile_series(latency.first_token),
            fmt=milliseconds,
        ),
        _panel(
            chart_id="call-rates",
            heading="Cache hits, fallbacks and errors",
            source="Shares of the model calls that write answers (embeddings left out); "
            "errors include calls interrupted mid-answer.",
            kind="lines",
            days=days,
            series=[
                Series("Cache hits", rates.cache_hit, "#0072b2"),
                Series("Fallbacks", rates.fallback, "#e69f00"),
                Series("Errors", rates.error, "#d55e00"),
            ],
            fmt=percent,
            maximum=1.0,
        ),
        _panel(
            chart_id="feedback",
            heading="Thumbs up and down",
            source="Feedback on answers, by the day it was first given.",
            kind="stacked",
            days=days,
            series=[
                Series("Helpful", feedback.up, UP_COLOR),
                Series("Not helpful", feedback.down, DOWN_COLOR),
            ],
            fmt=plain_number,
            integers=True,
            empty_message="No feedback",
        ),
    ]


def dashboard_failures_panel(figures: Dashboard) -> Panel:
    return _panel(
        chart_id="ingestion-failures",
        heading="Ingestion failures",
        source="Documents whose ingestion failed, by the day it failed.",
        kind="bars",
        days=figures.scope.days,
        series=[Series("Failed documents", figures.failures.per_day, DOWN_COLOR)],
        fmt=plain_number,
        integers=True,
        empty_message="No failures",
    )


@dataclass(frozen=True)
class VariantRow:
    """One side of a rollout, as the variant table shows it."""

    label: str
    is_control: bool
    answers: str
    cost: str
    cost_per_answer: str
    latency_p50: str
    latency_p95: str
    up: str
    down: str
    helpful: str
    abstention: str


@dataclass(frozen=True)
class VariantSplit:
    key: str
    rows: tuple[VariantRow, ...]


def dashboard_variant_splits(figures: Dashboard) -> list[VariantSplit]:
    """Each feature flag's answers by variant and control, formatted for the table."""
    return [
        VariantSplit(
            split.key,
            tuple(
                VariantRow(
                    label=group.label,
                    is_control=group.variant is None,
                    answers=f"{group.answers:,}",
                    cost=dollars(float(group.cost)),
                    cost_per_answer=_maybe(
                        None if group.cost_per_answer is None else float(group.cost_per_answer),
                        dollars,
                    ),
                    latency_p50=_maybe(group.latency.p50, milliseconds),
                    latency_p95=_maybe(group.latency.p95, milliseconds),
                    up=f"{group.up:,}",
                    down=f"{group.down:,}",
                    helpful=_maybe(group.helpful_rate, percent),
                    abstention=_maybe(group.abstention_share, percent),
                )
                for group in split.groups
            ),
        )
        for split in figures.variants
    ]
