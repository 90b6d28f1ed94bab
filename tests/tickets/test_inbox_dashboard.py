"""Time to first response and time to resolution per queue, on the admin dashboard.

Medians and 90th percentiles (percentile_cont, in SQL) over the tickets opened in the
dashboard's period, of the accounts the viewer administers; the section is added to the
dashboard through chat.dashboard.sections, which chat owns and tickets registers into.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from chat.dashboard.sections import _sections
from chat.selectors.dashboard import dashboard_access, dashboard_scope
from tests.factories import make_account, make_user
from tests.tickets.core_support import queue
from tickets.dashboard import SECTION, duration, ticket_timings
from tickets.models import Ticket

pytestmark = pytest.mark.django_db

MINUTE, HOUR = 60.0, 3600.0


@pytest.fixture
def section() -> Iterator[None]:
    # The tickets app registers its section when Django starts (TicketsConfig.ready).
    assert SECTION in _sections
    yield


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def ticket(account, queue_, *, opened_ago: timedelta, responded: float | None = None,
           solved: float | None = None) -> Ticket:  # fmt: skip
    """A ticket opened ``opened_ago``, answered and solved that many seconds after."""
    made = Ticket.objects.create(account=account, origin="api", subject="Q", question="Q?",
                                 queue=queue_)  # fmt: skip
    opened = timezone.now() - opened_ago
    Ticket.objects.filter(pk=made.pk).update(
        created_at=opened,
        first_response_at=None if responded is None else opened + timedelta(seconds=responded),
        solved_at=None if solved is None else opened + timedelta(seconds=solved),
    )
    return made


def test_timings_per_queue_are_medians_and_90th_percentiles_of_the_period(section) -> None:
    # Given an account's billing queue: three answered tickets, two of them solved, one
    # still waiting; a technical queue with one; and tickets outside the scope
    account, other = make_account("Ledgerly"), make_account("Elsewhere")
    billing, technical = queue(account, "Billing"), queue(account, "Technical")
    day = timedelta(days=1)
    ticket(account, billing, opened_ago=day, responded=10 * MINUTE, solved=1 * HOUR)
    ticket(account, billing, opened_ago=day, responded=20 * MINUTE, solved=3 * HOUR)
    ticket(account, billing, opened_ago=day, responded=30 * MINUTE)
    ticket(account, billing, opened_ago=day)
    ticket(account, technical, opened_ago=day, responded=2 * MINUTE, solved=5 * MINUTE)
    ticket(account, billing, opened_ago=timedelta(days=40), responded=99 * HOUR)  # too old
    ticket(other, queue(other, "Billing"), opened_ago=day, responded=99 * HOUR)  # not ours
    admin = make_user(staff=True, account=account, role="admin")
    scope = dashboard_scope(access=dashboard_access(user=admin), account_id=None, period_days=30)

    # When the figures are read
    per_queue, overall = ticket_timings(scope=scope)

    # Then each queue's are those of its tickets in the period (percentile_cont)
    by_name = {row.queue: row for row in per_queue}
    assert set(by_name) == {"Billing", "Technical"}
    row = by_name["Billing"]
    assert (row.tickets, row.responded, row.solved) == (4, 3, 2)
    assert row.first_response_p50 == pytest.approx(20 * MINUTE)
    assert row.first_response_p90 == pytest.approx(28 * MINUTE)
    assert row.resolution_p50 == pytest.approx(2 * HOUR)
    assert row.resolution_p90 == pytest.approx(2.8 * HOUR)
    assert by_name["Technical"].resolution_p50 == pytest.approx(5 * MINUTE)
    assert overall is not None and overall.tickets == 5
    assert overall.first_response_p50 == pytest.approx(15 * MINUTE)

    # And the dashboard shows them in words
    html = client_for(admin).get("/admin/dashboard/").content.decode()
    assert 'id="ticket-timings"' in html
    billing_row = html[html.index('<th scope="row">Billing</th>') :].split("</tr>")[0]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", billing_row)
    assert cells == ["4", "20 min", "28 min", "2.0 h", "2.8 h"]
    assert "99.0 h" not in html and "4.1 d" not in html


def test_the_section_says_so_when_no_ticket_was_opened(section) -> None:
    admin = make_user(staff=True, account=make_account("Quiet"), role="admin")
    html = client_for(admin).get("/admin/dashboard/").content.decode()

    assert "No tickets opened in this period." in html


def test_durations_read_as_people_say_them() -> None:
    assert [duration(s) for s in (None, 45, 12 * MINUTE, 3.5 * HOUR, 50 * HOUR)] == [
        "–", "45 s", "12 min", "3.5 h", "2.1 d",
    ]  # fmt: skip
