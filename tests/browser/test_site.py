"""The real tiny build in Chromium, over http:// and file://."""

from __future__ import annotations

import re

import orjson
import pytest

from saesite.site.records_file import site_records
from tests.browser.conftest import SCHEMES

pytestmark = pytest.mark.browser


def _rows(site) -> list[list]:
    """The search-index rows as the site ships them."""
    rows = []
    for path in sorted((site.path / "search").glob("index-*.js")):
        text = path.read_text()
        rows += orjson.loads(text[text.index(".push(") + 6 : -3])["rows"]
    return rows


def _distinctive(rows: list[list], column: int) -> tuple[int, str]:
    """A live feature and a token of ``column`` that few features share (a good query)."""
    counts: dict[str, int] = {}
    for row in rows:
        for token in row[column]:
            counts[token] = counts.get(token, 0) + 1
    candidates = [
        (counts[row[column][0]], row[0], row[column][0])
        for row in rows
        if row[column] and len(row[column][0].strip("·⏎")) >= 2
    ]
    _, index, token = min(candidates)
    return index, token


def _search(v, query: str) -> list[str]:
    v.page.fill("#q", "")
    v.page.locator("#q").press_sequentially(query)
    return v.page.locator("#results a.rid").all_inner_texts()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_index_loads_with_search_and_table_and_nothing_leaves_the_site(visit, real_site, scheme):
    v = visit(real_site, scheme)
    assert v.requests[0] == real_site.url(scheme)  # requests are seen over file:// too
    assert any(url.endswith("static/search.js") for url in v.requests)
    assert v.page.locator("#search").is_visible()
    assert v.page.locator("#feature-table tbody tr").count() == min(100, len(_rows(real_site)))
    assert v.page.locator("svg.plot").count() == 1  # the density histogram
    v.assert_clean()
    v.screenshot(f"{scheme}-index")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_search_by_id_lists_that_feature_first_and_enter_opens_it(visit, real_site, scheme):
    v = visit(real_site, scheme)
    assert _search(v, "42")[0] == "#42"
    v.page.keyboard.press("Enter")
    v.page.wait_for_url(re.compile(r"/features/000/42\.html$"))
    assert v.page.locator("h1").inner_text().startswith("Feature 42")
    v.assert_clean()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_search_by_a_token_the_feature_fires_on_finds_it_and_the_link_opens_it(
    visit, real_site, scheme
):
    index, token = _distinctive(_rows(real_site), 5)
    v = visit(real_site, scheme)
    found = _search(v, token.replace("·", " ").strip())
    assert f"#{index}" in found
    v.page.locator("#search-section").scroll_into_view_if_needed()
    v.screenshot(f"{scheme}-search-results", full_page=False)
    v.page.locator("#results a.rid", has_text=re.compile(rf"^#{index}$")).click()
    v.page.wait_for_url(re.compile(rf"/{index}\.html$"))
    assert v.page.locator("h1").inner_text().startswith(f"Feature {index}")
    v.assert_clean()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_search_by_a_promoted_logit_token_finds_the_feature(visit, real_site, scheme):
    index, token = _distinctive(_rows(real_site), 6)
    v = visit(real_site, scheme)
    assert f"#{index}" in _search(v, token.replace("·", " ").strip())
    why = v.page.locator("#results li", has=v.page.locator(f'a[href$="/{index}.html"]'))
    assert "promotes" in why.inner_text()
    v.assert_clean()


def test_search_for_dense_lists_only_dense_features(visit, real_site):
    rows = _rows(real_site)
    dense = {f"#{row[0]}" for row in rows if row[3] & 2}
    assert dense, "the tiny SAE has dense features"
    v = visit(real_site, "http")
    found = _search(v, "dense")
    assert set(found) <= dense and len(found) == min(len(dense), 50)
    v.assert_clean()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_keyboard_j_k_and_arrows_move_between_features(visit, real_site, scheme):
    v = visit(real_site, scheme, "features/000/5.html")
    v.screenshot(f"{scheme}-feature")
    v.page.keyboard.press("j")
    v.page.wait_for_url(re.compile(r"/6\.html$"))
    v.page.keyboard.press("k")
    v.page.wait_for_url(re.compile(r"/5\.html$"))
    v.page.keyboard.press("ArrowRight")
    v.page.wait_for_url(re.compile(r"/6\.html$"))
    v.page.keyboard.press("ArrowLeft")
    v.page.wait_for_url(re.compile(r"/5\.html$"))
    v.assert_clean()


def test_copy_link_puts_the_page_url_on_the_clipboard_over_http(visit, real_site):
    v = visit(
        real_site, "http", "features/000/7.html", permissions=["clipboard-read", "clipboard-write"]
    )
    v.page.click("#copy-link")
    v.page.wait_for_function(
        "() => document.getElementById('copy-status').textContent === 'Copied.'"
    )
    assert v.page.evaluate("navigator.clipboard.readText()") == v.page.url
    v.assert_clean()


def test_copy_link_on_file_shows_the_url_to_copy_by_hand(visit, real_site):
    v = visit(real_site, "file", "features/000/7.html")
    v.page.click("#copy-link")
    field = v.page.locator("#copy-url")
    assert field.is_visible()
    assert field.input_value() == v.page.url
    assert v.page.evaluate("document.activeElement.id") == "copy-url"
    v.assert_clean()


def test_pages_are_readable_with_javascript_off(visit, real_site):
    v = visit(real_site, "file", java_script_enabled=False)
    assert v.page.locator("#feature-table tbody tr").count() == min(100, len(_rows(real_site)))
    assert not v.page.locator("#search").is_visible()
    assert "Search needs JavaScript" in v.page.locator("#search-section").inner_text()
    v.page.goto(real_site.url("file", "features/000/3.html"))
    assert v.page.locator(".exs p").count() > 0
    assert v.page.locator("svg.plot").count() >= 1
    assert not v.page.locator("#copy-link").is_visible()
    # everything a reader needs is in the page itself: the top examples' text and values,
    # the statistics, both histograms, the logit tables, neighbours and co-firing features
    top = v.page.locator("#top .exs p")
    assert top.count() > 0 and all(top.nth(k).is_visible() for k in range(top.count()))
    record = site_records(real_site.path)[3]
    first = record["top_examples"][0]
    line = top.first.inner_text()
    assert line.startswith(v.page.locator("#top .exs p var").first.inner_text())
    assert v.page.locator("#top .exs p u").first.is_visible()
    assert len(line) > 2 * (first["pos"] - first["window_start"])  # the window's text
    stats = v.page.locator("#stats dl").inner_text()
    assert "density" in stats and "max activation" in stats
    assert v.page.locator("#stats svg.plot").count() == 2
    assert v.page.locator("#stats svg.plot path.plot-bars").first.is_visible()
    for side, key in (("pos", "positive"), ("neg", "negative")):
        rows = v.page.locator(f"#logits table.{side} tr")
        assert rows.count() == len(record["logit_effects"][key]) and rows.first.is_visible()
    assert v.page.locator("#neighbours li a").count() == len(record["neighbours"])
    assert v.page.locator("#cofiring li a").count() == len(record["cofiring"])
    assert v.page.locator("#neurons tr td").first.is_visible()
    # the lines across the range need the token store: a notice, no empty rows
    assert "needs JavaScript" in v.page.locator("#range").inner_text()
    assert v.page.locator("#range .exs p").count() > 0
    assert not v.page.locator("#range .exs p").first.is_visible()
    v.screenshot("nojs-feature")
    v.assert_clean()


@pytest.mark.parametrize("rel", ["index.html", "features/000/3.html", "table/page-0.html"])
def test_pages_fit_a_phone_screen_in_both_colour_schemes(visit, real_site, rel):
    for scheme in ("light", "dark"):
        v = visit(
            real_site,
            "file",
            rel,
            viewport={"width": 390, "height": 844},
            color_scheme=scheme,
            is_mobile=True,
        )
        overflow = v.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"{rel} scrolls sideways by {overflow}px on a phone"
        name = rel.replace("/", "-").removesuffix(".html")
        v.screenshot(f"phone-{scheme}-{name}", full_page=False)
        v.assert_clean()
    dark_bg = v.page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert dark_bg != "rgb(255, 255, 255)"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_index_table_sorts_and_paginates_and_static_table_pages_exist(visit, table_site, scheme):
    v = visit(table_site, scheme)
    body = v.page.locator("#feature-table tbody tr")
    assert body.count() == 100
    v.page.click("#features nav.pager >> text=next →")
    assert body.first.locator("td").first.inner_text() == "100"
    v.page.click("#feature-table th button >> text=max act")
    values = [float(t) for t in body.locator("td:nth-child(4)").all_inner_texts()]
    assert values == sorted(values, reverse=True) and len(values) == 100
    v.assert_clean()
    v.page.goto(table_site.url(scheme, "table/page-0.html"))
    assert v.page.locator("#feature-table tbody tr").count() == 230
    v.screenshot(f"{scheme}-table", full_page=False)
    v.assert_clean()


def test_a_search_in_the_address_runs_when_the_index_opens(visit, real_site):
    v = visit(real_site, "file", "index.html#q=42")
    assert v.page.input_value("#q") == "42"
    assert v.page.locator("#results a.rid").first.inner_text() == "#42"
    v.page.fill("#q", "17")
    v.page.wait_for_function("() => location.hash === '#q=17'")
    v.assert_clean()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_extra_pages_load_from_the_nav_without_errors(visit, table_site, scheme):
    v = visit(table_site, scheme)
    v.page.click(".site-nav >> text=Training")
    v.page.wait_for_url(re.compile(r"/training\.html$"))
    assert v.page.locator("svg.plot").count() >= 1
    v.screenshot(f"{scheme}-training")
    v.assert_clean()
