"""Server-rendered SVG charts for the 统计报表: stacked bars and lines, as markup, without JavaScript.

Written here rather than with pygal: pygal took 0.2–0.3 s per 30-day chart (its option machinery),
over the page's 0.3 s budget on its own, and its SVG carried an inline ``<style>``, a ``<script>``
and ``style`` attributes that the pages' Content-Security-Policy (``style-src 'self'``) blocks. These
charts have neither: they are styled by classes from static/css/app.css (``.chart``, ``.color-N``).
Each bar and dot has a ``<title>`` ("12-01 成功: 3"), the tooltip a browser shows by itself; the
legend is an HTML list after the SVG (it wraps on a phone); the table under each chart holds the same
numbers. Every text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 280
LEFT, RIGHT, TOP, BOTTOM = 60, 28, 18, 30  # the plot's margins: y labels, x labels
Series = Sequence[tuple[str, Sequence[int | None]]]


def bars(title: str, labels: Sequence[str], series: Series) -> Markup:
    """A stacked bar chart: one bar per label (day), one colour per series, stacked in series order."""
    totals = [sum(values[i] or 0 for _, values in series) for i in range(len(labels))]
    top, ticks = _scale(max(totals, default=0))
    width, height = _plot_size()
    slot = width / max(len(labels), 1)
    parts = []
    for colour, (name, values) in enumerate(series):
        rects = []
        for i, value in enumerate(values):
            if not value:
                continue
            below = sum(series[k][1][i] or 0 for k in range(colour))
            y, h = height * (1 - (below + value) / top), height * value / top
            rects.append(
                f'<rect x="{i * slot + slot * 0.15:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}">'
                f"<title>{escape(labels[i])} {escape(name)}: {value}</title></rect>"
            )
        parts.append(f'<g class="series bars color-{colour}">{"".join(rects)}</g>')
    return _svg(title, labels, series, ticks, top, "".join(parts))


def lines(title: str, labels: Sequence[str], series: Series) -> Markup:
    """A line chart: one line per series over the labels; None leaves a gap (no data that day)."""
    peak = max((v for _, values in series for v in values if v is not None), default=0)
    top, ticks = _scale(peak)
    width, height = _plot_size()
    slot = width / max(len(labels), 1)
    parts = []
    for colour, (name, values) in enumerate(series):
        path, dots, pen = [], [], "M"
        for i, value in enumerate(values):
            if value is None:
                pen = "M"
                continue
            x, y = slot * (i + 0.5), height * (1 - value / top)
            path.append(f"{pen}{x:.1f} {y:.1f}")
            pen = "L"
            tip = f"{escape(labels[i])} {escape(name)}: {value}"
            dots.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3"><title>{tip}</title></circle>')
        line = f'<path class="line" d="{" ".join(path)}"/>' if path else ""
        parts.append(f'<g class="series lines color-{colour}">{line}{"".join(dots)}</g>')
    return _svg(title, labels, series, ticks, top, "".join(parts))


def _plot_size() -> tuple[float, float]:
    return WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


def _scale(peak: float) -> tuple[float, list[int]]:
    """The axis top and its ticks: 4–5 round steps (1, 2 or 5 × 10ⁿ) covering ``peak``."""
    if peak <= 0:
        return 4, [0, 1, 2, 3, 4]
    raw = peak / 4
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    step = max(1, int(step))
    top = step * math.ceil(peak / step)
    return top, list(range(0, top + 1, step))


def _svg(title: str, labels: Sequence[str], series: Series, ticks: list[int], top: float, body: str) -> Markup:
    width, height = _plot_size()
    grid = "".join(
        f'<path class="guide" d="M0 {height * (1 - t / top):.1f}h{width}"/>'
        f'<text class="y" x="-6" y="{height * (1 - t / top) + 4:.1f}">{t}</text>'
        for t in ticks
    )
    slot = width / max(len(labels), 1)
    every = max(1, math.ceil(len(labels) / 6))  # about six dates under the axis
    shown = [i for i in range(len(labels)) if (len(labels) - 1 - i) % every == 0]  # always today's
    xlabels = "".join(
        f'<text class="x" x="{slot * (i + 0.5):.1f}" y="{height + 16}">{escape(labels[i])}</text>' for i in shown
    )
    legend = "".join(
        f'<li class="color-{n}"><svg viewBox="0 0 12 12" aria-hidden="true"><rect width="12" height="12"/></svg>'
        f"{escape(name)}</li>"
        for n, (name, _) in enumerate(series)
    )
    return Markup(  # noqa: S704 -- every text above is escaped; numbers are formatted by us
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart-svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img">'
        f"<title>{escape(title)}</title>"
        f'<g class="plot" transform="translate({LEFT} {TOP})">'
        f'<rect class="background" width="{width}" height="{height}"/>{grid}{body}'
        f'<path class="axis" d="M0 {height}h{width}"/>{xlabels}</g></svg>'
        f'<ul class="chart-legend">{legend}</ul>'  # HTML: it wraps on a phone
    )
