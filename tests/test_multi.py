"""Several SAEs, one site (saesite/multi.py): one forward pass, each SAE's numbers those of its
own build, cross-SAE links equal to a brute-force cosine search, comparisons."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from saesite.cli import main
from saesite.config import BuildConfig, DataConfig, RenderConfig, StatsConfig
from saesite.site.records_file import site_records
from tests.conftest import TINY_MODEL, make_tiny_sae_dir

H0, H1 = "blocks.0.hook_resid_post", "blocks.1.hook_resid_post"
STATS = dict(batch_size=8, top_k=5, n_bins=16, n_intervals=4, interval_samples=3, context_before=4)


@pytest.fixture(scope="module")
def two_layers(tmp_path_factory, tiny_model_dir) -> dict[str, Path]:
    """A 2-layer tiny model and three SAEs on two hooks: 48 and 96 features on layer 0's
    residual stream (two widths), 64 on layer 1's (one layer up)."""
    from saesite.lm.model import Tokenizer, build_model, save_model

    root = tmp_path_factory.mktemp("two-layers")
    tokenizer = tiny_model_dir / "tokenizer.json"
    torch.manual_seed(1)
    vocab = Tokenizer.from_file(tokenizer).vocab_size
    model = build_model({**TINY_MODEL, "n_layers": 2, "d_vocab": vocab})
    save_model(model, tokenizer, root / "model", dtype=torch.float32)
    return {
        "model": root / "model",
        "a48": make_tiny_sae_dir(root / "a48", d_in=32, d_sae=48, seed=1, hook=H0, bias=-0.3),
        "b96": make_tiny_sae_dir(root / "b96", d_in=32, d_sae=96, seed=2, hook=H0, bias=-0.3),
        "c64": make_tiny_sae_dir(root / "c64", d_in=32, d_sae=64, seed=3, hook=H1, bias=-0.3),
    }


def config_for(two_layers, tokens, out, **stats) -> BuildConfig:
    return BuildConfig(
        model=str(two_layers["model"]),
        data=DataConfig(dataset=str(tokens)),
        stats=StatsConfig(**{**STATS, **stats}),
        render=RenderConfig(out=str(out), workers=1),
    )


def sources(two_layers) -> list[tuple[str, None]]:
    return [(str(two_layers[name]), None) for name in ("a48", "b96", "c64")]


@pytest.fixture(scope="module")
def multi_site(tmp_path_factory, two_layers, tiny_tokens_npy) -> Path:
    """The three SAEs in one site, CE losses on the first batch (the rest share the forward)."""
    from saesite.multi import build_many

    out = tmp_path_factory.mktemp("multi") / "site"
    config = config_for(two_layers, tiny_tokens_npy, out, ce_tokens=256)
    return build_many(config, sources(two_layers))


def count_forwards(model, monkeypatch) -> list[int]:
    calls: list[int] = []
    forward = model.forward

    def counting(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", counting)
    return calls


def test_three_saes_on_two_hooks_take_one_forward_per_batch_like_one_sae(
    two_layers, tiny_tokens_npy, tmp_path, monkeypatch
):
    from saesite.multi import compute_many, load_many
    from saesite.pipeline import compute, load

    config = config_for(two_layers, tiny_tokens_npy, tmp_path / "s", ce_loss=False)
    builds = load_many(config, sources(two_layers))
    assert [b.loaded.hook for b in builds] == [H0, H0, H1]
    calls = count_forwards(builds[0].loaded.model, monkeypatch)
    stats = compute_many(builds, config.stats, config.weights)
    assert len(stats) == 3
    n_batches = -(-24 // config.stats.batch_size)
    assert len(calls) == n_batches  # one forward per batch for all three SAEs

    single = load(str(two_layers["model"]), str(two_layers["c64"]), data=config.data)
    calls = count_forwards(single.model, monkeypatch)
    compute(single, config.stats, config.weights)
    assert len(calls) == n_batches


def test_each_sae_of_a_multi_sae_site_has_the_records_of_its_single_sae_build(
    multi_site, two_layers, tiny_tokens_npy, tmp_path
):
    from saesite.pipeline import build_site

    overview = json.loads((multi_site / "site.json").read_text())
    assert [s["id"] for s in overview["saes"]] == ["a48", "b96", "c64"]
    for name in ("a48", "b96", "c64"):
        config = config_for(two_layers, tiny_tokens_npy, tmp_path / name, ce_tokens=256)
        single = build_site(BuildConfig(**{**config.__dict__, "sae": str(two_layers[name])}))
        mine = multi_site / "sae" / name
        single_site = json.loads((single / "site.json").read_text())
        multi_json = json.loads((mine / "site.json").read_text())
        assert multi_json["metrics"]["ce_loss_recovered"] is not None
        single_site.pop("config"), multi_json.pop("config")
        assert multi_json == single_site, name
        files = sorted(p.relative_to(single) for p in single.rglob("features/*/records.jsonl.gz"))
        assert len(files) == 1 and len(site_records(single)) == single_site["d_sae"]
        for rel in files:
            assert (mine / rel).read_bytes() == (single / rel).read_bytes(), (name, rel)


def brute_force(W_a: torch.Tensor, W_b: torch.Tensor) -> np.ndarray:
    a = W_a.detach().double().numpy()
    b = W_b.detach().double().numpy()
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def test_cross_sae_neighbours_and_splits_equal_a_brute_force_cosine_search(two_layers):
    from saesite.records.cross import SaeDecoder, cross_records
    from saesite.sae.load import load_sae

    saes = [load_sae(two_layers[name]) for name in ("a48", "b96", "c64")]
    decoders = [SaeDecoder(hook=s.cfg.hook_name, W_dec=s.W_dec) for s in saes]
    cross = cross_records(decoders, k=4)
    pairs = {(p.a, p.b): p for p in cross.links}
    # a48-b96 on one hook, c64 one layer above both
    assert {k: p.relation for k, p in pairs.items()} == {
        (0, 1): "same hook",
        (1, 0): "same hook",
        (0, 2): "one layer up",
        (2, 0): "one layer down",
        (1, 2): "one layer up",
        (2, 1): "one layer down",
    }
    for (a, b), pair in pairs.items():
        cos = brute_force(saes[a].W_dec, saes[b].W_dec)
        order = np.argsort(-cos, axis=1, kind="stable")[:, :4]
        assert pair.indices == order.tolist()
        np.testing.assert_allclose(pair.cosines, np.take_along_axis(cos, order, 1), atol=1e-3)
    # splits: b96's features whose closest a48 feature is f, at cosine >= 0.5
    cos = brute_force(saes[1].W_dec, saes[0].W_dec)
    parent, best = cos.argmax(1), cos.max(1)
    for f, children in enumerate(pairs[(0, 1)].splits):
        expected = sorted(
            (g for g in range(96) if parent[g] == f and best[g] >= 0.5), key=lambda g: -best[g]
        )
        assert [g for g, _ in children] == expected
    assert pairs[(1, 0)].splits is None
    assert [(m["lower"], m["upper"]) for m in cross.layer_matches] == [(0, 2), (1, 2)]
    share = float((brute_force(saes[0].W_dec, saes[2].W_dec).max(1) >= 0.7).mean())
    assert cross.layer_matches[0]["share_above"]["0.7"] == pytest.approx(share)


def test_feature_pages_link_the_closest_features_of_the_other_saes(multi_site, two_layers):
    from saesite.records.cross import SaeDecoder, cross_records
    from saesite.sae.load import load_sae

    saes = [load_sae(two_layers[name]) for name in ("a48", "b96", "c64")]
    cross = cross_records([SaeDecoder(hook=s.cfg.hook_name, W_dec=s.W_dec) for s in saes])
    page = (multi_site / "sae/a48/features/000/7.html").read_text()
    section = page[page.index('id="cross-sae"') :]
    for pair in cross.links_of(0):
        other = ["a48", "b96", "c64"][pair.b]
        block = section[section.index(f'data-sae="{other}"') :].split("</ul>")[0]
        hrefs = re.findall(r'href="([^"]+)">(\d+)</a>', block)
        assert [int(i) for _, i in hrefs] == pair.indices[7]
        for href, index in hrefs:
            target = (multi_site / "sae/a48/features/000" / href).resolve()
            assert target == (multi_site / f"sae/{other}/features/000/{index}.html").resolve()
            assert target.is_file()
    # a48 is the narrower SAE on its hook: a feature's page names the b96 features it splits into
    splits = next(p for p in cross.links_of(0) if p.b == 1).splits
    f = next(f for f, children in enumerate(splits) if children)
    page = (multi_site / f"sae/a48/features/000/{f}.html").read_text()
    shown = page[page.index('class="splits"') :].split("</p>")[0]
    assert [int(i) for i in re.findall(r">(\d+)</a>", shown)] == [g for g, _ in splits[f]]


def test_the_overview_links_every_sae_and_the_comparison_of_the_pair_on_one_hook(multi_site):
    index = (multi_site / "index.html").read_text()
    for name in ("a48", "b96", "c64"):
        assert f'href="sae/{name}/index.html"' in index
        assert (multi_site / "sae" / name / "index.html").is_file()
    assert 'href="compare/a48--b96.html"' in index
    assert sorted(p.name for p in (multi_site / "compare").iterdir()) == ["a48--b96.html"]
    assert "a48 → c64" in index and "b96 → c64" in index  # matches one layer up
    # the token store once, for every SAE
    assert (multi_site / "tokens" / "vocab.js").is_file()
    assert not list((multi_site / "sae").rglob("tokens"))
    page = (multi_site / "sae/c64/features/000/0.html").read_text()
    assert 'aria-current="true" title="blocks.1.hook_resid_post · 64 features">c64' in page


def test_two_saes_on_one_hook_get_their_own_page_titles(multi_site):
    def title(rel_path: str) -> str:
        return re.search(r"<title>(.*?)</title>", (multi_site / rel_path).read_text()).group(1)

    a, b = title("sae/a48/features/000/0.html"), title("sae/b96/features/000/0.html")
    assert a != b and a.endswith("· a48") and b.endswith("· b96")  # both on blocks.0
    assert title("sae/a48/index.html").endswith("· a48")


def test_the_go_to_box_is_on_each_saes_pages_and_not_on_the_shared_overview(multi_site):
    goto = 'id="goto"'
    assert goto not in (multi_site / "index.html").read_text()  # which SAE's feature N?
    assert goto not in (multi_site / "compare/a48--b96.html").read_text()
    page = (multi_site / "sae/b96/features/000/0.html").read_text()
    assert re.search(r'id="goto"[^>]*data-root="\.\./\.\./\.\./\.\./sae/b96/"', page)


def test_an_sae_compared_with_itself_has_every_max_cosine_in_the_top_bin(
    tmp_path, tiny_model_dir, tiny_sae_dir, tiny_tokens_npy
):
    """Through the Python API: saesite.build(model, {name: sae, …}, tokens), labels by name."""
    import saesite
    from saesite.lm.model import load_model
    from saesite.sae.load import load_sae

    loaded = load_model(str(tiny_model_dir))
    sae = load_sae(tiny_sae_dir)
    tokens = np.load(tiny_tokens_npy)
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"right": {"0": "right zero"}}))
    out = saesite.build(
        loaded.model,
        {"left": sae, "right": sae},
        tokens,
        tmp_path / "site",
        tokenizer=loaded.tokenizer,
        stats=StatsConfig(**STATS, ce_loss=False),
        workers=1,
        labels=str(labels),
    )
    for name, expected in (("left", {}), ("right", {"0": "right zero"})):
        assert json.loads((out / "sae" / name / "site.json").read_text())["labels"] == expected
    (comparison,) = json.loads((out / "site.json").read_text())["comparisons"]
    for direction in ("a_in_b", "b_in_a"):
        summary = comparison[direction]
        assert summary["counts"][-1] == sae.cfg.d_sae
        assert sum(summary["counts"]) == sae.cfg.d_sae
        assert summary["share_above"] == {"0.9": 1.0, "0.7": 1.0}
        assert summary["unmatched"] == []
    page = (out / "compare" / "left--right.html").read_text()
    assert "<svg" in page and "Unmatched features" not in page


def test_instance_all_builds_every_arena_instance_into_one_site(
    tmp_path, tiny_model_dir, tiny_tokens_npy
):
    gen = torch.Generator().manual_seed(4)
    sd = {
        "W_enc": torch.randn(2, 64, 24, generator=gen) * 0.3,
        "W_dec": torch.randn(2, 24, 64, generator=gen),
        "b_enc": torch.full((2, 24), -0.1),
        "b_dec": torch.randn(2, 64, generator=gen) * 0.01,
    }
    torch.save(sd, tmp_path / "ae.pt")
    args = ["-q", "build", "--model", str(tiny_model_dir), "--dataset", str(tiny_tokens_npy)]
    args += ["--sae", str(tmp_path / "ae.pt"), "--instance", "all", "--no-ce-loss"]
    args += ["--hook", "blocks.0.mlp.hook_post", "--batch-size", "8", "--top-k", "4"]
    args += ["--n-bins", "16", "--n-intervals", "4", "--workers", "1"]
    assert main([*args, "--out", str(tmp_path / "site")]) == 0
    site = json.loads((tmp_path / "site" / "site.json").read_text())
    assert [s["id"] for s in site["saes"]] == ["ae.pt-i0", "ae.pt-i1"]
    assert (tmp_path / "site" / "compare" / "ae.pt-i0--ae.pt-i1.html").is_file()


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--labels", "labels.csv"], "expected 3 for a site of several SAEs: sae,id,label"),
        (["--shard", "0/2", "--state-out", "state"], "--shard and --ray build one SAE"),
    ],
)
def test_multi_sae_builds_refuse_single_sae_options_with_one_line(
    tmp_path, tiny_model_dir, tiny_sae_dir, tiny_tokens_npy, capsys, monkeypatch, extra, fragment
):
    monkeypatch.chdir(tmp_path)
    Path("labels.csv").write_text("0,zero\n")
    args = ["-q", "build", "--model", str(tiny_model_dir), "--dataset", str(tiny_tokens_npy)]
    args += ["--sae", str(tiny_sae_dir), "--sae", str(tiny_sae_dir), "--out", "site", *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and "\n" not in err
    assert not Path("site").exists()


def test_a_single_sae_site_has_no_multi_sae_files(tiny_site):
    assert not (tiny_site / "static" / "multi").exists()
    assert not (tiny_site / "sae").exists()
    assert "sae-switcher" not in (tiny_site / "index.html").read_text()


@pytest.mark.parametrize("form", ["json", "csv"])
def test_a_labels_file_by_sae_id_labels_each_saes_own_features(
    two_layers, tiny_tokens_npy, tmp_path, form
):
    from saesite.multi import build_many

    wanted = {"a48": {0: "zero of a48", 47: 'last, "quoted" <b>of</b> a48'}, "c64": {63: "c64 end"}}
    if form == "json":
        path = tmp_path / "labels.json"
        path.write_text(
            json.dumps({k: {str(i): v for i, v in d.items()} for k, d in wanted.items()})
        )
    else:
        path = tmp_path / "labels.csv"
        rows = [[sae, str(i), label] for sae, d in wanted.items() for i, label in d.items()]
        with path.open("w", newline="") as f:
            csv.writer(f).writerows([["sae", "id", "label"], *rows])
    config = config_for(two_layers, tiny_tokens_npy, tmp_path / "site", ce_loss=False)
    config = replace(config, render=replace(config.render, labels=str(path)))
    out = build_many(config, sources(two_layers))
    for sae in ("a48", "b96", "c64"):
        site = json.loads((out / "sae" / sae / "site.json").read_text())
        assert {int(k): v for k, v in site["labels"].items()} == wanted.get(sae, {}), sae
    page = (out / "sae" / "a48" / "features" / "000" / "47.html").read_text()
    assert "last, &#34;quoted&#34; &lt;b&gt;of&lt;/b&gt; a48" in page
    assert "<b>of</b>" not in page
    # the same feature id in another SAE keeps its own (generated) headline
    assert "zero of a48" not in (out / "sae" / "b96" / "features" / "000" / "0.html").read_text()


@pytest.mark.parametrize(
    ("labels", "fragment"),
    [
        ({"nope": {"0": "x"}}, "labels SAE 'nope'; this site's SAEs are a48, b96, c64"),
        ({"a48": {"48": "x"}}, "labels feature 48 of SAE 'a48', which has 48 features"),
        ({"a48": ["x"]}, "key 'a48' holds a JSON list"),
    ],
)
def test_a_labels_file_that_names_no_such_sae_or_feature_stops_the_build_before_the_pass(
    two_layers, tiny_tokens_npy, tmp_path, capsys, labels, fragment
):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(labels))
    args = ["-q", "build", "--model", str(two_layers["model"])]
    args += ["--dataset", str(tiny_tokens_npy), "--out", str(tmp_path / "site")]
    for name in ("a48", "b96", "c64"):
        args += ["--sae", str(two_layers[name])]
    assert main([*args, "--labels", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and "\n" not in err, err
    assert not (tmp_path / "site").exists()
