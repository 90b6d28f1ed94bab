"""The dashboard's variant split: a rollout's answers against the rest, from rows whose
costs, latencies, thumbs and outcomes the test knows."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.models import Feedback, Message
from chat.selectors.dashboard import (
    DashboardAccess,
    dashboard_scope,
    dashboard_variants,
)
from tests.factories import make_account, make_user
from tests.support.dashboard_data import answer, feedback, make_asker

pytestmark = pytest.mark.django_db

URL = "/admin/dashboard/"


def flagged_answer(asker, *, flags, cost, latency, status=Message.Status.DONE, days_ago=1):
    reply = answer(asker, days_ago=days_ago, latency_ms=latency, status=status)
    Message.objects.filter(pk=reply.pk).update(flags=flags, cost=Decimal(cost))
    return reply


@pytest.fixture
def rollout():
    """Acme: four answers under prompt_version v1 ($0.01 each, 100–400 ms, one of them
    abstained; 2 thumbs up), six without it ($0.02 each, 1000 ms ×3 and 2000 ms ×3; one up,
    two down), two of those also under semantic_cache off. Bolt: a v1 answer of its own."""
    acme, bolt = make_account("Acme"), make_account("Bolt")
    asker, bolt_asker = make_asker(acme), make_asker(bolt)
    v1 = {"prompt_version": "v1"}
    variant = [
        flagged_answer(asker, flags=v1, cost="0.01", latency=latency, status=status)
        for latency, status in [
            (100, Message.Status.DONE), (200, Message.Status.DONE),
            (300, Message.Status.DONE), (400, Message.Status.ABSTAINED),
        ]
    ]  # fmt: skip
    control = [
        flagged_answer(
            asker, flags={"semantic_cache": "off"} if n < 2 else {}, cost="0.02", latency=latency
        )
        for n, latency in enumerate([1000, 1000, 1000, 2000, 2000, 2000])
    ]
    feedback(asker, variant[0], rating=Feedback.Rating.UP, days_ago=1)
    feedback(asker, variant[1], rating=Feedback.Rating.UP, days_ago=1)
    feedback(asker, control[0], rating=Feedback.Rating.UP, days_ago=1)
    feedback(asker, control[1], rating=Feedback.Rating.DOWN, days_ago=1)
    feedback(asker, control[2], rating=Feedback.Rating.DOWN, days_ago=1)
    # A second rating of the same answer counts as a second thumb, not a second answer.
    feedback(asker, control[2], rating=Feedback.Rating.DOWN, days_ago=1)
    flagged_answer(bolt_asker, flags=v1, cost="5.00", latency=9000)
    # Out of the period: not counted.
    flagged_answer(asker, flags=v1, cost="1.00", latency=5, days_ago=60)
    return acme, bolt


def test_a_rollouts_answers_are_split_from_the_rest_by_variant(rollout) -> None:
    acme, bolt = rollout
    access = DashboardAccess(every_account=False, accounts=(acme, bolt))
    scope = dashboard_scope(access=access, account_id=acme.pk, period_days=30)

    with CaptureQueriesContext(connection) as queries:
        splits = {split.key: split for split in dashboard_variants(scope=scope)}

    assert len(queries) == 1  # one statement, whatever the number of flags and rows
    assert sorted(splits) == ["prompt_version", "semantic_cache"]
    variant, control = splits["prompt_version"].groups  # the variants first, control last
    assert (variant.label, control.label) == ("v1", "control")
    assert (variant.answers, control.answers) == (4, 6)
    assert (variant.cost, control.cost) == (Decimal("0.04"), Decimal("0.12"))
    assert variant.cost_per_answer == Decimal("0.01")
    assert variant.latency.p50 == pytest.approx(250) and variant.latency.p95 == pytest.approx(385)
    assert control.latency.p50 == pytest.approx(1500)
    assert (variant.up, variant.down, control.up, control.down) == (2, 0, 1, 3)
    assert variant.abstention_share == pytest.approx(0.25) and control.abstention_share == 0
    off, rest = splits["semantic_cache"].groups
    assert (off.label, off.answers, rest.answers) == ("off", 2, 8)
    assert (off.up, off.down) == (1, 1)


def test_the_split_of_every_account_adds_the_other_accounts_rows(rollout) -> None:
    acme, bolt = rollout
    scope = dashboard_scope(
        access=DashboardAccess(every_account=True, accounts=(acme, bolt)),
        account_id=None,
        period_days=30,
    )

    variant, _ = {s.key: s for s in dashboard_variants(scope=scope)}["prompt_version"].groups

    assert variant.answers == 5 and variant.cost == Decimal("5.04")


def test_the_dashboard_page_shows_the_split(client, rollout) -> None:
    acme, _ = rollout
    admin = make_user(account=acme, role="admin")
    client.force_login(admin)

    page = client.get(URL, {"period": 30}).content.decode()

    table = page[page.index('id="flag-prompt_version"') :]
    table = table[: table.index("</table>")]
    assert '<th scope="row">v1</th><td class="number">4</td>' in table
    assert '<th scope="row">control</th><td class="number">6</td>' in table
    assert "$0.12" in table and "250 ms" in table and ">25%<" in table


def test_without_flags_the_section_says_so(client) -> None:
    acme = make_account("Acme")
    answer(make_asker(acme), days_ago=1)
    client.force_login(make_user(account=acme, role="admin"))

    page = client.get(URL).content.decode()

    assert "No answer of this period was made under a feature flag" in page
