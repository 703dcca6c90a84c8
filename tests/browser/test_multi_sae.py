"""A site of several SAEs in Chromium: the SAE switcher, cross-SAE links, the search over every
SAE, and examples expanded from the one token store, over http:// and file://."""

from __future__ import annotations

import orjson
import pytest

from saesite.cli import main
from tests.browser.conftest import SCHEMES, _serve
from tests.conftest import make_tiny_sae_dir

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def multi_site(
    tmp_path_factory, tiny_model_dir, tiny_sae_dir, tiny_tokens_npy, server_root, http_port
):
    """Two SAEs of different widths on the tiny model's MLP hook, one site."""
    root = tmp_path_factory.mktemp("multi-browser")
    narrow = make_tiny_sae_dir(root / "narrow", d_sae=48, seed=1)
    args = ["-q", "build", "--model", str(tiny_model_dir), "--dataset", str(tiny_tokens_npy)]
    args += ["--sae", str(narrow), "--sae", str(tiny_sae_dir), "--no-ce-loss", "--workers", "1"]
    args += ["--batch-size", "8", "--top-k", "5", "--n-bins", "16", "--n-intervals", "4"]
    assert main([*args, "--out", str(root / "site")]) == 0
    return _serve(server_root, http_port, "multi", root / "site")


def _ids(site) -> list[str]:
    return [s["id"] for s in orjson.loads((site.path / "site.json").read_bytes())["saes"]]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_the_sae_switcher_opens_each_sae_and_marks_the_current_one(visit, multi_site, scheme):
    first, second = _ids(multi_site)
    v = visit(multi_site, scheme, f"sae/{first}/features/000/3.html")
    current = v.page.locator("#sae-switcher a[aria-current]")
    assert current.inner_text() == first
    v.page.locator("#sae-switcher a", has_text=second).first.click()
    v.page.wait_for_url(f"**/sae/{second}/index.html")
    assert v.page.locator("#sae-switcher a[aria-current]").inner_text() == second
    # the SAE's own feature table links its own pages
    v.page.locator("#feature-table tbody tr td a").first.click()
    v.page.wait_for_url(f"**/sae/{second}/features/**")
    assert v.page.locator("h1").inner_text().startswith("Feature")
    v.assert_clean()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_cross_sae_link_opens_the_closest_feature_of_the_other_sae(visit, multi_site, scheme):
    first, second = _ids(multi_site)
    v = visit(multi_site, scheme, f"sae/{first}/features/000/5.html")
    link = v.page.locator(f'#cross-sae ul[data-sae="{second}"] a').first
    index = link.inner_text()
    link.click()
    v.page.wait_for_url(f"**/sae/{second}/features/000/{index}.html")
    assert v.page.locator("h1").inner_text().startswith(f"Feature {index}")
    v.page.locator("#top .exs p").first.click()  # expands from the site's one token store
    v.page.locator("#top .full").first.wait_for()
    v.assert_clean()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_the_overview_search_finds_features_of_every_sae_and_names_their_sae(
    visit, multi_site, scheme
):
    first, second = _ids(multi_site)
    v = visit(multi_site, scheme)
    v.page.fill("#q", "7")
    v.page.wait_for_selector("#results li")
    tags = v.page.locator("#results li .sae-tag").all_inner_texts()
    assert {first, second} <= set(tags)
    hit = v.page.locator("#results li", has=v.page.locator(".sae-tag", has_text=second)).first
    hit.locator("a.rid").click()
    v.page.wait_for_url(f"**/sae/{second}/features/**")
    v.assert_clean()


def test_the_comparison_page_links_unmatched_features(visit, multi_site):
    first, second = _ids(multi_site)
    v = visit(multi_site, "file")
    v.page.locator(f'#comparisons a[href="compare/{first}--{second}.html"]').click()
    v.page.wait_for_url("**/compare/*.html")
    assert v.page.locator("svg.plot").count() == 2
    link = v.page.locator(".unmatched a").first
    index = link.inner_text()
    link.click()
    v.page.wait_for_url(f"**/sae/{first}/features/000/{index}.html")
    v.assert_clean()
