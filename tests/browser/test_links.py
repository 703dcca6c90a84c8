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


@pytest.fixture(scope="module")
def hosted_site(tmp_path_factory, server_root, http_port):
    from saesite.config import RenderConfig
    from saesite.site.render import write_site
    from tests.browser.conftest import _serve
    from tests.fixtures.sample_records import sample_site

    site, features = sample_site(3, seed=2, top_k=2, n_intervals=1, interval_samples=1)
    cfg = RenderConfig(out=str(tmp_path_factory.mktemp("h") / "s"), base_url="https://u.example/r")
    return _serve(server_root, http_port, "hosted", write_site(site, features, cfg))


def _copied(v) -> str:
    v.page.click("#copy-link")
    v.page.wait_for_selector("#copy-url", state="visible")
    return v.page.input_value("#copy-url")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_copy_link_gives_the_hosted_address_when_the_site_has_a_base_url(
    visit, hosted_site, scheme
):
    v = visit(hosted_site, scheme, "features/000/1.html#top")
    assert _copied(v) == "https://u.example/r/features/000/1.html#top"
    v.assert_clean()


def test_copy_link_without_a_base_url_gives_the_page_it_was_opened_from(visit, real_site):
    v = visit(real_site, "file", "features/000/1.html")
    assert _copied(v) == real_site.url("file", "features/000/1.html")
    v.assert_clean()
