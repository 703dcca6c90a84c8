"""Hostile tokens and labels (tests/fixtures/sample_records.py) on every page type, in Chromium.

Each payload would set ``window.__pwned`` if it ran; the text must show literally and nothing
may request the network.
"""

from __future__ import annotations

import pytest

from saesite.site.token_markup import visible_label
from tests.browser.conftest import SCHEMES
from tests.fixtures.sample_records import ADVERSARIAL_LABELS, ADVERSARIAL_TOKENS, PWN

pytestmark = pytest.mark.browser

N_FEATURES = 8
PAGES = ["index.html", "table/page-0.html"] + [f"features/000/{i}.html" for i in range(N_FEATURES)]
INJECTED = (
    "document.querySelectorAll('img, iframe, object, embed, script:not([src]), [onload], "
    "[onerror], svg:not(.plot)').length"
)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_no_payload_runs_on_any_page_and_nothing_leaves_the_site(visit, hostile_site, scheme):
    v = visit(hostile_site, scheme)
    for rel in PAGES:
        v.page.goto(hostile_site.url(scheme, rel))
        assert v.page.evaluate(INJECTED) == 0, f"{rel}: an element came from the data"
        for element in v.page.locator(".exs u").all()[:3]:
            element.hover()  # tooltips are plain title attributes: hovering runs nothing
        v.assert_clean()
        if rel == "features/000/0.html":
            v.screenshot(f"{scheme}-adversarial-feature")
    v.page.goto(hostile_site.url(scheme, "index.html"))
    for query in ("script", "onerror", "pwned", "<!--", "]]>", '"', "'", "&amp;", "\\x"):
        v.page.fill("#q", query)
        assert v.page.evaluate(INJECTED) == 0, f"search {query!r} injected an element"
    v.screenshot(f"{scheme}-adversarial-search", full_page=False)
    v.assert_clean()


def test_labels_show_literally_in_headings_and_search_results(visit, hostile_site):
    v = visit(hostile_site, "http")
    for index in range(N_FEATURES):
        v.page.goto(hostile_site.url("http", f"features/000/{index}.html"))
        label = ADVERSARIAL_LABELS[index % len(ADVERSARIAL_LABELS)]
        assert v.page.locator(".headline").text_content() == visible_label(label)
    v.page.goto(hostile_site.url("http", "index.html"))
    v.page.fill("#q", "svg onload")
    labels = v.page.locator("#results .lbl").all_text_contents()
    assert labels and set(labels) == {ADVERSARIAL_LABELS[0]}
    v.assert_clean()


def test_hostile_tokens_show_literally_with_marked_bytes_and_whitespace(visit, hostile_site):
    v = visit(hostile_site, "file", "features/000/0.html")
    shown = set(v.page.locator(".exs i, .exs u").all_text_contents())
    script_token = ADVERSARIAL_TOKENS[0].replace(" ", "·")
    assert f'</script><img·src=x·onerror="{PWN}">' == script_token
    assert script_token in shown
    assert "é" + "a" * 499 in shown  # the 500-character token, whole
    assert {'"', "'", "&amp;", "<!--", "]]>", "{{·7*7·}}"} <= shown
    assert {"U+2028", "U+2029", "U+0000", "U+202Eevil", "∅", "⏎⏎", "→"} <= shown
    # a lone byte stays a chip; an emoji split over two tokens shows whole where it completes
    assert {"\\xE2", "‸", "😀"} <= shown
    own = v.page.locator(".exs u").first
    own.hover()
    tip = v.page.locator("#tok-tip")
    tip.wait_for()
    assert tip.inner_text().startswith("token " + own.text_content())  # text, never HTML
    v.assert_clean()
