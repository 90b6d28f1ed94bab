"""The admin dashboard in a real browser: headless Chromium against the live ASGI server.

What only a browser can show: that the server-rendered SVG charts are drawn under the
strict Content-Security-Policy (no script, no inline style refused on the way), with the
bars, points and labels the seeded rows call for. The screenshot goes to
test-artifacts/browser/dashboard.png.
"""

from __future__ import annotations

import shutil

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import ConsoleMessage, Page, expect

from tests.browser.conftest import ARTIFACTS
from tests.support.dashboard_data import Seeded, day, seed_two_accounts

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct horse battery"
PERIOD = 30  # the dashboard's default
# Installed before any page script runs: every CSP violation the page causes, whether
# or not the browser also logs it.
CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


@pytest.fixture
def seeded(transactional_db: None) -> Seeded:
    return seed_two_accounts()


@pytest.fixture
def administrator(transactional_db: None):
    return get_user_model().objects.create_superuser(username="admin", password=PASSWORD)


def chart_label(days_ago: int) -> str:
    shown = day(days_ago)
    return f"{shown:%b} {shown.day}"


def count(page: Page, selector: str) -> int:
    return int(page.locator(selector).count())


def test_the_dashboard_draws_every_chart_under_the_strict_csp(
    seeded, administrator, page, screenshot
):
    # Given an administrator, and a week of activity in two accounts
    console: list[str] = []

    def note(message: ConsoleMessage) -> None:
        console.append(f"{message.type}: {message.text}")

    page.on("console", note)
    page.add_init_script(CSP_RECORDER)

    # When they log in to the admin and follow the index's link to the dashboard
    page.goto("/admin/login/?next=/admin/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/admin/")
    screenshot(page, "admin-index", full_page=False)
    page.locator("#cairn-dashboard-link").get_by_role("link", name="Dashboard").click()
    page.wait_for_url("**/admin/dashboard/")

    # Then the tiles sum up the period
    expect(page.locator("h1")).to_have_text("Dashboard")
    tiles = page.locator(".dashboard-tile")
    expect(tiles.filter(has_text="Cost")).to_contain_text("$2.75")
    expect(tiles.filter(has_text="Helpful")).to_contain_text("66.7%")

    # And every chart is an accessible SVG, drawn at a readable size
    for chart_id, title in [
        ("cost-by-account", "Cost per day by account"),
        ("cost-by-feature", "Cost per day by feature"),
        ("answer-latency", "Answer latency"),
        ("first-token", "Time to first token"),
        ("call-rates", "Cache hits, fallbacks and errors"),
        ("feedback", "Thumbs up and down"),
        ("ingestion-failures", "Ingestion failures"),
    ]:
        chart = page.locator(f"svg#{chart_id}")
        expect(chart).to_be_visible()
        expect(chart).to_have_attribute("role", "img")
        expect(chart.locator("title").first).to_have_text(title)
        box = chart.bounding_box()
        assert box is not None and box["width"] > 400 and box["height"] > 150, (chart_id, box)

    # And the bars and points are those of the seeded rows: a bar per day of the period,
    # a segment per non-zero value, a point per day with data (p50, p95, p99)
    for chart_id in ("cost-by-account", "cost-by-feature", "feedback", "ingestion-failures"):
        assert count(page, f"svg#{chart_id} g.bar") == PERIOD, chart_id
    assert count(page, "svg#cost-by-account rect.segment") == 3  # Acme, then Bolt + Acme
    assert count(page, "svg#cost-by-feature rect.segment") == 3
    assert count(page, "svg#feedback rect.segment") == 2
    assert count(page, "svg#ingestion-failures rect.segment") == 2
    assert count(page, "svg#answer-latency circle.point") == 3
    assert count(page, "svg#first-token circle.point") == 3
    assert count(page, "svg#call-rates circle.point") == 3 * 2
    expect(page.locator("svg#cost-by-account .legend-label")).to_have_text(["Bolt", "Acme"])
    expect(page.locator("svg#call-rates .legend-label")).to_have_text(
        ["Cache hits", "Fallbacks", "Errors"]
    )
    # Every fifth day is labelled (at most seven labels), today's bar is last
    x_labels = page.locator("svg#cost-by-account text.x-label")
    expect(x_labels).to_have_count(6)
    expect(x_labels.first).to_have_text(chart_label(PERIOD - 1))
    expect(page.locator("svg#cost-by-account g.bar").last).to_have_attribute(
        "data-label", chart_label(0)
    )
    expect(page.locator("svg#answer-latency text.y-label").last).to_have_text("400 ms")

    # And the lists show the unanswered questions and the failed documents
    expect(page.locator("#unanswered-questions tbody tr")).to_have_count(3)
    expect(page.locator("#unanswered-questions tbody tr").first).to_contain_text(
        "How do I export invoices"
    )
    expect(page.locator("#recent-failures tbody tr")).to_have_count(2)

    # And each chart's table opens under it
    table = page.locator("#panel-cost-by-account table.chart-table")
    expect(table).to_be_hidden()
    page.locator("#panel-cost-by-account summary").click()
    expect(table).to_be_visible()
    expect(table.locator("tbody tr")).to_have_count(PERIOD)
    page.locator("#panel-cost-by-account summary").click()

    # And nothing was refused by the Content-Security-Policy
    violations = page.evaluate("window.__cspViolations")
    assert violations == [], violations
    assert not [line for line in console if "Content Security Policy" in line], console

    path = screenshot(page, "dashboard")  # full page
    shutil.copyfile(path, ARTIFACTS / "dashboard.png")

    # When they narrow it to one account and the last 7 days
    page.get_by_label("Account", exact=True).select_option(label="Acme")
    page.get_by_label("Period", exact=True).select_option(label="Last 7 days")
    page.get_by_role("button", name="Show").click()

    # Then only that account's figures are drawn
    expect(page.locator("svg#cost-by-account g.bar")).to_have_count(7)
    expect(page.locator("svg#cost-by-account rect.segment")).to_have_count(2)
    expect(page.locator("svg#cost-by-account .legend-label")).to_have_text(["Acme"])
    expect(page.locator("#recent-failures tbody tr")).to_have_count(1)
    assert page.evaluate("window.__cspViolations") == []
    screenshot(page, "one-account")
