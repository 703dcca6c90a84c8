import html

import orjson
import pytest

from saesite.cli import main
from saesite.config import RenderConfig
from saesite.site.render import rerender_site, write_site
from tests.fixtures.sample_records import sample_site

HOSTED = "https://user.github.io/repo&x/"


def _write(tmp_path, **cfg):
    site, features = sample_site(4, seed=1)
    return write_site(site, features, RenderConfig(out=str(tmp_path / "s"), **cfg))


def test_every_page_names_its_hosted_address_in_canonical_and_open_graph_links(tmp_path):
    out = _write(tmp_path, base_url="https://user.github.io/repo&x")
    escaped = html.escape(HOSTED)
    page = (out / "features/000/2.html").read_text()
    assert f'<link rel="canonical" href="{escaped}features/000/2.html">' in page
    assert f'<meta property="og:url" content="{escaped}features/000/2.html">' in page
    # what Copy link copies (static/feature.js reads the canonical link)
    assert "data-url" not in page
    index = (out / "index.html").read_text()
    assert f'<link rel="canonical" href="{escaped}">' in index
    assert (
        f'<link rel="canonical" href="{escaped}table/page-0.html">'
        in (out / "table/page-0.html").read_text()
    )
    assert orjson.loads((out / "site.json").read_bytes())["config"]["render"]["base_url"] == HOSTED


def test_without_a_base_url_pages_have_no_canonical_link_and_copy_their_own_address(tmp_path):
    page = (_write(tmp_path) / "features/000/2.html").read_text()
    assert "canonical" not in page and "og:url" not in page  # Copy link takes the page's own


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://host/site/", "not a web address"),
        ("user.github.io/repo", "not a web address"),
        ("https://host/a b/", "holds ' '"),
        ('https://host/"onmouseover=x', "holds '\"'"),
        ("https://host/?page=1", "query or fragment"),
        ("https://host:port/", "not a URL"),
    ],
)
def test_a_base_url_that_is_not_an_http_address_is_refused_naming_it(url, fragment):
    with pytest.raises(ValueError, match="--base-url") as err:
        RenderConfig(base_url=url)
    assert fragment in str(err.value) and "https://user.github.io/repo/" in str(err.value)


def test_rerender_keeps_the_base_url_and_takes_a_new_one(tmp_path):
    out = _write(tmp_path, base_url="http://a.example/x")
    rerender_site(out)
    assert (
        'href="http://a.example/x/features/000/1.html"' in (out / "features/000/1.html").read_text()
    )
    rerender_site(out, base_url="https://b.example/")
    rerender_site(out)
    assert 'href="https://b.example/index.html"' not in (out / "index.html").read_text()
    assert '<link rel="canonical" href="https://b.example/">' in (out / "index.html").read_text()


def test_render_with_a_bad_base_url_is_one_line_and_leaves_the_site_alone(tmp_path, capsys):
    out = _write(tmp_path)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code = main(["render", str(out), "--base-url", "javascript:alert(1)"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--base-url" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
