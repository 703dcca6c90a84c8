"""`saesite build` end to end on a real tiny model: the JSON agrees with brute force over the
full activation tensor; two builds are byte-identical; a build killed at any moment leaves the
previous site intact."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch

from saesite.lm.model import load_model
from saesite.sae.load import load_sae
from tests.conftest import TINY_HOOK


def site_json(site: Path) -> dict:
    return json.loads((site / "site.json").read_text())


@functools.cache
def _records(site: Path) -> list[dict]:
    """The site's records, read once (the module's sites are built once and never edited)."""
    from saesite.site.records_file import site_records

    return site_records(site)


def feature_json(site: Path, entry: dict) -> dict:
    """A feature's record, its examples' tokens taken back from the site's token store."""
    from saesite.site.token_store import ExampleTokens, read_store

    store = ExampleTokens(read_store(site), site_json(site)["token_bytes"])
    return store.attach(_records(site)[entry["index"]])


@pytest.fixture(scope="module")
def brute_force(tiny_model_dir, tiny_sae_dir, tiny_tokens_npy):
    """The full activation tensor [n_seq, seq_len, d_sae], computed directly."""
    loaded = load_model(str(tiny_model_dir))
    sae = load_sae(tiny_sae_dir)
    tokens = torch.from_numpy(np.load(tiny_tokens_npy)).long()
    with torch.no_grad():
        _, cache = loaded.model.run_with_cache(tokens, names_filter=TINY_HOOK)
        acts = sae.encode(cache[TINY_HOOK])
    return loaded, sae, tokens, acts


def test_site_json_lists_every_feature_with_paths_that_exist(tiny_site):
    site = site_json(tiny_site)
    assert site["d_sae"] == len(site["features"]) == 96
    assert site["n_tokens"] == 24 * 32 and site["hook"] == TINY_HOOK
    assert [f["index"] for f in site["features"]] == list(range(96))
    for entry in site["features"]:
        assert (tiny_site / entry["html"]).is_file() and (tiny_site / entry["records"]).is_file()
    assert (tiny_site / "index.html").is_file() and (tiny_site / ".nojekyll").is_file()
    assert site["config"]["stats"]["top_k"] == 5


def test_feature_json_matches_brute_force_over_the_full_activation_tensor(tiny_site, brute_force):
    loaded, sae, tokens, acts = brute_force
    flat = acts.reshape(-1, acts.shape[-1])  # [tok, d_sae]
    site = site_json(tiny_site)
    fired_any = 0
    for entry in site["features"]:
        f = entry["index"]
        record = feature_json(tiny_site, entry)
        column = flat[:, f]
        firing = column > 0
        assert record["density"] == int(firing.sum()) / len(column)
        assert record["dead"] == (not bool(firing.any()))
        assert record["max_activation"] == pytest.approx(column.max().item(), rel=1e-5, abs=1e-7)
        if record["dead"]:
            assert record["top_examples"] == []
            continue
        fired_any += 1
        assert record["mean_activation"] == pytest.approx(column[firing].mean().item(), rel=1e-4)
        # top-k: values and (seq, pos) exact, ties broken by the earlier token
        order = sorted(range(len(column)), key=lambda t: (-column[t].item(), t))
        expected = [t for t in order if column[t] > 0][:5]
        got = [(ex["seq"] * tokens.shape[1] + ex["pos"]) for ex in record["top_examples"]]
        assert got == expected
        for ex in record["top_examples"]:
            assert ex["act"] == pytest.approx(acts[ex["seq"], ex["pos"], f].item(), rel=1e-5)
            window = tokens[ex["seq"], ex["window_start"] : ex["window_start"] + len(ex["tokens"])]
            assert ex.get("token_ids", window.tolist()) == window.tolist()
            assert ex["tokens"] == [loaded.tokenizer.decode_token(t) for t in window.tolist()]
        # histogram counts exact on the record's own edges
        edges = np.array(record["histogram"]["edges"])
        counts, _ = np.histogram(column[firing].numpy(), bins=edges)
        assert counts.tolist() == record["histogram"]["counts"]
    assert fired_any > 10


def test_logit_effect_tokens_match_a_direct_matrix_product(tiny_site, brute_force):
    loaded, sae, _, _ = brute_force
    model = loaded.model
    direction = sae.W_dec @ model.W_out[0]  # [d_sae, d_model]
    direction = direction - direction.mean(-1, keepdim=True)
    effects = (direction * model.ln_final.w) @ model.W_U  # [d_sae, d_vocab]
    site = site_json(tiny_site)
    for entry in site["features"][:20]:
        record = feature_json(tiny_site, entry)
        n = len(record["logit_effects"]["positive"])
        top = torch.topk(effects[entry["index"]], n).indices.tolist()
        assert [e["token_id"] for e in record["logit_effects"]["positive"]] == top
        assert [e["token"] for e in record["logit_effects"]["positive"]] == [
            loaded.tokenizer.decode_token(t) for t in top
        ]


def test_global_metrics_are_all_present_and_sane(tiny_site):
    metrics = site_json(tiny_site)["metrics"]
    for key in (
        "mse",
        "explained_variance",
        "l0",
        "dead_count",
        "dense_count",
        "ce_loss_clean",
        "ce_loss_spliced",
        "ce_loss_zero_ablated",
        "ce_loss_recovered",
    ):
        assert key in metrics
    assert metrics["l0"] > 0 and metrics["mse"] > 0


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def build_command(model, sae, tokens, out) -> list[str]:
    return [
        sys.executable,
        "-m",
        "saesite",
        "-q",
        "build",
        "--model",
        str(model),
        "--sae",
        str(sae),
        "--dataset",
        str(tokens),
        "--out",
        str(out),
        "--batch-size",
        "8",
        "--top-k",
        "5",
        "--n-bins",
        "16",
        "--n-intervals",
        "4",
    ]


def test_two_builds_with_the_same_inputs_are_byte_identical(
    tmp_path, tiny_model_dir, tiny_sae_dir, tiny_tokens_npy
):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("a", "b"):
        subprocess.run(
            build_command(tiny_model_dir, tiny_sae_dir, tiny_tokens_npy, tmp_path / name),
            check=True,
            env=env,
        )
    a, b = tree_digest(tmp_path / "a"), tree_digest(tmp_path / "b")
    assert len(a) > 100
    assert a == b


def test_the_model_sae_and_accumulators_are_gone_before_the_pages_render(
    tmp_path, monkeypatch, tiny_model_dir, tiny_sae_dir, tiny_tokens_npy
):
    # page workers are forked: whatever the building process still holds, each of them holds
    from saesite import pipeline
    from saesite.config import BuildConfig, DataConfig, RenderConfig, StatsConfig

    refs: dict[str, weakref.ref] = {}
    alive_at_render: dict[str, bool] = {}
    load_build, compute, render = pipeline.load_build, pipeline.compute, pipeline.render

    def tracked_load(config):
        loaded = load_build(config)
        refs.update(model=weakref.ref(loaded.model), sae=weakref.ref(loaded.sae))
        return loaded

    def tracked_compute(*args):
        stats = compute(*args)
        refs["accumulators"] = weakref.ref(stats)
        return stats

    def checked_render(*args, **kwargs):
        alive_at_render.update({name: ref() is not None for name, ref in refs.items()})
        return render(*args, **kwargs)

    monkeypatch.setattr(pipeline, "load_build", tracked_load)
    monkeypatch.setattr(pipeline, "compute", tracked_compute)
    monkeypatch.setattr(pipeline, "render", checked_render)
    site = pipeline.build_site(
        BuildConfig(
            model=str(tiny_model_dir),
            sae=str(tiny_sae_dir),
            data=DataConfig(dataset=str(tiny_tokens_npy)),
            stats=StatsConfig(batch_size=8, top_k=5, n_bins=16, n_intervals=4),
            render=RenderConfig(out=str(tmp_path / "site")),
        )
    )
    assert (site / "site.json").is_file()
    assert alive_at_render == {"model": False, "sae": False, "accumulators": False}


def test_records_and_pages_built_by_three_workers_are_the_bytes_of_one_process(
    tmp_path, tiny_model_dir, tiny_sae_dir, tiny_tokens_npy
):
    # records built in this process, pages rendered from their JSON by forked workers
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name, workers in (("one", "1"), ("three", "3")):
        command = build_command(tiny_model_dir, tiny_sae_dir, tiny_tokens_npy, tmp_path / name)
        subprocess.run([*command, "--workers", workers], check=True, env=env)
    assert tree_digest(tmp_path / "three") == tree_digest(tmp_path / "one")


@pytest.mark.slow
def test_a_build_killed_at_random_moments_leaves_the_previous_site_intact(
    tmp_path, tiny_model_dir, tiny_sae_dir, tiny_tokens_npy
):
    out = tmp_path / "site"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = build_command(tiny_model_dir, tiny_sae_dir, tiny_tokens_npy, out)
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    full = time.perf_counter() - started
    before = tree_digest(out)
    rng = random.Random(0)
    for _ in range(4):
        proc = subprocess.Popen(cmd, env=env)
        time.sleep(rng.uniform(0.3, full))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert tree_digest(out) == before  # previous site intact, whatever the moment
    subprocess.run(cmd, check=True, env=env)
    assert tree_digest(out) == before  # same inputs: same bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # no temporary debris
