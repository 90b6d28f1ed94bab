"""The figures of the admin dashboard: cost, latency, cache and failure rates, feedback,
unanswered questions and ingestion failures, per day of a period.

Everything is aggregated in SQL (a fixed number of queries, whatever the volume) and
returned as plain dataclasses; ``chat.dashboard.views`` turns them into charts. Every
query filters by account in SQL through a ``DashboardScope``, whose ``account_ids`` is
None only for a superuser looking at every account.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.db.models import (
    Aggregate,
    CharField,
    Count,
    F,
    Func,
    Max,
    Min,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.fields import FloatField
from django.db.models.functions import Lower, TruncDate
from django.utils import timezone

from chat.models import Feedback, Message
from kb.models import Account, Document, Membership
from kb.selectors.accounts import account_ids_for_user
from llm.models import LlmCall

PERIODS = (7, 30, 90)
DEFAULT_PERIOD = 30
# Stacked charts name this many accounts or features (the largest); the rest is "Other",
# so a chart stays readable with a hundred accounts.
TOP_SERIES = 6
OTHER = "Other"
NO_ACCOUNT = "(no account)"
TOP_UNANSWERED = 10
RECENT_FAILURES = 20
# Embedding calls (ingestion, queries, the citation check) are ledgered as
# "embedding:<what>"; they never hit the answer cache nor fall back, so they would only
# dilute the cache, fallback and error rates of the calls that write answers.
EMBEDDING_FEATURE_PREFIX = "embedding:"
FAILED_CALL_STATUSES = (LlmCall.Status.ERROR, LlmCall.Status.INTERRUPTED)
# Answers that ran to their end: their latency is that of a whole answer. Stopped and
# failed ones would mix the reader's patience and outages into it.
TIMED_ANSWER_STATUSES = (Message.Status.DONE, Message.Status.ABSTAINED)

AnyUser = AbstractBaseUser | AnonymousUser


class PercentileCont(Aggregate):
    """PostgreSQL's ``percentile_cont(f) WITHIN GROUP (ORDER BY x)``, which skips NULLs.

    An ordered-set aggregate: the fraction goes before WITHIN GROUP, which Aggregate's
    default template cannot express. The fraction is checked to be a number, then
    written into the SQL text (it is ours, never user input).
    """

    function = "percentile_cont"
    name = "PercentileCont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, *, fraction: float, **extra: Any) -> None:
        fraction = float(fraction)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"a percentile's fraction is between 0 and 1, not {fraction}")
        super().__init__(expression, fraction=repr(fraction), **extra)


class NormalisedQuestion(Func):
    """Lower case, runs of white space as one space, no surrounding spaces or final
    ``?!.``: "How do I export? " and "how do  I export" are the same question."""

    output_field = CharField()

    def __init__(self, expression: Any) -> None:
        collapsed = Func(
            Lower(expression),
            Value(r"\s+"),
            Value(" "),
            Value("g"),
            function="regexp_replace",
            output_field=CharField(),
        )
        super().__init__(collapsed, Value(" ?!."), function="btrim")


# --- who sees what ---------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardAccess:
    """Which accounts' figures a user may see on the dashboard."""

    every_account: bool  # a superuser: all accounts, and calls of no account
    accounts: tuple[Account, ...]  # the choices of the account filter

    @property
    def allowed(self) -> bool:
        return self.every_account or bool(self.accounts)


def dashboard_access(*, user: AnyUser) -> DashboardAccess:
    """Superusers see every account; other users the accounts they *administer*.

    An account's staff members (role "staff") see none: cost and failures are the
    admins' business, as in the audit log.
    """
    if getattr(user, "is_superuser", False):
        return DashboardAccess(every_account=True, accounts=tuple(Account.objects.all()))
    ids = account_ids_for_user(user=user, roles=(Membership.Role.ADMIN,))
    accounts = tuple(Account.objects.filter(id__in=ids)) if ids else ()
    return DashboardAccess(every_account=False, accounts=accounts)


def dashboard_allowed(*, user: AnyUser) -> bool:
    """Whether ``user`` may open the dashboard at all (the admin index's link)."""
    if getattr(user, "is_superuser", False):
        return True
    return bool(account_ids_for_user(user=user, roles=(Membership.Role.ADMIN,)))


@dataclass(frozen=True)
class DashboardScope:
    """The rows the dashboard reads: whose (``account_ids``; None: every account, and
    calls of no account) and which days (local dates, oldest first, today last)."""

    account_ids: frozenset[int] | None
    days: tuple[date, ...]

    @property
    def since(self) -> datetime:
        """The start of the first day, in the current time zone."""
        return timezone.make_aware(datetime.combine(self.days[0], time.min))

    def day_index(self) -> dict[date, int]:
        return {day: i for i, day in enumerate(self.days)}


def dashboard_scope(
    *,
    access: DashboardAccess,
    account_id: int | None,
    period_days: int,
    today: date | None = None,
) -> DashboardScope:
    """The scope of one dashboard page: ``account_id`` (if given) must be one of
    ``access.accounts``; without it, every account ``access`` allows."""
    if period_days not in PERIODS:
        raise ValueError(f"period must be one of {PERIODS}, not {period_days}")
    allowed = frozenset(account.pk for account in access.accounts)
    if account_id is not None:
        if account_id not in allowed:
            raise ValueError(f"account {account_id} is not visible to this user")
        account_ids: frozenset[int] | None = frozenset({account_id})
    else:
        account_ids = None if access.every_account else allowed
    last = today or timezone.localdate()
    days = tuple(last - timedelta(days=n) for n in range(period_days - 1, -1, -1))
    return DashboardScope(account_ids=account_ids, days=days)


def _scoped(queryset: QuerySet[Any], *, scope: DashboardScope, lookup: str) -> QuerySet[Any]:
    if scope.account_ids is None:
        return queryset
    return queryset.filter(**{f"{lookup}__in": scope.account_ids})


# --- the figures -----------------------------------------------------------------------


@dataclass(frozen=True)
class DailySeries:
    """One named line or stack of a chart: a value per day of the scope (None: no data)."""

    name: str
    values: tuple[float | None, ...]

    @property
    def total(self) -> float:
        return sum(value for value in self.values if value is not None)


@dataclass(frozen=True)
class CostReport:
    """Cost in dollars per day, stacked by account and by feature (LlmCall.cost)."""

    by_account: tuple[DailySeries, ...]
    by_feature: tuple[DailySeries, ...]
    total: Decimal
    calls: int


@dataclass(frozen=True)
class CallRates:
    """Shares (0–1) of the calls that write answers (not embeddings): served from the
    answer cache, made by a fallback entry of the route, failed (error or interrupted).
    A day without calls has None."""

    calls: tuple[int, ...]
    cache_hit: tuple[float | None, ...]
    fallback: tuple[float | None, ...]
    error: tuple[float | None, ...]
    total_calls: int
    total_cache_hits: int
    total_fallbacks: int
    total_errors: int

    @staticmethod
    def share(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    @property
    def cache_hit_rate(self) -> float | None:
        return self.share(self.total_cache_hits, self.total_calls)

    @property
    def fallback_rate(self) -> float | None:
        return self.share(self.total_fallbacks, self.total_calls)

    @property
    def error_rate(self) -> float | None:
        return self.share(self.total_errors, self.total_calls)


@dataclass(frozen=True)
class Percentiles:
    """Milliseconds; None without data."""

    p50: float | None
    p95: float | None
    p99: float | None


@dataclass(frozen=True)
class LatencyReport:
    """Whole answers (Message rows, done or abstained), not single model calls: the total
    time and the time to the first streamed token, as the asker felt them."""

    latency: tuple[Percentiles, ...]  # per day
    first_token: tuple[Percentiles, ...]
    latency_overall: Percentiles
    first_token_overall: Percentiles
    answers: int


@dataclass(frozen=True)
class FeedbackReport:
    """Thumbs given per day (by when the feedback was first given)."""

    up: tuple[int, ...]
    down: tuple[int, ...]

    @property
    def total_up(self) -> int:
        return sum(self.up)

    @property
    def total_down(self) -> int:
        return sum(self.down)

    @property
    def helpful_rate(self) -> float | None:
        given = self.total_up + self.total_down
        return self.total_up / given if given else None


@dataclass(frozen=True)
class UnansweredQuestion:
    """Questions answered with an abstention, grouped by their normalised text."""

    text: str  # one of the group's questions as asked
    count: int
    last_asked: datetime


@dataclass(frozen=True)
class FailedIngestion:
    document_id: int
    title: str
    knowledge_base: str
    account: str
    error: str
    failed_at: datetime


@dataclass(frozen=True)
class IngestionFailures:
    """Documents whose ingestion failed, by the day of their last update (when it failed)."""

    per_day: tuple[int, ...]
    recent: tuple[FailedIngestion, ...]  # most recent first

    @property
    def total(self) -> int:
        return sum(self.per_day)


CONTROL = "control"  # the answers a flag's variant did not apply to


@dataclass(frozen=True)
class VariantFigures:
    """The answers of one side of a rollout over the period: those made under ``variant``
    of a flag, or the control group (``variant`` None: every other answer)."""

    variant: str | None
    answers: int  # finished answers (answered, abstained, stopped, failed)
    abstained: int
    cost: Decimal  # the answers' own cost: the sum of their ledger rows
    latency: Percentiles  # whole answers, answered or abstained
    up: int
    down: int

    @property
    def label(self) -> str:
        return CONTROL if self.variant is None else self.variant

    @property
    def abstention_share(self) -> float | None:
        return self.abstained / self.answers if self.answers else None

    @property
    def cost_per_answer(self) -> Decimal | None:
        return self.cost / self.answers if self.answers else None

    @property
    def helpful_rate(self) -> float | None:
        given = self.up + self.down
        return self.up / given if given else None


@dataclass(frozen=True)
class FlagSplit:
    """One flag key's answers split by variant, variants by name, control last."""

    key: str
    groups: tuple[VariantFigures, ...]


@dataclass(frozen=True)
class Dashboard:
    scope: DashboardScope
    cost: CostReport
    rates: CallRates
    latency: LatencyReport
    feedback: FeedbackReport
    unanswered: tuple[UnansweredQuestion, ...]
    failures: IngestionFailures
    variants: tuple[FlagSplit, ...] = ()


def _daily_stacks(
    rows: Iterable[Mapping[str, Any]], *, key: str, value: str, scope: DashboardScope
) -> tuple[DailySeries, ...]:
    """Rows of (day, key, value) as one series per key, largest total first; beyond
    TOP_SERIES the smaller keys are summed into "Other"."""
    index = scope.day_index()
    per_key: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(scope.days))
    for row in rows:
        if row["day"] in index:
            per_key[row[key]][index[row["day"]]] += float(row[value] or 0)
    ranked = sorted(per_key.items(), key=lambda item: (-sum(item[1]), item[0]))
    shown, rest = ranked[:TOP_SERIES], ranked[TOP_SERIES:]
    if len(rest) == 1:  # "Other" for a single key would hide its name for nothing
        shown, rest = ranked, []
    series = [DailySeries(name, tuple(values)) for name, values in shown]
    if rest:
        other = [sum(values[i] for _, values in rest) for i in range(len(scope.days))]
        series.append(DailySeries(OTHER, tuple(other)))
    return tuple(series)


def dashboard_cost(*, scope: DashboardScope) -> CostReport:
    """Cost per day by account and by feature; two grouped queries."""
    calls = _scoped(
        LlmCall.objects.filter(created_at__gte=scope.since), scope=scope, lookup="account_id"
    ).annotate(day=TruncDate("created_at"))
    by_account = list(
        calls.values("day", "account__name")
        .annotate(cost=Sum("cost"), calls=Count("id"))
        .order_by()
    )
    by_feature = calls.values("day", "feature").annotate(cost=Sum("cost")).order_by()
    for row in by_account:
        row["account__name"] = row["account__name"] or NO_ACCOUNT
    return CostReport(
        by_account=_daily_stacks(by_account, key="account__name", value="cost", scope=scope),
        by_feature=_daily_stacks(by_feature, key="feature", value="cost", scope=scope),
        total=sum((row["cost"] or Decimal(0) for row in by_account), Decimal(0)),
        calls=sum(row["calls"] for row in by_account),
    )


def dashboard_call_rates(*, scope: DashboardScope) -> CallRates:
    """Cache hit, fallback and error rates per day of the calls that write answers."""
    rows = (
        _scoped(
            LlmCall.objects.filter(created_at__gte=scope.since).exclude(
                feature__startswith=EMBEDDING_FEATURE_PREFIX
            ),
            scope=scope,
            lookup="account_id",
        )
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(
            calls=Count("id"),
            cache_hits=Count("id", filter=Q(cache_hit=True)),
            fallbacks=Count("id", filter=Q(fallback_used=True)),
            errors=Count("id", filter=Q(status__in=FAILED_CALL_STATUSES)),
        )
        .order_by()
    )
    index = scope.day_index()
    counts = {
        name: [0] * len(scope.days) for name in ("calls", "cache_hits", "fallbacks", "errors")
    }
    for row in rows:
        if row["day"] in index:
            for name, per_day in counts.items():
                per_day[index[row["day"]]] = row[name]

    def shares(name: str) -> tuple[float | None, ...]:
        return tuple(
            CallRates.share(part, whole)
            for part, whole in zip(counts[name], counts["calls"], strict=True)
        )

    return CallRates(
        calls=tuple(counts["calls"]),
        cache_hit=shares("cache_hits"),
        fallback=shares("fallbacks"),
        error=shares("errors"),
        total_calls=sum(counts["calls"]),
        total_cache_hits=sum(counts["cache_hits"]),
        total_fallbacks=sum(counts["fallbacks"]),
        total_errors=sum(counts["errors"]),
    )


def _percentiles(prefix: str, field: str) -> dict[str, PercentileCont]:
    return {
        f"{prefix}_p{round(fraction * 100)}": PercentileCont(field, fraction=fraction)
        for fraction in (0.5, 0.95, 0.99)
    }


def _as_percentiles(row: Mapping[str, Any], prefix: str) -> Percentiles:
    return Percentiles(row[f"{prefix}_p50"], row[f"{prefix}_p95"], row[f"{prefix}_p99"])


def dashboard_latency(*, scope: DashboardScope) -> LatencyReport:
    """Answer latency and time to first token, p50/p95/p99 per day and over the period
    (percentile_cont in SQL: two queries)."""
    answers = _scoped(
        Message.objects.filter(
            role=Message.Role.ASSISTANT,
            status__in=TIMED_ANSWER_STATUSES,
            created_at__gte=scope.since,
            latency_ms__isnull=False,
        ),
        scope=scope,
        lookup="conversation__account_id",
    )
    aggregates = {
        **_percentiles("latency", "latency_ms"),
        **_percentiles("ttft", "time_to_first_token_ms"),
    }
    rows = (
        answers.annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(**aggregates)
        .order_by()
    )
    overall = answers.aggregate(answers=Count("id"), **aggregates)
    empty = Percentiles(None, None, None)
    latency = [empty] * len(scope.days)
    first_token = [empty] * len(scope.days)
    index = scope.day_index()
    for row in rows:
        if row["day"] in index:
            latency[index[row["day"]]] = _as_percentiles(row, "latency")
            first_token[index[row["day"]]] = _as_percentiles(row, "ttft")
    return LatencyReport(
        latency=tuple(latency),
        first_token=tuple(first_token),
        latency_overall=_as_percentiles(overall, "latency"),
        first_token_overall=_as_percentiles(overall, "ttft"),
        answers=overall["answers"],
    )


def dashboard_feedback(*, scope: DashboardScope) -> FeedbackReport:
    """Thumbs up and down per day."""
    rows = (
        _scoped(
            Feedback.objects.filter(created_at__gte=scope.since),
            scope=scope,
            lookup="message__conversation__account_id",
        )
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(
            up=Count("id", filter=Q(rating=Feedback.Rating.UP)),
            down=Count("id", filter=Q(rating=Feedback.Rating.DOWN)),
        )
        .order_by()
    )
    index = scope.day_index()
    up, down = [0] * len(scope.days), [0] * len(scope.days)
    for row in rows:
        if row["day"] in index:
            up[index[row["day"]]] = row["up"]
            down[index[row["day"]]] = row["down"]
    return FeedbackReport(up=tuple(up), down=tuple(down))


def dashboard_unanswered(*, scope: DashboardScope) -> tuple[UnansweredQuestion, ...]:
    """The questions most often answered with an abstention (the answer that stands, not
    one since regenerated), grouped by normalised text. Questions whose text the
    retention policy removed are left out: nothing is left to group or show."""
    rows = (
        _scoped(
            Message.objects.filter(
                role=Message.Role.ASSISTANT,
                status=Message.Status.ABSTAINED,
                superseded=False,
                created_at__gte=scope.since,
                question__isnull=False,
                question__purged_at__isnull=True,
            ).exclude(question__content=""),
            scope=scope,
            lookup="conversation__account_id",
        )
        .annotate(normalised=NormalisedQuestion(F("question__content")))
        .exclude(normalised="")
        .values("normalised")
        .annotate(count=Count("id"), text=Min("question__content"), last_asked=Max("created_at"))
        .order_by("-count", "-last_asked", "normalised")[:TOP_UNANSWERED]
    )
    return tuple(
        UnansweredQuestion(
            text=row["text"].strip(), count=row["count"], last_asked=row["last_asked"]
        )
        for row in rows
    )


def dashboard_ingestion_failures(*, scope: DashboardScope) -> IngestionFailures:
    """Failed documents per day and the most recent ones with their reason."""
    failed = _scoped(
        Document.objects.filter(status=Document.Status.FAILED, updated_at__gte=scope.since),
        scope=scope,
        lookup="account_id",
    )
    rows = failed.annotate(day=TruncDate("updated_at")).values("day").annotate(n=Count("id"))
    index = scope.day_index()
    per_day = [0] * len(scope.days)
    for row in rows.order_by():
        if row["day"] in index:
            per_day[index[row["day"]]] = row["n"]
    recent = (
        failed.order_by("-updated_at", "-id")
        .values("id", "title", "knowledge_base__name", "account__name", "error", "updated_at")
        [:RECENT_FAILURES]
    )  # fmt: skip
    return IngestionFailures(
        per_day=tuple(per_day),
        recent=tuple(
            FailedIngestion(
                document_id=row["id"],
                title=row["title"],
                knowledge_base=row["knowledge_base__name"],
                account=row["account__name"],
                error=row["error"],
                failed_at=row["updated_at"],
            )
            for row in recent
        ),
    )


# The split in one statement. ``answers`` is the dashboard's scoped queryset of finished
# answers (built with the ORM, so the account filter is the same _scoped one); each answer
# is counted once per flag key seen in the period: under its variant of that key
# (``flags ->> key``), or as control (NULL) when the key was not in force for it. Thumbs
# are summed per answer first, so an answer with several ratings is not counted twice.
_VARIANT_SPLIT_SQL = """
WITH answers AS ({answers}),
keys AS (SELECT DISTINCT jsonb_object_keys(flags) AS key FROM answers),
thumbs AS (
    SELECT message_id,
           COUNT(*) FILTER (WHERE rating = %s) AS up,
           COUNT(*) FILTER (WHERE rating = %s) AS down
    FROM chat_feedback WHERE message_id IN (SELECT id FROM answers) GROUP BY message_id
)
SELECT keys.key, answers.flags ->> keys.key AS variant,
       COUNT(*) AS answers,
       COUNT(*) FILTER (WHERE answers.status = %s) AS abstained,
       COALESCE(SUM(answers.cost), 0) AS cost,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY answers.latency_ms)
           FILTER (WHERE answers.status = ANY(%s)) AS p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY answers.latency_ms)
           FILTER (WHERE answers.status = ANY(%s)) AS p95,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY answers.latency_ms)
           FILTER (WHERE answers.status = ANY(%s)) AS p99,
       COALESCE(SUM(thumbs.up), 0) AS up,
       COALESCE(SUM(thumbs.down), 0) AS down
FROM keys CROSS JOIN answers LEFT JOIN thumbs ON thumbs.message_id = answers.id
GROUP BY keys.key, variant
"""


def dashboard_variants(*, scope: DashboardScope) -> tuple[FlagSplit, ...]:
    """Per feature-flag key seen on the period's answers (``Message.flags``): answers,
    cost, latency, thumbs and abstention under each variant and in the control group,
    so a 5% rollout can be compared with the rest. One query, whatever the volume."""
    answers = _scoped(
        Message.objects.filter(
            role=Message.Role.ASSISTANT,
            status__in=Message.FINAL_STATUSES,
            created_at__gte=scope.since,
        ),
        scope=scope,
        lookup="conversation__account_id",
    ).values("id", "flags", "status", "latency_ms", "cost")
    inner, inner_params = answers.query.sql_with_params()
    timed = [str(status) for status in TIMED_ANSWER_STATUSES]
    params = (
        *inner_params, Feedback.Rating.UP, Feedback.Rating.DOWN, Message.Status.ABSTAINED,
        timed, timed, timed,
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(_VARIANT_SPLIT_SQL.format(answers=inner), params)
        rows = cursor.fetchall()
    groups: dict[str, list[VariantFigures]] = defaultdict(list)
    for key, variant, count, abstained, cost, p50, p95, p99, up, down in rows:
        groups[key].append(
            VariantFigures(
                variant=variant,
                answers=count,
                abstained=abstained,
                cost=Decimal(cost),
                latency=Percentiles(p50, p95, p99),
                up=int(up),
                down=int(down),
            )  # fmt: skip
        )
    return tuple(
        FlagSplit(key, tuple(sorted(found, key=lambda g: (g.variant is None, g.variant or ""))))
        for key, found in sorted(groups.items())
    )


def dashboard_read(*, scope: DashboardScope) -> Dashboard:
    """Every figure of the dashboard for ``scope``: ten queries, whatever the volume."""
    return Dashboard(
        scope=scope,
        cost=dashboard_cost(scope=scope),
        rates=dashboard_call_rates(scope=scope),
        latency=dashboard_latency(scope=scope),
        feedback=dashboard_feedback(scope=scope),
        unanswered=dashboard_unanswered(scope=scope),
        failures=dashboard_ingestion_failures(scope=scope),
        variants=dashboard_variants(scope=scope),
    )
