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
        return f"{(self.fraction * 100).quantize(Decimal('0.1')).normalize():f}%"


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
