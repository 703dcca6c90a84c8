"""`saesite toy` end to end on small models: site.json's toy entry, pages, determinism."""

from __future__ import annotations

import json
import re

import pytest

from saesite.config import DoubleDescentConfig, ToyConfig
from saesite.site.records_file import site_records
from saesite.toy.model import ToyModelConfig
from saesite.toy.site import build_toy_site

MODELS = [
    ToyModelConfig(
        name="tiny-3-2",
        title="3 features in 2 dimensions",
        n_features=3,
        n_hidden=2,
        feature_probability=(0.3, 0.05),
        importance_decay=0.9,
    ),
    ToyModelConfig(
        name="tiny-neurons",
        title="ReLU neurons",
        kind="neuron",
        n_features=4,
        n_hidden=3,
        feature_probability=(0.2,),
    ),
]


def _build(out, seed: int = 0):
    cfg = ToyConfig(
        out=str(out),
        seed=seed,
        steps=30,
        sae_steps=30,
        batch_size=64,
        n_samples=256,
        double_descent=DoubleDescentConfig(
            sizes=(3, 10, 400), steps=30, replicas=2, n_features=12, n_test=256
        ),
    )
    return build_toy_site(cfg, models=MODELS)


@pytest.fixture(scope="module")
def toy_site(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("toy") / "site")


def test_site_json_has_the_toy_entry_for_every_bottleneck_instance(toy_site):
    site = json.loads((toy_site / "site.json").read_text())
    instances = site["toy"]["instances"]
    assert [(i["model"], i["level"]) for i in instances] == [
        ("tiny-3-2", 0),
        ("tiny-3-2", 1),
        ("tiny-neurons", 0),
    ]
    for inst in instances[:2]:
        assert inst["n_features"] == 3 and inst["n_hidden"] == 2
        assert inst["feature_probability"] in (0.3, 0.05) and inst["loss"] > 0
        assert len(inst["recovery"]) == 3 and len(inst["recovery_no_resample"]) == 3
        assert all(-1 <= c <= 1 for c in inst["recovery"] + inst["recovery_no_resample"])
        assert inst["sae"]["frames"][0]["step"] == 0
    assert "recovery" not in instances[2] and len(instances[2]["W"]) == 3
    # one feature page per latent, indices running across instances
    assert [f["index"] for f in site["features"]] == list(range(6))


def test_latent_pages_show_inputs_as_true_feature_examples(toy_site):
    entry = json.loads((toy_site / "site.json").read_text())["features"][4]
    record = site_records(toy_site)[4]
    assert record["label"].startswith("tiny-3-2 #1 · ")
    for example in record["top_examples"]:
        assert example["tokens"] == ["f0", "f1", "f2"] and example["token_ids"] == [0, 1, 2]
        assert example["window_start"] == 0
        assert example["acts"][example["pos"]] == max(example["acts"], key=abs)
    page = (toy_site / entry["html"]).read_text()
    lines = re.findall(r"<p[^>]*><var>[^<]*</var>(.*?)</p>", page)
    assert lines and all(
        re.sub(r"<[^>]+>", "", line).split() == ["f0", "f1", "f2"] for line in lines
    )


def test_a_latent_pages_label_links_back_to_its_instance(toy_site):
    site = json.loads((toy_site / "site.json").read_text())
    entry = site["features"][4]  # tiny-3-2, instance 1
    page = (toy_site / entry["html"]).read_text()
    assert re.search(
        r'<p class="headline"><a href="../../toy/tiny-3-2-sae.html#i1">tiny-3-2 #1 ', page
    )
    assert 'id="i1"' in (toy_site / "toy/tiny-3-2-sae.html").read_text()


def test_toy_pages_and_their_script_are_written(toy_site):
    for page in (
        "toy/index.html",
        "toy/tiny-3-2.html",
        "toy/tiny-3-2-sae.html",
        "toy/tiny-neurons.html",
        "toy/double-descent.html",
        "static/toy-frames.js",
        "index.html",
    ):
        assert (toy_site / page).is_file(), page
    sae_page = (toy_site / "toy/tiny-3-2-sae.html").read_text()
    assert "toy-frames-item" in sae_page and "../features/000/0.html" in sae_page
    assert 'href="../toy/index.html"' in sae_page  # the site navigation reaches the toy pages


def test_two_builds_with_the_same_seed_write_the_same_data_and_pages(toy_site, tmp_path):
    again = _build(tmp_path / "again")
    first, second = (json.loads((s / "site.json").read_text()) for s in (toy_site, again))
    assert first["config"].pop("out") != second["config"].pop("out")
    assert first == second
    for page in ("toy/tiny-3-2-sae.html", "toy/index.html", "features/000/records.jsonl.gz"):
        assert (again / page).read_bytes() == (toy_site / page).read_bytes(), page


def test_double_descent_entry_holds_the_sweep_and_three_snapshots(toy_site):
    dd = json.loads((toy_site / "site.json").read_text())["toy"]["double_descent"]
    assert [row["size"] for row in dd["sweep"]] == [3, 10, 400]
    for row in dd["sweep"]:
        assert len(row["replica_test_losses"]) == 2
        assert row["train_loss"] == min(row["replica_train_losses"])
        assert row["test_loss"] in row["replica_test_losses"]
    roles = [snap["role"] for snap in dd["snapshots"]]
    assert roles[0] == "small" and roles[-1] == "large"
    assert dd["peak_size"] in (3, 10, 400)
    small, large = dd["snapshots"][0], dd["snapshots"][-1]
    assert small["n_points"] == 3 and len(small["hidden"]) == 3
    assert large["n_points"] == 400 and len(large["hidden"]) == 300  # capped for the page
    assert len(small["W"]) == 2 and len(small["W"][0]) == 12


def test_double_descent_page_shows_the_curve_and_the_hidden_vectors(toy_site):
    page = (toy_site / "toy/double-descent.html").read_text()
    assert "Test loss against T" in page and "What to look for" in page
    snapshots = [role for role in ("small", "peak", "large") if f'id="{role}"' in page]
    assert snapshots[0] == "small" and snapshots[-1] == "large"
    assert page.count("<svg") == 1 + 2 * len(snapshots)  # the curve, then points and features
    assert "Hidden vectors of the training points" in page
    assert 'href="double-descent.html"' in (toy_site / "toy/index.html").read_text()
