"""URLs that travel: #N opens feature N, the table's sort and page survive Back, the go-to box,
and search finds whitespace features."""

from __future__ import annotations

import pytest

from tests.browser.conftest import SCHEMES
from tests.browser.test_site import _rows

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_typed_hash_number_on_the_index_opens_that_feature(visit, real_site, scheme):
    v = visit(real_site, scheme, "index.html#7")
    v.page.wait_for_url("**/7.html")
    assert v.page.locator("h1").inner_text().startswith("Feature 7")
    v.assert_clean()


def test_the_go_to_box_opens_a_feature_from_any_page(visit, real_site):
    v = visit(real_site, "file", "features/000/3.html")
    v.page.fill("#goto", "5")
    v.page.press("#goto", "Enter")
    v.page.wait_for_url("**/5.html")
    assert v.page.locator("h1").inner_text().startswith("Feature 5")
    v.assert_clean()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_back_restores_the_table_sort_and_page(visit, table_site, scheme):
    v = visit(table_site, scheme)
    v.page.locator("#feature-table th button", has_text="density").click()  # descending
    v.page.locator(".pager button", has_text="next").click()
    first = v.page.locator("#feature-table tbody tr td a").first.inner_text()
    info = v.page.locator(".pager .muted").inner_text()
    v.page.locator("#feature-table tbody tr td a").first.click()
    v.page.wait_for_url("**/features/**")
    v.page.go_back()
    v.page.wait_for_selector("#feature-table tbody tr")
    assert v.page.locator(".pager .muted").inner_text() == info
    assert v.page.locator("#feature-table tbody tr td a").first.inner_text() == first
    sorted_by = v.page.locator("#feature-table th button[aria-sort]")
    assert sorted_by.inner_text().startswith("density")
    assert sorted_by.get_attribute("aria-sort") == "descending"
    v.assert_clean()


@pytest.mark.parametrize("query", ["\\n", "newline", "⏎"])
def test_search_for_a_newline_finds_a_feature_that_fires_on_or_promotes_one(
    visit, real_site, query
):
    rows = _rows(real_site)
    newline = {row[0] for row in rows if any("⏎" in t for t in row[5] + row[6] + row[7])}
    assert newline, "the tiny site has no newline feature to find"
    v = visit(real_site, "http")
    v.page.fill("#q", query)
    while v.page.locator("#more-results").is_visible():
        v.page.locator("#more-results").click()
    found = {int(t.lstrip("#")) for t in v.page.locator("#results a.rid").all_inner_texts()}
    assert found == newline
    headlines = v.page.locator("#results .lbl").all_inner_texts()
    assert headlines and all(h.strip() for h in headlines)
    v.assert_clean()
