"""The admin dashboard: each chart's numbers from known rows, tenant scoping, access, and
a bounded number of queries."""

from __future__ import annotations

import re
from decimal import Decimal
from xml.etree import ElementTree

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chat.dashboard.sections import _sections
from chat.models import Feedback, Message
from chat.selectors.dashboard import (
    DashboardAccess,
    dashboard_access,
    dashboard_read,
    dashboard_scope,
)
from tests.factories import make_account, make_user
from tests.support.dashboard_data import (
    answer,
    day,
    failed_document,
    feedback,
    ledger_call,
    make_asker,
    seed_two_accounts,
)

pytestmark = pytest.mark.django_db

URL = "/admin/dashboard/"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def seeded():
    return seed_two_accounts()


@pytest.fixture
def superuser():
    return get_user_model().objects.create_superuser(
        username="root", password="correct horse battery"
    )


def figures_for(user, *, account=None, period=7):
    access = dashboard_access(user=user)
    scope = dashboard_scope(
        access=access, account_id=account.pk if account else None, period_days=period
    )
    return dashboard_read(scope=scope)


def series_by_name(series):
    return {s.name: list(s.values) for s in series}


def chart(page: str, chart_id: str) -> ElementTree.Element:
    """The chart's <svg> element, parsed as XML (so it is well-formed)."""
    match = re.search(rf'<svg [^>]*id="{chart_id}".*?</svg>', page, re.S)
    assert match, f"no chart {chart_id}"
    return ElementTree.fromstring(match.group(0))  # noqa: S314 — our own markup


# --- the numbers -----------------------------------------------------------------------


def test_cost_per_day_is_stacked_by_account_and_by_feature(seeded, superuser):
    figures = figures_for(superuser)

    # The period is the last 7 days, today last
    assert figures.scope.days == tuple(day(n) for n in range(6, -1, -1))
    by_account = series_by_name(figures.cost.by_account)
    # Largest total first: Bolt's $2, then Acme's $0.75
    assert [s.name for s in figures.cost.by_account] == ["Bolt", "Acme"]
    assert by_account["Acme"] == [0, 0, 0, 0.5, 0, 0, 0.25]
    assert by_account["Bolt"] == [0, 0, 0, 0, 0, 0, 2.0]
    by_feature = series_by_name(figures.cost.by_feature)
    assert by_feature["answer"] == [0, 0, 0, 0.4, 0, 0, 2.25]
    assert by_feature["embedding:query"] == [0, 0, 0, 0.1, 0, 0, 0]
    assert figures.cost.total == Decimal("2.75")
    assert figures.cost.calls == 6


def test_calls_of_no_account_count_for_superusers_only(seeded, superuser):
    # Given a guard embedding of no account
    ledger_call(None, days_ago=0, cost="0.05", feature="embedding:guard")

    # Then superusers see it as "(no account)"; Acme's admin does not
    assert series_by_name(figures_for(superuser).cost.by_account)["(no account)"][-1] == 0.05
    acme_only = figures_for(seeded.acme_admin)
    assert [s.name for s in acme_only.cost.by_account] == ["Acme"]


def test_many_accounts_are_summed_into_other_beyond_six(superuser):
    for n in range(8):
        ledger_call(make_account(f"Tenant {n}"), days_ago=0, cost=f"{n + 1}")

    names = [s.name for s in figures_for(superuser).cost.by_account]

    assert names == [f"Tenant {n}" for n in range(7, 1, -1)] + ["Other"]
    assert figures_for(superuser).cost.by_account[-1].values[-1] == 3.0  # $1 + $2


def test_cache_fallback_and_error_rates_are_shares_of_answer_calls(seeded, superuser):
    rates = figures_for(superuser, account=seeded.acme).rates

    # Embedding calls are left out: three days ago one answer call, today three
    assert rates.calls == (0, 0, 0, 1, 0, 0, 3)
    assert rates.cache_hit == (None, None, None, 0.0, None, None, pytest.approx(1 / 3))
    assert rates.fallback[-1] == pytest.approx(1 / 3)
    assert rates.error[-1] == pytest.approx(1 / 3)
    assert (rates.total_calls, rates.total_cache_hits, rates.total_errors) == (4, 1, 1)
    assert rates.cache_hit_rate == rates.error_rate == rates.fallback_rate == 0.25


def test_interrupted_calls_count_as_errors(superuser):
    account = make_account()
    ledger_call(account, days_ago=0, status="interrupted")
    ledger_call(account, days_ago=0, status="ok")

    assert figures_for(superuser).rates.error[-1] == 0.5


def test_latency_percentiles_of_whole_answers(seeded, superuser):
    latency = figures_for(superuser).latency

    # percentile_cont over 100, 200, 300, 400 ms: interpolated between neighbours
    three_days_ago = latency.latency[3]
    assert three_days_ago.p50 == pytest.approx(250)
    assert three_days_ago.p95 == pytest.approx(385)
    assert three_days_ago.p99 == pytest.approx(397)
    assert latency.first_token[3].p50 == pytest.approx(25)
    assert latency.latency[0].p50 is None  # a day without answers
    assert latency.latency_overall.p50 == pytest.approx(250)
    assert latency.answers == 4  # abstentions without a latency are not timed


def test_latency_leaves_out_stopped_and_failed_answers(superuser):
    asker = make_asker(make_account())
    answer(asker, days_ago=0, latency_ms=100)
    answer(asker, days_ago=0, latency_ms=90_000, status=Message.Status.STOPPED)
    answer(asker, days_ago=0, latency_ms=90_000, status=Message.Status.FAILED)

    latency = figures_for(superuser).latency

    assert latency.latency[-1].p99 == 100
    assert latency.answers == 1


def test_thumbs_up_and_down_per_day(seeded, superuser):
    given = figures_for(superuser).feedback

    assert given.up == (0, 0, 0, 2, 0, 0, 0)
    assert given.down == (0, 0, 0, 0, 0, 1, 0)
    assert given.helpful_rate == pytest.approx(2 / 3)


def test_unanswered_questions_are_grouped_by_normalised_text(seeded, superuser):
    # Given also a purged abstention, one superseded by a regenerated answer, and one
    # older than the period
    answer(seeded.acme_asker, days_ago=1, status=Message.Status.ABSTAINED, purged=True)
    answer(
        seeded.acme_asker,
        days_ago=1,
        question="Is there a mobile app",
        status=Message.Status.ABSTAINED,
        superseded=True,
    )
    answer(seeded.acme_asker, days_ago=10, question="Old one?", status=Message.Status.ABSTAINED)

    unanswered = figures_for(superuser, account=seeded.acme).unanswered

    assert [(q.text, q.count) for q in unanswered] == [
        ("How do I export invoices", 3),  # one of the group as asked
        ("Is there a mobile app", 1),
    ]


def test_unanswered_questions_are_the_top_ten(superuser):
    asker = make_asker(make_account())
    for n in range(12):
        for _ in range(n + 1):
            answer(asker, days_ago=0, question=f"Question {n}?", status=Message.Status.ABSTAINED)

    unanswered = figures_for(superuser).unanswered

    assert [q.count for q in unanswered] == list(range(12, 2, -1))


def test_ingestion_failures_per_day_and_most_recent_first(seeded, superuser):
    failed_document(
        seeded.acme_asker.knowledge_base, title="Later", error="Too big.", days_ago=2, hour=18
    )

    failures = figures_for(superuser).failures

    assert failures.per_day == (0, 0, 0, 0, 2, 1, 0)
    assert [f.title for f in failures.recent] == [
        "Bolt secret roadmap",
        "Later",
        "Scanned contract",
    ]
    assert failures.recent[2].error == "The PDF has no text layer."
    assert failures.recent[2].knowledge_base == "Acme help"


def test_the_period_bounds_every_figure(seeded, superuser):
    # Given activity 20 days ago
    ledger_call(seeded.acme, days_ago=20, cost="9")

    # Then the last 7 days leave it out, the last 30 count it
    assert figures_for(superuser, period=7).cost.total == Decimal("2.75")
    thirty = figures_for(superuser, period=30)
    assert len(thirty.scope.days) == 30
    assert thirty.cost.total == Decimal("11.75")


# --- the page --------------------------------------------------------------------------


def test_the_page_draws_each_chart_from_the_figures(client, seeded, superuser):
    client.force_login(superuser)

    response = client.get(URL, {"period": 7})

    assert response.status_code == 200
    page = response.content.decode()
    cost = chart(page, "cost-by-account")
    bars = cost.findall(f".//{SVG}g[@class='bar']")
    assert len(bars) == 7
    # Three days ago Acme's $0.50; today Bolt's $2 and Acme's $0.25
    assert [len(bar.findall(f"{SVG}rect")) for bar in bars] == [0, 0, 0, 1, 0, 0, 2]
    assert (bars[-1].findtext(f"{SVG}title") or "").endswith("Bolt $2.00; Acme $0.25; total $2.25")
    assert [t.text for t in cost.findall(f".//{SVG}text[@class='legend-label']")] == [
        "Bolt",
        "Acme",
    ]
    latency = chart(page, "answer-latency")
    assert latency.findtext(f"{SVG}title") == "Answer latency"
    points = latency.findall(f".//{SVG}circle[@class='point']")
    assert len(points) == 3  # p50, p95 and p99 on the one day with answers
    assert points[0].findtext(f"{SVG}title") == f"{day(3):%b} {day(3).day}: p50 250 ms"
    rates = chart(page, "call-rates")
    assert len(rates.findall(f".//{SVG}circle[@class='point']")) == 3 * 2  # two days
    feedback_bars = chart(page, "feedback").findall(f".//{SVG}rect[@class='segment']")
    assert len(feedback_bars) == 2
    failures = chart(page, "ingestion-failures").findall(f".//{SVG}g[@class='bar']")
    assert [f.findtext(f"{SVG}title") for f in failures][-3:-1] == [
        f"{day(2):%b} {day(2).day}: 1",
        f"{day(1):%b} {day(1).day}: 1",
    ]
    # Tiles, tables and lists
    assert "$2.75" in page
    assert "How do I export invoices" in page and '<td class="number">3</td>' in page
    assert "The PDF has no text layer." in page
    assert page.count('<table class="chart-table">') == 7


def test_an_account_admin_sees_only_their_account(client, seeded):
    client.force_login(seeded.acme_admin)

    page = client.get(URL).content.decode()

    assert "Acme" in page and "Scanned contract" in page
    assert "Bolt" not in page, "no other account's name, document or question"
    assert "$0.75" in page and "$2.75" not in page


def test_an_account_admin_cannot_pick_another_account(client, seeded):
    client.force_login(seeded.acme_admin)

    page = client.get(URL, {"account": seeded.bolt.pk}).content.decode()

    assert "cannot be shown" in page
    assert "Bolt" not in page


def test_a_superuser_filters_by_account(client, seeded, superuser):
    client.force_login(superuser)

    page = client.get(URL, {"account": seeded.bolt.pk, "period": 30}).content.decode()

    assert "Bolt secret roadmap" in page and "Scanned contract" not in page
    assert f'<option value="{seeded.bolt.pk}" selected>Bolt</option>' in page
    assert '<option value="30" selected>Last 30 days</option>' in page


def test_staff_without_the_admin_role_get_403(client):
    account = make_account()
    for user in (make_user(account=account, role="staff"), make_user()):
        client.force_login(user)
        assert client.get(URL).status_code == 403


def test_anonymous_visitors_are_sent_to_the_admin_login(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert response.url == f"{reverse('admin:login')}?next={URL}"


def test_the_admin_index_links_to_the_dashboard_for_those_it_lets_in(client, seeded):
    client.force_login(seeded.acme_admin)
    assert f'href="{URL}"' in client.get(reverse("admin:index")).content.decode()

    client.force_login(make_user(account=seeded.acme, role="staff"))
    assert f'href="{URL}"' not in client.get(reverse("admin:index")).content.decode()


def queries_of_a_page(client, user) -> int:
    client.force_login(user)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(URL, {"period": 90}).status_code == 200
    return len(queries)


def test_the_page_needs_a_bounded_number_of_queries(
    client, seeded, superuser, django_assert_max_num_queries
):
    # Given a first count for an account admin, whose admin pages also check their
    # memberships for each entry of the admin's navigation
    first_count = queries_of_a_page(client, seeded.acme_admin)

    # When there are ten times more rows of every kind
    asker = seeded.acme_asker
    for n in range(50):
        ledger_call(seeded.acme, days_ago=n % 7, cost="0.01", feature=f"feature-{n % 9}")
        reply = answer(asker, days_ago=n % 7, question=f"Q{n}", status=Message.Status.ABSTAINED)
        feedback(asker, reply, rating=Feedback.Rating.UP, days_ago=n % 7)
        failed_document(asker.knowledge_base, title=f"Doc {n}", error="Bad.", days_ago=n % 7)

    # Then the account admin's page takes as many queries as before, and a superuser's a
    # fixed handful: session, user, accounts, and the ten of the figures (the feature-flag
    # split among them), plus one for each section another app adds (tickets' timings)
    assert queries_of_a_page(client, seeded.acme_admin) == first_count
    client.force_login(superuser)
    with django_assert_max_num_queries(13 + len(_sections)):
        response = client.get(URL, {"period": 90})
    assert response.status_code == 200


def test_the_scope_refuses_an_account_the_user_cannot_see(seeded):
    access = DashboardAccess(every_account=False, accounts=(seeded.acme,))

    with pytest.raises(ValueError, match="not visible"):
        dashboard_scope(access=access, account_id=seeded.bolt.pk, period_days=7)
    with pytest.raises(ValueError, match="period"):
        dashboard_scope(access=access, account_id=None, period_days=12)
