"""SAE training: the loop lowers the loss, keeps its promises, resumes, and saves loadable SAEs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from saesite.config import TrainSaeConfig
from saesite.lm.model import build_model
from saesite.sae.load import load_sae
from saesite.sae.model import SAE, TRAINING_LOG, SaeConfig, init_sae_
from saesite.train.sae import (
    CHECKPOINT,
    fit_sae,
    fold_input_scale_,
    geometric_median,
    reconstruction_metrics,
    train_sae,
)
from tests.conftest import TINY_MODEL

HOOK = "blocks.0.mlp.hook_post"
D_IN, D_SAE = 16, 48
STEP_KEYS = {"step", "loss", "mse", "l1", "l0", "dead_fraction", "lr"}


def sparse_batches(n: int, batch: int = 64, seed: int = 0) -> list[torch.Tensor]:
    """Inputs made of 1-3 of 24 random unit directions with positive magnitudes."""
    gen = torch.Generator().manual_seed(seed)
    dictionary = torch.randn(24, D_IN, generator=gen)
    dictionary /= dictionary.norm(dim=1, keepdim=True)
    out = []
    for _ in range(n):
        codes = torch.rand(batch, 24, generator=gen) * (torch.rand(batch, 24, generator=gen) < 0.08)
        out.append(codes @ dictionary + 0.1)
    return out


def small_cfg(tmp_path: Path, **kwargs) -> TrainSaeConfig:
    options = dict(
        out=str(tmp_path),
        d_sae=D_SAE,
        l1=0.05,
        l1_warmup_steps=5,
        lr=3e-3,
        steps=60,
        batch_size=64,
        log_every=5,
        resample_every=20,
        resample_window=10,
        checkpoint_every=10,
    )
    options.update(kwargs)
    return TrainSaeConfig(**options)


def fresh_sae(architecture: str = "standard", seed: int = 0, k: int | None = None) -> SAE:
    cfg = SaeConfig(
        architecture=architecture, d_in=D_IN, d_sae=D_SAE, k=k, apply_b_dec_to_input=True
    )
    return init_sae_(SAE(cfg), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return build_model({**TINY_MODEL, "n_ctx": 16, "d_vocab": 50})


@pytest.fixture(scope="module")
def tiny_tokens():
    return torch.randint(0, 50, (40, 16), generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory, tiny_model, tiny_tokens) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("sae")
    cfg = TrainSaeConfig(
        out=str(out),
        d_sae=96,
        l1=0.02,
        l1_warmup_steps=0,
        steps=80,
        batch_size=64,
        buffer_batches=2,
        resample_every=30,
        resample_window=20,
        log_every=10,
        lr=3e-3,
    )
    summary = train_sae(tiny_model, tiny_tokens, cfg, model_batch_size=4, model_name="tiny")
    return out, summary


def test_short_training_run_on_a_tiny_model_lowers_the_loss(trained_dir):
    out, summary = trained_dir
    steps = json.loads((out / TRAINING_LOG).read_text())["steps"]
    assert steps[-1]["loss"] < 0.5 * steps[0]["loss"]
    assert summary["explained_variance"] > 0.5


def test_saved_sae_reloads_and_reproduces_the_logged_held_out_metrics(
    trained_dir, tiny_model, tiny_tokens
):
    from saesite.lm.activations import sample_activations

    out, _ = trained_dir
    sae = load_sae(out)
    training_log = json.loads((out / TRAINING_LOG).read_text())
    assert (sae.cfg.hook_name, sae.cfg.model_name, sae.cfg.context_size) == (HOOK, "tiny", 16)
    assert not (out / CHECKPOINT).exists()
    held = sample_activations(tiny_model, tiny_tokens[-2:], HOOK)  # 5% of 40 sequences
    metrics = reconstruction_metrics(sae, held)
    for key in ("explained_variance", "l0", "mse"):
        assert metrics[key] == pytest.approx(training_log["held_out"][key], rel=1e-4), key


def test_training_log_holds_the_documented_keys(trained_dir):
    out, _ = trained_dir
    training_log = json.loads((out / TRAINING_LOG).read_text())
    assert training_log["config"]["d_sae"] == 96
    assert [s["step"] for s in training_log["steps"]] == list(range(10, 81, 10))
    assert all(set(s) == STEP_KEYS for s in training_log["steps"])
    assert [e["step"] for e in training_log["resample_events"]] == [30, 60]
    assert len(training_log["final_density"]) == 96
    assert "decoder_snapshots" not in training_log  # d_in 64 > 3


def test_training_is_deterministic_for_a_seed(tmp_path, trained_dir, tiny_model, tiny_tokens):
    out, _ = trained_dir
    cfg = TrainSaeConfig(
        out=str(tmp_path),
        d_sae=96,
        l1=0.02,
        l1_warmup_steps=0,
        steps=80,
        batch_size=64,
        buffer_batches=2,
        resample_every=30,
        resample_window=20,
        log_every=10,
        lr=3e-3,
    )
    train_sae(tiny_model, tiny_tokens, cfg, model_batch_size=4, model_name="tiny")
    for name in ("sae_weights.safetensors", "cfg.json", TRAINING_LOG):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


@pytest.mark.parametrize("architecture", ["standard", "topk"])
def test_decoder_rows_stay_unit_norm_throughout_training(tmp_path, architecture):
    sae = fresh_sae(architecture, k=4 if architecture == "topk" else None)
    cfg = small_cfg(tmp_path, architecture=architecture, k=4, steps=30, aux_k=8)
    fit_sae(sae, iter(sparse_batches(30)), cfg)
    norms = sae.W_dec.detach().norm(dim=1)
    torch.testing.assert_close(norms, torch.ones(D_SAE))


def test_topk_training_fires_at_most_k_latents(tmp_path):
    sae = fresh_sae("topk", k=3)
    training_log = fit_sae(
        sae,
        iter(sparse_batches(40)),
        small_cfg(tmp_path, architecture="topk", k=3, steps=40, aux_k=6),
    )
    assert all(s["l0"] <= 3 for s in training_log["steps"])
    assert training_log["steps"][-1]["mse"] < training_log["steps"][0]["mse"]


def test_resume_after_an_interruption_matches_an_uninterrupted_run(tmp_path):
    batches = sparse_batches(60)
    straight = fresh_sae()
    cfg = small_cfg(tmp_path / "a")
    expected_log = fit_sae(straight, iter(batches), cfg)

    def interrupted():
        yield from batches[:25]
        raise KeyboardInterrupt

    resumed = fresh_sae()
    cfg_b = small_cfg(tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        fit_sae(resumed, interrupted(), cfg_b, out=tmp_path / "b")
    checkpoint = torch.load(tmp_path / "b" / CHECKPOINT, weights_only=True)
    assert checkpoint["step"] == 20  # the last multiple of checkpoint_every
    resumed = fresh_sae(seed=99)  # weights come from the checkpoint, not from here
    resumed_log = fit_sae(
        resumed, iter(batches[20:]), replace(cfg_b, resume=True), out=tmp_path / "b"
    )
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    assert resumed_log == expected_log
    assert not (tmp_path / "b" / CHECKPOINT).exists()


def test_resampling_revives_features_that_stay_dead_without_it(tmp_path):
    def half_dead() -> SAE:
        sae = fresh_sae()
        with torch.no_grad():
            sae.b_enc[: D_SAE // 2] = -100.0  # these never fire and get no gradient
        return sae

    batches = sparse_batches(60)
    logs = {}
    for method in ("none", "anthropic", "random"):
        cfg = small_cfg(tmp_path / method, resample=method, resample_until=40)
        logs[method] = fit_sae(half_dead(), iter(batches), cfg)
    assert logs["none"]["steps"][-1]["dead_fraction"] >= 0.5
    assert [e["n_resampled"] for e in logs["none"]["resample_events"]] == []
    for method in ("anthropic", "random"):
        assert logs[method]["resample_events"][0]["n_resampled"] >= D_SAE // 2
        assert logs[method]["steps"][-1]["dead_fraction"] < 0.5


def test_toy_inputs_get_at_most_fifty_decoder_snapshots(tmp_path):
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(32, 2, generator=gen) for _ in range(200)]
    sae = SAE(SaeConfig(d_in=2, d_sae=5, apply_b_dec_to_input=True))  # fresh: fit_sae inits it
    training_log = fit_sae(sae, iter(batches), small_cfg(tmp_path, d_sae=5, steps=200))
    snapshots = training_log["decoder_snapshots"]
    assert 2 <= len(snapshots) <= 50
    assert snapshots[0]["step"] == 0 and snapshots[-1]["step"] == 200
    assert len(snapshots[-1]["W_dec"]) == 5 and len(snapshots[-1]["W_dec"][0]) == 2
    assert snapshots[0]["W_dec"] != snapshots[-1]["W_dec"]


def test_geometric_median_ignores_a_far_outlier_that_moves_the_mean():
    gen = torch.Generator().manual_seed(0)
    points = torch.randn(201, 8, generator=gen) * 0.1 + 1.0
    points[0] = 1e4
    median = geometric_median(points)
    assert (median - 1.0).abs().max() < 0.1
    assert (points.mean(0) - 1.0).abs().max() > 10


def test_folding_the_input_scale_gives_the_same_sae_on_raw_inputs():
    sae = fresh_sae()
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.3, generator=torch.Generator().manual_seed(1))
        sae.b_dec.normal_(0, 0.3, generator=torch.Generator().manual_seed(2))
    x = torch.randn(20, D_IN)
    scale = 0.37
    acts_scaled, recon_scaled = sae.encode(x * scale), sae(x * scale)
    fold_input_scale_(sae, scale)
    torch.testing.assert_close(sae.encode(x), acts_scaled / scale)
    torch.testing.assert_close(sae(x), recon_scaled / scale)


def test_learning_rate_ramps_up_again_after_a_resampling(tmp_path):
    sae = fresh_sae()
    with torch.no_grad():
        sae.b_enc[: D_SAE // 2] = -100.0
    cfg = small_cfg(tmp_path, resample_until=20, resample_lr_warmup=10, lr_decay_fraction=0.0)
    training_log = fit_sae(sae, iter(sparse_batches(60)), cfg)
    assert training_log["resample_events"][0] == {"step": 20, "n_resampled": D_SAE // 2}
    lr = {s["step"]: s["lr"] for s in training_log["steps"]}
    assert lr[20] == cfg.lr  # logged before the ramp starts
    assert 0 < lr[25] < cfg.lr
    assert lr[30] == lr[35] == cfg.lr
