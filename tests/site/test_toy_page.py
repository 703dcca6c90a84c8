"""Toy pages from site.json's ``toy`` entry alone: contexts, templates, and no torch."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from saesite.site.render import make_environment
from saesite.site.toy_page import pages

PROJECT = Path(__file__).resolve().parents[2]


def _instance(
    model: str,
    kind: str,
    level: int,
    p: float,
    n_hidden: int,
    n_features: int,
    first_index: int | None,
) -> dict:
    W = [
        [round(math.cos(h * 1.3 + f * 2.1 + level), 4) for f in range(n_features)]
        for h in range(n_hidden)
    ]
    entry = {
        "model": model,
        "kind": kind,
        "level": level,
        "feature_probability": p,
        "n_features": n_features,
        "n_hidden": n_hidden,
        "loss": 0.01 / (level + 1),
        "W": W,
        "b": [0.0] * n_features,
        "feature_norms": [1.0] * n_features,
        "represented": [True] * (n_features - 1) + [False],
        "dimensionality": [0.5] * n_features,
        "dimensions_per_feature": 0.4,
    }
    if kind == "computation":
        entry["W_out"] = [list(row) for row in zip(*W)]
    if first_index is None:
        return entry
    cos = [0.99, 0.97, 0.5, 0.96, 0.1][:n_features] + [0.2] * max(0, n_features - 5)
    features = [
        {
            "feature": f,
            "latent": f,
            "index": first_index + f,
            "cosine": c,
            "represented": f < n_features - 1,
            "recovered": c >= 0.95,
        }
        for f, c in enumerate(cos)
    ]
    latents = [
        {"latent": j, "index": first_index + j, "feature": j if c >= 0.9 else None, "cosine": c}
        for j, c in enumerate(cos)
    ]
    frames = (
        [
            {
                "step": s,
                "W_dec": [[math.cos(s + j), math.sin(s + j)] for j in range(n_features)],
                "resampled": s == 20,
            }
            for s in range(0, 50, 10)
        ]
        if n_hidden == 2
        else []
    )
    entry.update(
        {
            "recovery": cos,
            "recovery_no_resample": [c / 2 for c in cos],
            "sae": {
                "d_sae": n_features,
                "first_index": first_index,
                "latents": latents,
                "features": features,
                "no_resample": {
                    "latents": latents,
                    "features": [
                        {**row, "cosine": row["cosine"] / 2, "recovered": False} for row in features
                    ],
                    "dead": 2,
                },
                "dead": 0,
                "resample_events": [{"step": 20, "n_resampled": 1}, {"step": 30, "n_resampled": 0}],
                "frames": frames,
                "steps": 40,
                "l0": 0.1,
                "mse": 0.01,
                "explained_variance": 0.9,
            },
        }
    )
    return entry


def fake_site() -> dict:
    models = [
        ("two-d", "bottleneck", 2, 5, (0.5, 0.02), 0, 0),
        ("five-d", "bottleneck", 5, 7, (0.1,), 0, 0),
        ("neurons", "neuron", 3, 6, (0.3, 0.1), 0, 0),
        ("abs", "computation", 4, 6, (1.0,), 0, 0),
        ("pairs", "bottleneck", 2, 4, (0.1,), 1, 1),
    ]
    toy_models, instances, n_latents = [], [], 0
    for name, kind, n_hidden, n_features, probs, corr, anti in models:
        toy_models.append(
            {
                "name": name,
                "title": f"Model <{name}> & co",
                "kind": kind,
                "n_features": n_features,
                "n_hidden": n_hidden,
                "importance": [0.9**f for f in range(n_features)],
                "feature_probability": list(probs),
                "n_correlated_pairs": corr,
                "n_anticorrelated_pairs": anti,
                "seeds_per_level": 1,
            }
        )
        for level, p in enumerate(probs):
            first = n_latents if kind == "bottleneck" else None
            instances.append(_instance(name, kind, level, p, n_hidden, n_features, first))
            n_latents += n_features if kind == "bottleneck" else 0
    return {
        "features": [
            {"index": i, "html": f"features/000/{i}.html", "json": f"features/000/{i}.json"}
            for i in range(n_latents)
        ],
        "toy": {
            "models": toy_models,
            "instances": instances,
            "thresholds": {"recovered_cosine": 0.95, "match_cosine": 0.9, "represented_norm": 0.5},
        },
    }


def render_all(site: dict) -> dict[str, str]:
    env = make_environment()
    out = {}
    for rel_path, template, context in pages(site):
        common = {
            "site_title": "Toy <site>",
            "root": "../",
            "csp": "default-src 'none'",
            "url": "",
            "version": "0",
            "goto": True,  # as render_page sets them on a single-SAE site
            "sae_prefix": "",
            "nav": [
                {"href": "toy/index.html", "text": "Toy", "current": rel_path == "toy/index.html"}
            ],
        }
        out[rel_path] = env.get_template(template).render({**context, **common})
    return out


def test_pages_are_the_index_a_page_per_model_and_an_sae_page_per_bottleneck_model():
    paths = [path for path, _, _ in pages(fake_site())]
    assert paths == [
        "toy/index.html",
        "toy/two-d.html",
        "toy/two-d-sae.html",
        "toy/five-d.html",
        "toy/five-d-sae.html",
        "toy/neurons.html",
        "toy/abs.html",
        "toy/pairs.html",
        "toy/pairs-sae.html",
    ]


def test_every_toy_page_renders_with_its_plots_and_escapes_titles():
    html = render_all(fake_site())
    index = html["toy/index.html"]
    assert "Model &lt;two-d&gt; &amp; co" in index and "<two-d>" not in index
    assert index.count('class="plot toy-plot"') == 3  # dimensionality per bottleneck model
    assert "3 / 4" in index  # 3 of the 4 represented features recovered with resampling
    two_d = html["toy/two-d.html"]
    assert "Features in the hidden plane" in two_d and "Feature norms" not in two_d
    assert "Feature norms" in html["toy/five-d.html"]
    assert "Stacked weights per neuron" in html["toy/neurons.html"]
    assert "|x|" in html["toy/abs.html"]
    assert "anti-correlated" in html["toy/pairs.html"]


def test_sae_page_links_latents_and_has_static_frames_with_script_controls():
    html = render_all(fake_site())
    sae = html["toy/two-d-sae.html"]
    assert 'href="../features/000/0.html"' in sae and 'href="../features/000/9.html"' in sae
    # 5 snapshots per instance: every other one (0, 20, 40; 20 also has a resampling)
    assert sae.count('class="plot-figure toy-frames-item"') == 2 * 3
    assert 'class="toy-frames-controls" hidden' in sae
    assert '<script src="../static/toy-frames.js"></script>' in sae
    assert "onclick" not in sae and "<script>" not in sae
    assert "step 20 · resampled" in sae
    assert "Decoder directions" not in html["toy/five-d-sae.html"]  # no frames for 5-D
    assert (PROJECT / "static" / "toy-frames.js").is_file()


def test_toy_pages_render_without_importing_torch(tmp_path):
    site_path = tmp_path / "site.json"
    site_path.write_text(json.dumps(fake_site()))
    code = (
        "import json, sys\n"
        "from tests.site.test_toy_page import render_all\n"
        f"html = render_all(json.load(open({str(site_path)!r})))\n"
        "assert len(html) == 9\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("path", ["toy/index.html", "toy/two-d-sae.html"])
def test_toy_pages_are_deterministic(path):
    assert render_all(fake_site())[path] == render_all(fake_site())[path]


def test_a_feature_the_model_does_not_represent_gets_no_check_mark_however_close():
    html = render_all(fake_site())
    rows = [
        row
        for path, page in html.items()
        if path.endswith("-sae.html")
        for row in page.split("<tr>")
        if "(not represented)" in row
    ]
    # the fake's last feature is unrepresented with a cosine of 0.96, above the 0.95 threshold
    assert any("0.960" in row for row in rows)
    assert rows and not any("✓" in row for row in rows)
    assert any("✓" in page for page in html.values())  # represented ones still get it


def test_each_latent_maps_to_its_instance_on_the_sae_page():
    from saesite.site.toy_page import latent_instances

    site = fake_site()
    links = latent_instances(site)
    html = render_all(site)
    assert links
    for index, href in links.items():
        page, anchor = href.split("#")
        assert f'id="{anchor}"' in html[page]
        inst = next(
            i
            for i in site["toy"]["instances"]
            if page == f"toy/{i['model']}-sae.html" and anchor == f"i{i['level']}"
        )
        assert index in [row["index"] for row in inst["sae"]["latents"]]
