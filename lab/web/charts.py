"""Server-side SVG charts (no JavaScript): the ε budget spent per dataset as horizontal bars.

The SVG is built as markup with every text escaped, carries ``role="img"`` with a title and a
description for screen readers, and is styled by classes in ``style.css`` (the page's CSP allows
no inline styles). The numbers are also in the budget table next to it.

>>> bars = [BudgetBar("health_visits", "居民就诊", Decimal("0.25"), Decimal("1"))]
>>> svg = budget_chart(bars, title="ε", desc="d", spent_label="spent {spent} of {total} ({pct})")
>>> 'role="img"' in svg and "25%" in svg
True
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from html import escape

from markupsafe import Markup

from lab.decimals import plain
from lab.web.render import fmt_decimal

WIDTH = 760
LABEL_W = 230
BAR_W = 360
ROW_H = 34
BAR_H = 18
TOP = 8


@dataclass(frozen=True)
class BudgetBar:
    """One dataset's ε budget: exact spent and total."""

    dataset: str
    label: str
    spent: Decimal
    total: Decimal

    @property
    def fraction(self) -> Decimal:
        if self.total <= 0:
            return Decimal(1) if self.spent > 0 else Decimal(0)
        return self.spent / self.total

    @property
    def percent(self) -> str:
        return f"{plain((self.fraction * 100).quantize(Decimal('0.1')))}%"


def budget_chart(bars: list[BudgetBar], *, title: str, desc: str, spent_label: str) -> Markup:
    """An accessible horizontal bar chart; ``spent_label`` formats ``{spent}``, ``{total}``, ``{pct}``."""
    height = TOP * 2 + ROW_H * max(1, len(bars))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="chart-title chart-desc" class="chart">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{escape(desc)}</desc>',
    ]
    for i, bar in enumerate(bars):
        y = TOP + i * ROW_H
        frac = min(bar.fraction, Decimal(1))
        spent_w = int((frac * BAR_W).to_integral_value())
        label = bar.label if len(bar.label) <= 16 else bar.label[:15] + "…"
        text = spent_label.format(spent=fmt_decimal(bar.spent), total=fmt_decimal(bar.total), pct=bar.percent)
        cls = "bar-over" if bar.fraction >= 1 else "bar-spent"
        out += [
            f'<g class="row" data-dataset="{escape(bar.dataset)}">',
            f'<text x="0" y="{y + BAR_H - 4}">{escape(label)}</text>',
            f'<rect class="bar-left" x="{LABEL_W}" y="{y}" width="{BAR_W}" height="{BAR_H}" rx="3"/>',
            f'<rect class="{cls}" x="{LABEL_W}" y="{y}" width="{spent_w}" height="{BAR_H}" rx="3"/>',
            f'<text class="small" x="{LABEL_W + BAR_W + 10}" y="{y + BAR_H - 4}">{escape(text)}</text>',
            "</g>",
        ]
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every interpolated text is escaped above


@dataclass(frozen=True)
class SpendPoint:
    """One release on the spend-over-time chart: running ε after it, and its label (tooltip)."""

    cumulative: Decimal
    label: str


SPEND_H = 240
PLOT_L, PLOT_R, PLOT_T, PLOT_B = 56, WIDTH - 16, 12, SPEND_H - 28


def spend_chart(
    points: list[SpendPoint],
    limits: list[tuple[str, Decimal]],
    *,
    title: str,
    desc: str,
    first: str,
    last: str,
) -> Markup:
    """ε spent over the releases (a step line), with horizontal lines at the ``limits`` (label, ε).

    >>> svg = spend_chart([SpendPoint(Decimal("1"), "r1"), SpendPoint(Decimal("3"), "r2")],
    ...                   [("year", Decimal("5"))], title="t", desc="d", first="a", last="b")
    >>> svg.count('class="step"'), 'class="limit"' in svg
    (2, True)
    """
    top = max([p.cumulative for p in points] + [v for _, v in limits] + [Decimal(1)])
    n = max(1, len(points))

    def x(i: int) -> int:
        return PLOT_L + int((PLOT_R - PLOT_L) * i / n)

    def y(v: Decimal) -> int:
        return PLOT_B - int((PLOT_B - PLOT_T) * float(v / top))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {SPEND_H}" role="img" '
        f'aria-labelledby="spend-title spend-desc" class="chart spend-chart">',
        f'<title id="spend-title">{escape(title)}</title>',
        f'<desc id="spend-desc">{escape(desc)}</desc>',
        f'<line class="axis" x1="{PLOT_L}" y1="{PLOT_B}" x2="{PLOT_R}" y2="{PLOT_B}"/>',
        f'<line class="axis" x1="{PLOT_L}" y1="{PLOT_T}" x2="{PLOT_L}" y2="{PLOT_B}"/>',
        f'<text class="small" x="{PLOT_L - 6}" y="{PLOT_B}" text-anchor="end">0</text>',
        f'<text class="small" x="{PLOT_L - 6}" y="{PLOT_T + 10}" text-anchor="end">{fmt_decimal(top)}</text>',
        f'<text class="small" x="{PLOT_L}" y="{SPEND_H - 8}">{escape(first)}</text>',
        f'<text class="small" x="{PLOT_R}" y="{SPEND_H - 8}" text-anchor="end">{escape(last)}</text>',
    ]
    for label, value in limits:
        ly = y(value)
        out += [
            f'<line class="limit" x1="{PLOT_L}" y1="{ly}" x2="{PLOT_R}" y2="{ly}"/>',
            f'<text class="small" x="{PLOT_R - 4}" y="{ly - 4}" text-anchor="end">'
            f"{escape(label)} {fmt_decimal(value)}</text>",
        ]
    path, prev = [f"M{x(0)},{y(Decimal(0))}"], Decimal(0)
    for i, p in enumerate(points):
        path.append(f"L{x(i + 1)},{y(prev)} L{x(i + 1)},{y(p.cumulative)}")
        prev = p.cumulative
    out.append(f'<path class="spend-line" d="{" ".join(path)}"/>')
    for i, p in enumerate(points):
        out.append(
            f'<circle class="step" cx="{x(i + 1)}" cy="{y(p.cumulative)}" r="3">'
            f"<title>{escape(p.label)}</title></circle>"
        )
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every interpolated text is escaped above
