"""Histogram bars name their range and count on hover and on keyboard focus."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

import orjson
import pytest

from saesite.site.records_file import site_records
from tests.browser.conftest import SCHEMES

pytestmark = pytest.mark.browser


def _fmt(value: float) -> str:
    """As static/histogram.js writes a bin edge: ``Number(v.toPrecision(3)).toString()``
    (ties go to the larger digit, as ECMAScript's toPrecision picks the larger n)."""
    exact = Decimal(value)
    if not exact:
        return "0"
    rounded = exact.quantize(Decimal(1).scaleb(exact.adjusted() - 2), rounding=ROUND_HALF_UP)
    text = repr(float(rounded))
    text = text[:-2] if text.endswith(".0") else text
    return re.sub(r"e([+-])0*(\d)", lambda m: "e" + m.group(1).replace("+", "+") + m.group(2), text)


def _page_with_histogram(site) -> tuple[str, dict]:
    entries = orjson.loads((site.path / "site.json").read_bytes())["features"]
    for entry, record in zip(entries, site_records(site.path), strict=True):
        if sum(1 for c in record["histogram"]["counts"] if c) >= 3:
            return entry["html"], record
    raise AssertionError("no feature with three non-empty activation bins")


def _bins(record: dict) -> list[tuple[str, int]]:
    edges, counts = record["histogram"]["edges"], record["histogram"]["counts"]
    last = max(i for i, c in enumerate(counts) if c) + 1  # the axis ends at the last bar
    return [
        (f"{_fmt(edges[i])} to {_fmt(edges[i + 1])}: {counts[i]:,} tokens", counts[i])
        for i in range(last)
    ]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_hovering_a_histogram_bar_names_its_range_and_count(visit, real_site, scheme):
    rel, record = _page_with_histogram(real_site)
    bins = _bins(record)
    v = visit(real_site, scheme, rel, viewport={"width": 1280, "height": 800})
    svg = v.page.locator("#stats svg[data-counts]").first
    svg.scroll_into_view_if_needed()
    box = svg.bounding_box()
    left, right = (float(x) for x in svg.get_attribute("data-px").split(","))
    width = float(svg.get_attribute("viewBox").split()[2])
    busiest = max(range(len(bins)), key=lambda i: bins[i][1])
    x_view = left + (busiest + 0.5) / len(bins) * (right - left)
    v.page.mouse.move(box["x"] + x_view / width * box["width"], box["y"] + box["height"] / 2)
    tip = v.page.locator(".bin-tip")
    tip.wait_for()
    assert tip.inner_text() == bins[busiest][0]
    v.page.mouse.move(0, 0)
    assert tip.is_hidden()
    v.assert_clean()


def test_a_focused_histogram_walks_its_bars_with_the_arrow_keys(visit, real_site):
    rel, record = _page_with_histogram(real_site)
    bins = _bins(record)
    first = next(i for i, (_, count) in enumerate(bins) if count)
    v = visit(real_site, "file", rel, viewport={"width": 1280, "height": 800})
    v.page.locator("#stats svg[data-counts]").first.focus()
    tip = v.page.locator(".bin-tip")
    tip.wait_for()
    assert tip.inner_text() == bins[first][0]
    v.page.keyboard.press("ArrowRight")
    assert tip.inner_text() == bins[first + 1][0]
    v.page.keyboard.press("End")
    assert tip.inner_text() == bins[-1][0]
    v.page.keyboard.press("Escape")
    assert tip.is_hidden()
    v.assert_clean()
