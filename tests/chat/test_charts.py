"""The SVG chart helpers: valid SVG, readable when empty, inert with hostile text."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest

from chat.dashboard.charts import (
    Series,
    bar_chart,
    data_table,
    dollars,
    line_chart,
    milliseconds,
    nice_scale,
    percent,
    stacked_bar_chart,
)

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
DAYS = ["Mar 1", "Mar 2", "Mar 3"]


def parse(svg: str) -> ElementTree.Element:
    root = ElementTree.fromstring(svg)  # noqa: S314 — our own markup; raises unless well-formed
    assert root.tag == f"{SVG}svg"
    return root


def one(root: ElementTree.Element, path: str) -> ElementTree.Element:
    found = root.find(path)
    assert found is not None, path
    return found


def texts(root: ElementTree.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


@pytest.mark.parametrize(
    ("labels", "draw"),
    [
        ([], lambda **kw: bar_chart(values=[], **kw)),
        (DAYS, lambda **kw: bar_chart(values=[0, 0, None], **kw)),
        (DAYS, lambda **kw: stacked_bar_chart(series=[], **kw)),
        (DAYS, lambda **kw: line_chart(series=[Series("p50", [None, None, None])], **kw)),
        ([], lambda **kw: line_chart(series=[Series("p50", [])], **kw)),
    ],
    ids=["bars-no-labels", "bars-all-zero", "stacked-no-series", "line-all-gaps", "line-none"],
)
def test_empty_data_renders_a_readable_no_data_in_valid_svg(labels, draw):
    root = parse(draw(chart_id="empty", title="Cost", description="Cost per day.", labels=labels))

    assert texts(root) == ["No data"]
    assert root.findtext(f"{SVG}title") == "Cost"
    assert root.findtext(f"{SVG}desc") == "Cost per day. No data."
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "empty-title"
    assert root.get("aria-describedby") == "empty-desc"
    assert not root.findall(f".//{SVG}rect") and not root.findall(f".//{SVG}circle")


def test_an_empty_chart_says_what_is_missing():
    svg = bar_chart(
        chart_id="failures", title="Failures", description="", labels=DAYS, values=[0, 0, 0],
        empty_message="No failures",
    )  # fmt: skip

    assert texts(parse(svg)) == ["No failures"]


def test_hostile_labels_titles_and_series_names_are_escaped():
    svg = stacked_bar_chart(
        chart_id="hostile",
        title=HOSTILE,
        description=HOSTILE,
        labels=[HOSTILE, "Mar 2"],
        series=[Series(HOSTILE, [1, 2]), Series("Acme", [1, None])],
    )
    line = line_chart(
        chart_id="hostile-line", title=HOSTILE, description=HOSTILE, labels=[HOSTILE],
        series=[Series(HOSTILE, [1.0])],
    )  # fmt: skip
    table = data_table(caption=HOSTILE, labels=[HOSTILE], series=[Series(HOSTILE, [1])])

    for markup in (svg, line, table):
        assert "<script" not in markup and "<img" not in markup
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img" in markup
    root = parse(svg)
    assert root.findtext(f"{SVG}title") == HOSTILE  # shown as text, intact
    assert not root.findall(f".//{SVG}script") and not root.findall(f".//{SVG}img")
    assert HOSTILE[:27] in "".join(texts(root))  # the legend, shortened
    assert one(parse(line), f".//{SVG}g[@class='series']").get("data-series") == HOSTILE


def test_a_chart_id_must_be_a_slug():
    with pytest.raises(ValueError, match="slugs"):
        bar_chart(chart_id='x" onload="alert(1)', title="t", description="d", labels=DAYS,
                  values=[1, 2, 3])  # fmt: skip


def test_stacked_bars_draw_a_bar_per_label_and_a_segment_per_value():
    root = parse(
        stacked_bar_chart(
            chart_id="cost",
            title="Cost per day",
            description="By account.",
            labels=DAYS,
            series=[Series("Acme", [1, 0, 2]), Series("Bolt", [None, 3, 1])],
            fmt=dollars,
        )
    )

    bars = root.findall(f".//{SVG}g[@class='bar']")
    assert [len(bar.findall(f"{SVG}rect")) for bar in bars] == [1, 1, 2]
    assert bars[2].findtext(f"{SVG}title") == "Mar 3: Acme $2.00; Bolt $1.00; total $3.00"
    assert [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "legend-label"] == [
        "Acme",
        "Bolt",
    ]
    assert [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "y-label"] == [
        "$0", "$1.00", "$2.00", "$3.00",
    ]  # fmt: skip
    # The tallest bar reaches the top of the scale
    heights = [sum(float(r.get("height", 0)) for r in bar.findall(f"{SVG}rect")) for bar in bars]
    assert heights[1] == heights[2] == max(heights)


def test_a_long_period_shows_at_most_seven_day_labels():
    labels = [f"Day {n}" for n in range(90)]

    root = parse(
        bar_chart(chart_id="long", title="t", description="d", labels=labels, values=[1] * 90)
    )

    shown = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "x-label"]
    assert shown == [f"Day {n}" for n in range(0, 90, 13)]
    assert len(root.findall(f".//{SVG}g[@class='bar']")) == 90


def test_a_line_breaks_at_missing_values_and_keeps_a_point_per_value():
    root = parse(
        line_chart(
            chart_id="latency",
            title="Latency",
            description="p50.",
            labels=["a", "b", "c", "d"],
            series=[Series("p50", [100, None, 300, 400]), Series("p95", [200, None, None, None])],
            fmt=milliseconds,
        )
    )

    p50, p95 = root.findall(f".//{SVG}g[@class='series']")
    assert len(p50.findall(f"{SVG}circle")) == 3 and len(p95.findall(f"{SVG}circle")) == 1
    assert one(p50, f"{SVG}path").get("d", "").count("M") == 2  # a new stroke after the gap
    assert one(p50, f"{SVG}circle").findtext(f"{SVG}title") == "a: p50 100 ms"


def test_shares_are_drawn_on_a_fixed_scale_to_one_hundred_percent():
    root = parse(
        line_chart(chart_id="rates", title="Rates", description="", labels=["a"],
                   series=[Series("Errors", [0.1])], fmt=percent, maximum=1.0)
    )  # fmt: skip

    labels = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "y-label"]
    assert labels == ["0%", "25%", "50%", "75%", "100%"]


def test_the_table_has_a_row_per_label_and_a_dash_for_gaps():
    table = data_table(
        caption="Latency", labels=["2026-03-01", "2026-03-02"],
        series=[Series("p50", [250, None])], fmt=milliseconds,
    )  # fmt: skip

    root = ElementTree.fromstring(table)  # noqa: S314 — our own markup
    rows = [[cell.text for cell in row] for row in root.iter("tr")]
    assert rows == [["Day", "p50"], ["2026-03-01", "250 ms"], ["2026-03-02", "–"]]
    assert root.findtext("caption") == "Latency"


@pytest.mark.parametrize(
    ("maximum", "integers", "ticks"),
    [
        (0, False, [0, 1]),
        (397, False, [0, 100, 200, 300, 400]),
        (2.25, False, [0, 1, 2, 3]),
        (0.5, False, [0, 0.2, 0.4, 0.6]),
        (1, True, [0, 1]),
        (7, True, [0, 2, 4, 6, 8]),
    ],
)
def test_scales_have_round_ticks(maximum, integers, ticks):
    assert nice_scale(maximum, integers=integers) == ticks


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0, "$0"), (0.25, "$0.25"), (0.0125, "$0.0125"), (0.000123456, "$0.000123"),
     (1234.5, "$1,234.50")],
)  # fmt: skip
def test_dollars_keep_three_significant_digits_below_a_dollar(value, shown):
    assert dollars(value) == shown
