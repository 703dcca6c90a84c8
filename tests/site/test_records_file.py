"""The records files (``features/NNN/records.jsonl.gz``): the site's one copy of its records."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import orjson
import pytest

from saesite.config import RenderConfig
from saesite.errors import SaesiteError
from saesite.site.records_file import pack, site_records, unpack
from saesite.site.render import check_features_per_folder, rerender_site

FOLDER = 40
"""Features per folder in these builds: the tiny SAE's 96 features fill three folders."""


def _build(out: Path, model: Path, sae: Path, tokens: Path, **render) -> Path:
    from saesite.config import BuildConfig, DataConfig, StatsConfig
    from saesite.pipeline import build_site

    stats = StatsConfig(batch_size=8, top_k=5, n_bins=16, n_intervals=4, interval_samples=3)
    render_cfg = RenderConfig(out=str(out), features_per_folder=FOLDER, **render)
    return build_site(
        BuildConfig(
            model=str(model),
            sae=str(sae),
            data=DataConfig(dataset=str(tokens)),
            stats=stats,
            render=render_cfg,
        )
    )


@pytest.fixture(scope="module")
def two_sites(tmp_path_factory, tiny_model_dir, tiny_sae_dir, tiny_tokens_npy) -> dict[str, Path]:
    """The tiny inputs built twice: by default, and with ``--feature-json``."""
    root = tmp_path_factory.mktemp("records-file")
    inputs = (tiny_model_dir, tiny_sae_dir, tiny_tokens_npy)
    return {
        "default": _build(root / "default", *inputs),
        "json": _build(root / "json", *inputs, feature_json=True),
    }


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_a_default_build_writes_one_records_file_per_folder_whose_lines_are_the_records(two_sites):
    site = two_sites["default"]
    meta = orjson.loads((site / "site.json").read_bytes())
    n = meta["d_sae"]
    folders = sorted(p for p in (site / "features").iterdir())
    assert len(folders) == -(-n // FOLDER) == 3
    for k, folder in enumerate(folders):
        indices = range(k * FOLDER, min(n, (k + 1) * FOLDER))
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            [f"{i}.html" for i in indices] + ["records.jsonl.gz"]
        )
        lines = unpack((folder / "records.jsonl.gz").read_bytes())
        assert [orjson.loads(line)["index"] for line in lines] == list(indices)
        entries = [meta["features"][i] for i in indices]
        assert {e["records"] for e in entries} == {f"features/{k:03d}/records.jsonl.gz"}
        assert all("json" not in e for e in entries)
        # each line is the record's JSON as the renderer writes it: sorted keys, one line
        assert all(
            line == orjson.dumps(orjson.loads(line), option=orjson.OPT_SORT_KEYS) for line in lines
        )
    records = site_records(site)
    assert [r["index"] for r in records] == list(range(n))
    assert [r["density"] for r in records] == [e["density"] for e in meta["features"]]


def test_feature_json_adds_the_per_feature_files_equal_to_the_lines_of_the_records_files(two_sites):
    default, with_json = (_files(two_sites[k]) for k in ("default", "json"))
    meta = orjson.loads(with_json["site.json"])
    lines = {
        rel: unpack(data) for rel, data in with_json.items() if rel.endswith("records.jsonl.gz")
    }
    for entry in meta["features"]:
        folder_lines = lines[entry["records"]]
        assert with_json[entry["json"]] == folder_lines[entry["index"] % FOLDER]
    # the records files do not depend on the option; the pages differ only in their data link
    assert {k: v for k, v in with_json.items() if k.endswith(".gz")} == {
        k: v for k, v in default.items() if k.endswith(".gz")
    }
    page = with_json["features/001/41.html"].decode()
    assert '<a href="41.json" type="application/json">JSON</a>' in page
    assert 'href="records.jsonl.gz"' in default["features/001/41.html"].decode()
    assert "records.jsonl.gz" not in page
    json_files = [k for k in with_json if k.startswith("features/") and k.endswith(".json")]
    assert len(json_files) == meta["d_sae"] and not any(
        k.startswith("features/") and k.endswith(".json") for k in default
    )


def test_render_of_a_default_site_reproduces_it_byte_for_byte_from_its_records_files(
    two_sites, tmp_path
):
    site = shutil.copytree(two_sites["default"], tmp_path / "site")
    before = _files(site)
    rerender_site(site)
    assert _files(site) == before
    rerender_site(site, workers=2)  # three folders, ranges of whole folders
    assert _files(site) == before


def test_render_with_new_labels_rewrites_the_records_and_a_second_render_reproduces_it(
    two_sites, tmp_path
):
    site = shutil.copytree(two_sites["default"], tmp_path / "site")
    labels = tmp_path / "labels.csv"
    labels.write_text('id,label\n3,"first </script> & label"\n45,second\n')
    rerender_site(site, labels=str(labels))
    records = site_records(site)
    assert records[3]["label"] == "first </script> & label" and records[45]["label"] == "second"
    assert sum(r["label"] is not None for r in records) == 2
    assert "first &lt;/script&gt; &amp; label" in (site / "features/000/3.html").read_text()
    for key in ("label", "index", "density", "top_examples"):
        assert [r[key] for r in records if r["index"] not in (3, 45)] == [
            r[key] for r in site_records(two_sites["default"]) if r["index"] not in (3, 45)
        ]
    relabelled = _files(site)
    assert (
        relabelled["features/000/records.jsonl.gz"]
        != _files(two_sites["default"])["features/000/records.jsonl.gz"]
    )
    rerender_site(site)  # the labels are in the records files now: read back as they are
    assert _files(site) == relabelled


def test_render_keeps_the_feature_json_of_a_site_built_with_it(two_sites, tmp_path):
    site = shutil.copytree(two_sites["json"], tmp_path / "site")
    before = _files(site)
    rerender_site(site)
    assert _files(site) == before


def test_no_two_files_of_a_default_site_carry_the_same_record(two_sites):
    """No per-feature JSON by default. The records are in the records files and nowhere else
    as data: every file under
    features/ is a page or a records file, and site.json holds entries, not records."""
    site = two_sites["default"]
    names = [p.name for p in (site / "features").rglob("*") if p.is_file()]
    assert all(name.endswith(".html") or name == "records.jsonl.gz" for name in names)
    meta = (site / "site.json").read_text()
    assert '"top_examples"' not in meta and '"logit_effects"' not in meta
    assert [p.name for p in site.rglob("*.json")] == ["site.json", ".saesite-manifest.json"]


def test_a_records_file_is_deterministic_gzip_without_a_name_or_time():
    lines = [b'{"index":0}', b'{"index":1,"s":"\\u2028 \xc3\xa9"}']
    data = pack(lines)
    assert data == pack(list(lines))
    assert data[:2] == b"\x1f\x8b" and data[3] == 0  # FLG: no name, comment or extra field
    assert data[4:8] == b"\0\0\0\0"  # MTIME 0
    assert gzip.decompress(data) == b'{"index":0}\n{"index":1,"s":"\\u2028 \xc3\xa9"}\n'
    assert unpack(data) == lines


def test_a_records_file_with_fewer_lines_than_its_folder_is_refused_in_one_line(
    two_sites, tmp_path
):
    site = shutil.copytree(two_sites["default"], tmp_path / "site")
    path = site / "features/002/records.jsonl.gz"
    path.write_bytes(pack(unpack(path.read_bytes())[:-1]))
    with pytest.raises(SaesiteError, match="has 15 lines, fewer than site.json's features"):
        rerender_site(site)


def test_a_folder_of_pages_json_files_and_its_records_file_fits_githubs_listing():
    assert RenderConfig().features_per_folder == 500
    assert RenderConfig(feature_json=True).features_per_folder == 499
    check_features_per_folder(999)
    check_features_per_folder(499, feature_json=True)
    with pytest.raises(SaesiteError, match="features_per_folder is 500; expected 1–499"):
        check_features_per_folder(500, feature_json=True)
    with pytest.raises(SaesiteError, match="features_per_folder is 1000; expected 1–999"):
        check_features_per_folder(1000)
