"""The Jinja environment pages are rendered with: partials inlined at load time."""

from pathlib import Path

import jinja2

from saesite.config import RenderConfig
from saesite.site import page
from saesite.site.render import write_site
from tests.fixtures.sample_records import adversarial_site, with_token_store


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_feature_page_template_holds_its_partials_and_no_include_tag():
    env = page.make_environment()
    source = env.loader.get_source(env, "feature.html")[0]
    assert "{% include" not in source
    assert 'id="neighbours"' in source  # components/neighbours.html, inlined


def test_pages_with_inlined_partials_are_the_pages_jinja_includes_give(tmp_path, monkeypatch):
    site, features = with_token_store(*adversarial_site(8))
    cfg = {"features_per_folder": 3, "workers": 1}
    page.shared_environment.cache_clear()
    inlined = write_site(site, features, RenderConfig(out=str(tmp_path / "inlined"), **cfg))
    monkeypatch.setattr(page, "InliningLoader", jinja2.FileSystemLoader)
    page.shared_environment.cache_clear()
    try:
        included = write_site(site, features, RenderConfig(out=str(tmp_path / "included"), **cfg))
        assert (
            "{% include"
            in page.shared_environment().loader.get_source(
                page.shared_environment(), "feature.html"
            )[0]
        )
    finally:
        page.shared_environment.cache_clear()
    pages = _files(inlined)
    assert sum(name.endswith(".html") for name in pages) > len(features)
    assert pages == _files(included)
