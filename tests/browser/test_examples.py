"""Example lines on a real feature page: first screen, one column for the firing token, expanding
to the whole sequence from the token store, and a tooltip by mouse, keyboard and tap."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from saesite.site.records_file import site_records
from saesite.site.token_store import ExampleTokens, read_store
from tests.browser.conftest import SCHEMES

# Predicates for wait_for_function are arrow functions: Playwright evaluates a plain
# expression again on every poll with eval, which the pages' CSP (script-src 'self')
# refuses once the first check is false; a function is evaluated once, at the first check.
NEXT_IN_TIP = "() => document.getElementById('tok-tip').textContent.includes('WORD')"

pytestmark = pytest.mark.browser

VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}


def _record(site, page_rel: str) -> dict:
    """The record of the feature at ``page_rel`` (``features/NNN/<index>.html``)."""
    return site_records(site.path)[int(Path(page_rel).stem)]


def _busiest(site) -> str:
    """The feature page with the most distinct top examples, whose top window holds a newline."""
    best = None
    meta = orjson.loads((site.path / "site.json").read_bytes())
    store = ExampleTokens(read_store(site.path), meta["token_bytes"])
    for entry, record in zip(meta["features"], site_records(site.path), strict=True):
        record = store.attach(record)
        examples = record["top_examples"]
        windows = {tuple(e["tokens"]) for e in examples}
        score = (len(windows), int(bool(examples) and "\n" in "".join(examples[0]["tokens"])))
        if best is None or score > best[0]:
            best = (score, entry["html"])
    return best[1]


@pytest.fixture(scope="module")
def page_rel(real_site) -> str:
    return _busiest(real_site)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("size", VIEWPORTS)
def test_the_first_example_is_inside_the_first_viewport(visit, real_site, page_rel, scheme, size):
    width, height = VIEWPORTS[size]
    v = visit(real_site, scheme, page_rel, viewport={"width": width, "height": height})
    box = v.page.locator("#top .exs p").first.bounding_box()
    assert box["y"] + box["height"] <= height, f"first example ends at {box['y'] + box['height']}"
    assert v.page.locator(".headline").inner_text().strip()
    v.screenshot(f"examples-first-screen-{size}-{scheme}", full_page=False)
    v.assert_clean()


def test_the_firing_token_sits_at_one_x_down_the_list(visit, real_site, page_rel):
    v = visit(real_site, "http", page_rel, viewport={"width": 1280, "height": 800})
    xs = v.page.eval_on_selector_all(
        "#top .exs p u", "els => els.map(e => Math.round(e.getBoundingClientRect().left))"
    )
    assert len(xs) >= 2 and len(set(xs)) == 1, xs


@pytest.mark.parametrize("scheme", SCHEMES)
def test_expanding_an_example_shows_its_whole_sequence_with_line_breaks(
    visit, real_site, page_rel, scheme
):
    v = visit(real_site, scheme, page_rel, viewport={"width": 1280, "height": 800})
    line = v.page.locator("#top .exs p").first
    line.click()
    full = v.page.locator("#top .full").first
    full.wait_for()
    seq_len = orjson.loads((real_site.path / "site.json").read_bytes())["seq_len"]
    assert full.locator("span").count() == seq_len
    assert line.get_attribute("aria-expanded") == "true"
    text = full.inner_text()
    assert "⏎\n" in text  # a newline mark ends its line
    assert full.bounding_box()["height"] > 3 * line.bounding_box()["height"]
    assert full.locator("span.own").count() == 1
    v.screenshot(f"examples-expanded-{scheme}", full_page=False)
    line.click()
    assert v.page.locator("#top .full").count() == 0
    v.assert_clean()


def test_the_tooltip_opens_on_keyboard_focus_and_names_token_activation_and_next_token(
    visit, real_site, page_rel
):
    v = visit(real_site, "file", page_rel, viewport={"width": 1280, "height": 800})
    v.page.locator("#top .exs p").first.focus()
    tip = v.page.locator("#tok-tip")
    tip.wait_for()
    v.page.wait_for_function(NEXT_IN_TIP.replace("WORD", "next"))
    text = tip.inner_text()
    assert "activation" in text and "position" in text and "(id " in text
    v.page.keyboard.press("Escape")
    assert tip.is_hidden()
    v.assert_clean()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_the_firing_tokens_tooltip_gives_its_direct_effect_on_the_next_tokens_logit(
    visit, real_site, page_rel, scheme
):
    record = _record(real_site, page_rel)
    example = next(e for e in record["top_examples"] if "next_logit" in e)
    where = f"{example['seq']},{example['pos']},"  # data-x="seq,pos,logit…"
    v = visit(real_site, scheme, page_rel, viewport={"width": 1280, "height": 800})
    v.page.locator(f'#top p[data-x^="{where}"] u').first.hover()
    v.page.wait_for_function(NEXT_IN_TIP.replace("WORD", "next token "))
    text = v.page.locator("#tok-tip").inner_text()
    assert f"direct effect on the next token's logit {example['next_logit']:+.3g}" in text
    v.assert_clean()


def test_the_tooltip_opens_on_a_tap(visit, real_site, page_rel):
    v = visit(
        real_site,
        "http",
        page_rel,
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
    )
    v.page.locator("#top .exs p u").first.tap()
    tip = v.page.locator("#tok-tip")
    tip.wait_for()
    assert "activation" in tip.inner_text()
    assert v.page.locator("#top .full").count() == 0  # a tap on a token does not expand
    v.screenshot("examples-tooltip-tap-phone", full_page=False)
    v.assert_clean()


@pytest.fixture(scope="module")
def tiny_values_site(tmp_path_factory, server_root, http_port):
    """Activations whose display takes the most characters (``1.23e-05``, ``0.00293``)."""
    from saesite.config import RenderConfig
    from saesite.site.render import write_site
    from tests.browser.conftest import _serve
    from tests.fixtures.sample_records import sample_site

    site, features = sample_site(4, seed=4, top_k=4, n_intervals=2, interval_samples=2)
    for feature in features:
        for k, example in enumerate(feature["top_examples"]):
            example["act"] = (1.23e-05, 0.00293)[k % 2]
    out = write_site(site, features, RenderConfig(out=str(tmp_path_factory.mktemp("v") / "s")))
    return _serve(server_root, http_port, "tiny-values", out)


@pytest.mark.parametrize("size", VIEWPORTS)
def test_an_examples_value_fits_its_column_and_never_runs_into_the_tokens(
    visit, tiny_values_site, size
):
    width, height = VIEWPORTS[size]
    v = visit(
        tiny_values_site, "file", "features/000/0.html", viewport={"width": width, "height": height}
    )
    shown = v.page.eval_on_selector_all(
        "#top .exs p var",
        "els => els.map(e => [e.textContent, e.scrollWidth <= e.clientWidth, "
        "e.getBoundingClientRect().right"
        " <= e.nextElementSibling.getBoundingClientRect().left + 0.5])",
    )
    assert {text for text, _, _ in shown} == {"1.23e-05", "0.00293"}
    assert all(fits and apart for _, fits, apart in shown), shown
    v.assert_clean()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_examples_across_the_range_are_drawn_from_the_token_store_as_the_page_draws_lines(
    visit, real_site, page_rel, scheme
):
    import re

    from saesite.site.token_markup import TokenDisplay

    meta = orjson.loads((real_site.path / "site.json").read_bytes())
    store = ExampleTokens(read_store(real_site.path), meta["token_bytes"])
    record = store.attach(_record(real_site, page_rel))
    display = TokenDisplay(meta["token_bytes"])
    # shading included: the page shades its own lines from the values it shows, as the
    # script shades the lines it draws from data-a
    quoted = lambda html: re.sub(r" class=(a\d)", r' class="\1"', html)  # noqa: E731 - DOM's
    expected = {
        f"{e['seq']},{e['pos']}": quoted(
            re.search(r"</var>(.*)</p>", display.example(e, record["max_activation"])).group(1)
        )
        for interval in record["quantile_examples"]
        for e in interval["examples"]
    }
    page_html = (real_site.path / page_rel).read_text()
    range_html = page_html[page_html.index('id="range"') :]
    assert expected and "<span>" not in range_html.split("</section>")[0]  # not in the page
    v = visit(real_site, scheme, page_rel, viewport={"width": 1280, "height": 800})
    v.page.locator("#range").scroll_into_view_if_needed()
    # lines that repeat a top example (data-t) are copied from it, the others drawn
    v.page.wait_for_function(
        "() => [...document.querySelectorAll('#range .exs p')]"
        ".every(p => p.querySelector('var + span') && p.getAttribute('data-x'))"
    )
    drawn = v.page.eval_on_selector_all(
        "#range .exs p",
        "els => els.map(p => [p.getAttribute('data-x').split(',').slice(0, 2).join(','),"
        " p.innerHTML.replace(/^<var>[^<]*<\\/var>/, '')])",
    )
    assert len(drawn) == len(expected)
    for where, inner in drawn:
        assert inner == expected[where], where
    assert v.page.locator("#range p u").count() == len(drawn)
    v.screenshot(f"examples-range-{scheme}", full_page=False)
    v.assert_clean()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_drawing_the_range_lines_from_the_store_moves_nothing_below_them(
    visit, real_site, page_rel, scheme
):
    # a screen so short that the range's lines are not drawn at load; they are drawn when
    # they come near it, while the reader may be about to click a link below them
    v = visit(real_site, scheme, page_rel, viewport={"width": 1280, "height": 200})
    assert v.page.locator("#range .exs p:empty").count() > 0, "drawn at load: no test"
    top_of_next = (
        "() => document.getElementById('range').nextElementSibling"
        ".getBoundingClientRect().top + window.scrollY"
    )
    before = v.page.evaluate(top_of_next)
    v.page.locator("#range").scroll_into_view_if_needed()
    v.page.wait_for_function("() => !document.querySelector('#range .exs p:empty')")
    assert abs(v.page.evaluate(top_of_next) - before) < 1
    v.assert_clean()
