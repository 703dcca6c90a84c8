"""GPT-2's byte-level tokens, readable: a real build with GPT-2's tokenizer shows "’", "“",
emoji and CJK that GPT-2 splits across tokens as characters, on the example lines and in the
expanded sequence, while each partial token stays its own hoverable element."""

from __future__ import annotations

import orjson
import pytest

from saesite.site.records_file import site_records
from tests.browser.conftest import SCHEMES, _serve
from tests.conftest import make_tiny_sae_dir
from tests.fixtures.gpt2 import SPLIT_TEXT, gpt2_model_dir

pytestmark = pytest.mark.browser

JOINED = ("’", "“", "”", "🦜", "日", "本", "語", "文", "章")


@pytest.fixture(scope="module")
def gpt2_site(tmp_path_factory, server_root, http_port):
    from saesite.config import BuildConfig, DataConfig, RenderConfig, StatsConfig
    from saesite.pipeline import build_site

    root = tmp_path_factory.mktemp("gpt2-site")
    (root / "text.txt").write_text((SPLIT_TEXT + "\n") * 80, encoding="utf-8")
    out = build_site(
        BuildConfig(
            model=str(gpt2_model_dir(root / "model")),
            sae=str(make_tiny_sae_dir(root / "sae")),
            data=DataConfig(dataset=str(root / "text.txt"), seq_len=64, n_tokens=64 * 16),
            stats=StatsConfig(batch_size=8, top_k=4, n_bins=8, n_intervals=2, ce_loss=False),
            render=RenderConfig(out=str(root / "site"), workers=1),
        )
    )
    return _serve(server_root, http_port, "gpt2", out)


def _busiest(site) -> str:
    entries = orjson.loads((site.path / "site.json").read_bytes())["features"]
    counts = []
    for entry, record in zip(entries, site_records(site.path), strict=True):
        counts.append((len(record["top_examples"]), entry["html"]))
    return max(counts)[1]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_split_characters_read_as_characters_and_partial_tokens_stay_hoverable(
    visit, gpt2_site, scheme
):
    site_json = orjson.loads((gpt2_site.path / "site.json").read_bytes())
    assert site_json["token_bytes"]["447"] == "e2 80"  # the exact bytes stay in the JSON
    v = visit(gpt2_site, scheme, _busiest(gpt2_site), viewport={"width": 1280, "height": 800})
    lines = v.page.locator("#top .exs p")
    shown = "".join(lines.all_inner_texts())
    assert any(char in shown for char in JOINED), shown
    lines.first.click()
    full = v.page.locator("#top .full").first
    full.wait_for()
    text = full.inner_text().replace("‸", "").replace("·", " ")
    assert SPLIT_TEXT in text, text
    assert "\\x" not in full.inner_text()
    partial = full.locator("span[data-i]:has(kbd.p[data-b='e2 80'])").first
    partial.hover()
    tip = v.page.locator("#tok-tip")
    tip.wait_for()
    assert "(id 447)" in tip.inner_text() and "\\xE2\\x80" in tip.inner_text()
    v.screenshot(f"byte-tokens-{scheme}", full_page=False)
    v.assert_clean()
