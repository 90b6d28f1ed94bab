"""Server-rendered SVG charts (bars, stacked bars, lines) and their table fallback.

No JavaScript and no inline ``style``: the Content-Security-Policy (web/security.py)
refuses both, so charts are plain SVG drawn with presentation attributes (``fill``,
``stroke``, ``font-size``), restyled by static/cairn/dashboard.css (dark mode), with
native ``<title>`` tooltips. Each chart is an ``role="img"`` with a ``<title>`` and a
``<desc>``; ``data_table`` gives the same numbers as a table for screen readers, copying
and exact values.

Every piece of text is escaped here, since the result is marked safe: labels and series
names are account names, features and dates, which admins type.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.safestring import SafeString, mark_safe

Formatter = Callable[[float], str]

WIDTH = 480
HEIGHT = 220
MARGIN_LEFT = 64
MARGIN_RIGHT = 12
MARGIN_TOP = 14
MARGIN_BOTTOM = 28
LEGEND_ROW = 18
CHAR_WIDTH = 7.2  # average width of a character at font-size 13, for laying out the legend
MAX_X_LABELS = 7
MAX_LEGEND_CHARS = 28
# Colour-blind-safe (Okabe–Ito, without its black and yellow, which vanish on white or
# black backgrounds).
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#999999")
GREY = "#999999"
_CHART_ID = re.compile(r"[a-z][a-z0-9-]*")


@dataclass(frozen=True)
class Series:
    """A named sequence of values, one per label; None is a gap (no data)."""

    name: str
    values: Sequence[float | None]
    color: str | None = None


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _shorten(text: str, limit: int = MAX_LEGEND_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- value formats ----------------------------------------------------------------------


def plain_number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


def dollars(value: float) -> str:
    if value == 0:
        return "$0"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    # Model calls cost fractions of a cent: keep three significant digits.
    digits = max(2, 2 - int(f"{abs(value):e}".split("e")[1]))
    whole, fraction = f"{value:.{digits}f}".split(".")
    return f"${whole}.{fraction[:2]}{fraction[2:].rstrip('0')}"


def milliseconds(value: float) -> str:
    return f"{value / 1000:.1f} s" if value >= 1000 else f"{value:.0f} ms"


def percent(value: float) -> str:
    return f"{value * 100:.1f}".removesuffix(".0") + "%"


def nice_scale(maximum: float, *, ticks: int = 4, integers: bool = False) -> list[float]:
    """Round tick values from 0 to at least ``maximum``: steps of 1, 2, 2.5 or 5 × 10^k
    (whole steps only with ``integers``: there is no half a document)."""
    if not maximum > 0:
        return [0.0, 1.0]
    raw = maximum / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if integers:
        step = max(math.ceil(step), 1)
    count = math.ceil(maximum / step - 1e-9)
    return [round(i * step, 12) for i in range(count + 1)]


def _colors(series: Sequence[Series]) -> list[str]:
    return [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]


def _open(chart_id: str, kind: str, title: str, description: str, height: float) -> str:
    if not _CHART_ID.fullmatch(chart_id):
        raise ValueError(f"chart ids are lower-case slugs, not {chart_id!r}")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{chart_id}" class="chart chart-{kind}" '
        f'viewBox="0 0 {WIDTH} {_num(height)}" role="img" '
        f'aria-labelledby="{chart_id}-title" aria-describedby="{chart_id}-desc" font-size="13" '
        f'font-family="system-ui, sans-serif">'
        f'<title id="{chart_id}-title">{_text(title)}</title>'
        f'<desc id="{chart_id}-desc">{_text(description)}</desc>'
    )


def _empty(chart_id: str, kind: str, title: str, description: str, message: str) -> SafeString:
    svg = (
        _open(chart_id, kind, title, f"{description} {message}.", HEIGHT / 2)
        + f'<text class="empty" x="{WIDTH / 2:.0f}" y="{HEIGHT / 4:.0f}" text-anchor="middle" '
        f'dominant-baseline="middle" font-size="14" fill="#666666">{_text(message)}</text></svg>'
    )
    return mark_safe(svg)  # noqa: S308 — every text in it went through _text


def _legend(series: Sequence[Series], colors: Sequence[str]) -> tuple[str, int]:
    """The legend above the plot, wrapped onto as many rows as it needs; (svg, rows)."""
    parts, x, row = ['<g class="legend">'], float(MARGIN_LEFT), 0
    for s, color in zip(series, colors, strict=True):
        name = _shorten(s.name)
        width = 16 + len(name) * CHAR_WIDTH + 14
        if x + width > WIDTH - MARGIN_RIGHT and x > MARGIN_LEFT:
            x, row = float(MARGIN_LEFT), row + 1
        y = MARGIN_TOP + row * LEGEND_ROW
        parts.append(
            f'<g class="legend-item"><rect x="{_num(x)}" y="{y - 9}" width="10" height="10" '
            f'rx="2" fill="{color}"/><text class="legend-label" x="{_num(x + 15)}" y="{y}" '
            f'fill="#333333">{_text(name)}</text></g>'
        )
        x += width
    parts.append("</g>")
    return "".join(parts), row + 1


@dataclass(frozen=True)
class _Frame:
    """The plot area: where values and labels land."""

    top: float
    bottom: float
    slots: int
    maximum: float

    @property
    def slot_width(self) -> float:
        return (WIDTH - MARGIN_LEFT - MARGIN_RIGHT) / self.slots

    def x(self, index: int) -> float:
        return MARGIN_LEFT + (index + 0.5) * self.slot_width

    def y(self, value: float) -> float:
        return self.bottom - (value / self.maximum) * (self.bottom - self.top)


def _frame(
    legend_rows: int, slots: int, maximum: float, integers: bool = False
) -> tuple[_Frame, list[float], float]:
    ticks = nice_scale(maximum, integers=integers)
    top = MARGIN_TOP + legend_rows * LEGEND_ROW + (6 if legend_rows else 0)
    height = HEIGHT + legend_rows * LEGEND_ROW
    frame = _Frame(top=top, bottom=height - MARGIN_BOTTOM, slots=slots, maximum=ticks[-1])
    return frame, ticks, height


def _axes(frame: _Frame, ticks: Sequence[float], labels: Sequence[str], fmt: Formatter) -> str:
    """Horizontal grid lines with the y values, and every n-th x label (at most
    MAX_X_LABELS of them, so that they never overlap)."""
    parts = ['<g class="grid">']
    for tick in ticks:
        y = _num(frame.y(tick))
        parts.append(
            f'<line x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{y}" y2="{y}" '
            f'stroke="#d0d0d0" stroke-width="1"/>'
            f'<text class="y-label" x="{MARGIN_LEFT - 6}" y="{y}" text-anchor="end" '
            f'dominant-baseline="middle" fill="#666666">{_text(fmt(tick))}</text>'
        )
    parts.append('</g><g class="x-labels">')
    step = math.ceil(len(labels) / MAX_X_LABELS)
    for index in range(0, len(labels), step):
        parts.append(
            f'<text class="x-label" x="{_num(frame.x(index))}" y="{_num(frame.bottom + 18)}" '
            f'text-anchor="middle" fill="#666666">{_text(labels[index])}</text>'
        )
    parts.append("</g>")
    return "".join(parts)


def stacked_bar_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    labels: Sequence[str],
    series: Sequence[Series],
    fmt: Formatter = plain_number,
    integers: bool = False,
    empty_message: str = "No data",
    legend: bool = True,
) -> SafeString:
    """One bar per label, one coloured segment per series (missing and zero values draw
    nothing); each bar's tooltip lists its segments and total."""
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(labels))]
    if not labels or not series or not any(total > 0 for total in totals):
        return _empty(chart_id, "bars", title, description, empty_message)
    colors = _colors(series)
    key, rows = _legend(series, colors) if legend else ("", 0)
    frame, ticks, height = _frame(rows, len(labels), max(totals), integers)
    bar_width = min(max(frame.slot_width * 0.72, 1.0), 36.0)  # a week's bars stay bars
    parts = [_open(chart_id, "bars", title, description, height), key]
    parts.append(_axes(frame, ticks, labels, fmt))
    parts.append('<g class="bars">')
    for index, label in enumerate(labels):
        shown = [(s, c) for s, c in zip(series, colors, strict=True) if (s.values[index] or 0) > 0]
        details = "; ".join(f"{s.name} {fmt(s.values[index] or 0)}" for s, _ in shown)
        total = f"total {fmt(totals[index])}" if len(series) > 1 else fmt(totals[index])
        tooltip = (
            f"{label}: {details}; {total}" if len(series) > 1 and shown else f"{label}: {total}"
        )
        parts.append(f'<g class="bar" data-label="{_text(label)}"><title>{_text(tooltip)}</title>')
        base = 0.0
        for s, color in shown:
            value = s.values[index] or 0
            y_top, y_bottom = frame.y(base + value), frame.y(base)
            parts.append(
                f'<rect class="segment" x="{_num(frame.x(index) - bar_width / 2)}" '
                f'y="{_num(y_top)}" width="{_num(bar_width)}" '
                f'height="{_num(max(y_bottom - y_top, 0.5))}" fill="{color}"/>'
            )
            base += value
        parts.append("</g>")
    parts.append("</g></svg>")
    return mark_safe("".join(parts))  # noqa: S308 — every text in it went through _text


def bar_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    fmt: Formatter = plain_number,
    color: str = PALETTE[0],
    integers: bool = False,
    empty_message: str = "No data",
) -> SafeString:
    """One bar per label: a stacked bar chart of one series, without a legend."""
    return stacked_bar_chart(
        chart_id=chart_id,
        title=title,
        description=description,
        labels=labels,
        series=[Series(title, values, color)],
        fmt=fmt,
        integers=integers,
        empty_message=empty_message,
        legend=False,
    )


def line_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    labels: Sequence[str],
    series: Sequence[Series],
    fmt: Formatter = plain_number,
    maximum: float | None = None,
    empty_message: str = "No data",
) -> SafeString:
    """One line per series through a point per label; a missing value breaks the line.
    ``maximum`` fixes the top of the scale (1.0 for shares), else it follows the data."""
    present = [v for s in series for v in s.values if v is not None]
    if not labels or not present:
        return _empty(chart_id, "lines", title, description, empty_message)
    colors = _colors(series)
    key, rows = _legend(series, colors)
    frame, ticks, height = _frame(rows, len(labels), maximum or max(present))
    radius = _num(min(3.0, max(frame.slot_width / 3, 1.5)))
    parts = [_open(chart_id, "lines", title, description, height), key]
    parts.append(_axes(frame, ticks, labels, fmt))
    for s, color in zip(series, colors, strict=True):
        path, pen_down, points = [], False, []
        for index, value in enumerate(s.values):
            if value is None:
                pen_down = False
                continue
            x, y = _num(frame.x(index)), _num(frame.y(value))
            path.append(f"{'L' if pen_down else 'M'}{x} {y}")
            pen_down = True
            tooltip = f"{labels[index]}: {s.name} {fmt(value)}"
            points.append(
                f'<circle class="point" cx="{x}" cy="{y}" r="{radius}" fill="{color}">'
                f"<title>{_text(tooltip)}</title></circle>"
            )
        parts.append(
            f'<g class="series" data-series="{_text(s.name)}">'
            f'<path d="{" ".join(path)}" fill="none" stroke="{color}" stroke-width="2" '
            f'stroke-linejoin="round" stroke-linecap="round"/>{"".join(points)}</g>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 — every text in it went through _text


def data_table(
    *,
    caption: str,
    labels: Sequence[str],
    series: Sequence[Series],
    fmt: Formatter = plain_number,
    label_header: str = "Day",
) -> SafeString:
    """The numbers of a chart as a table: a row per label, a column per series."""
    head = "".join(f'<th scope="col">{_text(s.name)}</th>' for s in series)
    rows = []
    for index, label in enumerate(labels):
        cells = "".join(
            f"<td>{'–' if s.values[index] is None else _text(fmt(s.values[index] or 0))}</td>"
            for s in series
        )
        rows.append(f'<tr><th scope="row">{_text(label)}</th>{cells}</tr>')
    table = (
        f'<table class="chart-table"><caption>{_text(caption)}</caption>'
        f'<thead><tr><th scope="col">{_text(label_header)}</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
    return mark_safe(table)  # noqa: S308 — every text in it went through _text
