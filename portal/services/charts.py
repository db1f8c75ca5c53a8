"""Server-rendered SVG charts for the 统计报表 (pygal), safe under the pages' Content-Security-Policy.

pygal's SVG carries an inline ``<style>``, a ``<script>`` with its configuration and a tooltip with a
``style`` attribute; the CSP (``script-src 'self'``, ``style-src 'self'``) would block them and log
errors. They are removed from the element tree, and the charts are styled by classes from
static/css/app.css (``.chart``, ``.color-N``). Each bar and dot gets a ``<title>`` ("12-01 成功: 3"),
the tooltip a browser shows without JavaScript; the table under each chart holds the same numbers.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

import pygal
from markupsafe import Markup

WIDTH, HEIGHT = 720, 300
_OPTIONS = {
    "js": [],
    "css": [],
    "disable_xml_declaration": True,
    "no_prefix": True,
    "width": WIDTH,
    "height": HEIGHT,
    "legend_at_bottom": True,
    "legend_at_bottom_columns": 4,
    "truncate_legend": -1,
    "show_minor_x_labels": False,
    "x_labels_major_every": 5,
    "min_scale": 3,
    "max_scale": 6,
    "print_values": False,
    "margin": 12,
}


def bars(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[int]]]) -> Markup:
    """A stacked bar chart: one bar per label (day), one colour per series."""
    return _render(pygal.StackedBar(**_OPTIONS), title, labels, series)


def lines(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[int | None]]]) -> Markup:
    """A line chart: one line per series over the labels; None leaves a gap (no data that day)."""
    return _render(pygal.Line(**_OPTIONS, show_dots=True, dots_size=2.5), title, labels, series)


def _render(chart, title: str, labels: Sequence[str], series) -> Markup:
    chart.title = None
    chart.x_labels = list(labels)
    chart.no_data_text = "—"
    for name, values in series:
        chart.add(name, list(values))
    tree = chart.render_tree()
    _clean(tree, title)
    _add_titles(tree)
    # ElementTree escapes every text and attribute it writes (labels are account data): safe markup.
    return Markup(ET.tostring(tree, encoding="unicode", short_empty_elements=True))  # noqa: S704


def _clean(tree: ET.Element, title: str) -> None:
    """Drop what the CSP blocks (style, script, style attributes), the JavaScript tooltip and the ids
    (several charts share a page); name the chart for screen readers."""
    for parent in tree.iter():
        for child in list(parent):
            tag = child.tag if isinstance(child.tag, str) else ""  # pygal's tags carry no namespace
            if tag in ("defs", "script", "style") or "tooltip-overlay" in child.get("class", ""):
                parent.remove(child)
            elif tag == "title" and parent is tree:
                child.text = title
        parent.attrib.pop("style", None)
        parent.attrib.pop("id", None)
    tree.set("role", "img")
    tree.set("class", "pygal-chart")


def _add_titles(tree: ET.Element) -> None:
    """A <title> on each bar and dot: its label, series and value (the browser's own tooltip)."""
    for series in tree.iter("g"):
        if "series" not in series.get("class", "").split():
            continue
        legend = _legend_name(tree, series)
        for point in series.iter("g"):
            value, label = point.find("desc[@class='value']"), point.find("desc[@class='x_label']")
            if value is not None and label is not None:
                ET.SubElement(point, "title").text = f"{label.text} {legend}: {value.text}"


def _legend_name(tree: ET.Element, series: ET.Element) -> str:
    colour = next((c for c in series.get("class", "").split() if c.startswith("color-")), "")
    for legend in tree.iter("g"):
        if "legend" in legend.get("class", "").split():
            box, text = legend.find("rect"), legend.find("text")
            if box is not None and text is not None and colour in box.get("class", "").split():
                return text.text or ""
    return ""
