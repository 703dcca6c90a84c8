"""SAELens is the loader of record: every release format loads through it, encodes as it does,
and a build's metrics equal SAELens' own on the same tokens (offline, from a laid-out cache)."""

from __future__ import annotations

import json
import logging
import warnings

import numpy as np
import pytest
import torch

from saesite.errors import SaesiteError
from saesite.sae.load import load_sae
from tests.fixtures.hf_cache import RELEASES

sae_lens = pytest.importorskip("sae_lens")

GPT2_RELEASES = [name for name in RELEASES if name[0].startswith("gpt2")]


def lens_sae(release: str, sae_id: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sae_lens.SAE.from_pretrained(release, sae_id, device="cpu")


@pytest.mark.parametrize(("release", "sae_id"), list(RELEASES))
def test_every_release_format_encodes_and_reconstructs_exactly_as_saelens(
    offline_hf, release, sae_id
):
    theirs = lens_sae(release, sae_id)
    ours = load_sae(f"{release}/{sae_id}")
    x = torch.randn(64, ours.cfg.d_in, generator=torch.Generator().manual_seed(0)) * 2 + 0.5
    with torch.no_grad():
        expected, got = theirs.encode(x), ours.encode(x)
        assert torch.equal(expected != 0, got != 0)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-4, rtol=1e-4)
    assert ours.cfg.hook_name == theirs.cfg.metadata.hook_name
    assert int((got != 0).sum()) > 0


def test_older_config_gets_saelens_defaults_not_saesites(offline_hf):
    sae = load_sae("gpt2-small-res-jb/blocks.0.hook_resid_pre")
    assert sae.cfg.apply_b_dec_to_input  # missing key: SAELens' default is true
    assert sae.cfg.hook_name == "blocks.0.hook_resid_pre"  # from hook_point
    assert (sae.cfg.model_name, sae.cfg.context_size) == ("gpt2-small", 128)


def test_topk_from_activation_fn_str_and_layer_norm_inputs_are_honoured(offline_hf):
    sae = load_sae("gpt2-small-resid-post-v5-32k/blocks.0.hook_resid_post")
    assert (sae.cfg.architecture, sae.cfg.k) == ("topk", 8)
    assert sae.cfg.normalize_activations == "layer_norm"
    acts = sae.encode(torch.randn(20, sae.cfg.d_in) * 5 + 3)
    assert int((acts != 0).sum(-1).max()) <= 8


def test_expected_average_scaling_factor_of_the_registry_is_folded_in(offline_hf):
    from sae_lens.loading.pretrained_saes_directory import get_norm_scaling_factor

    factor = get_norm_scaling_factor("gpt2-small-mlp-tm", "blocks.0.hook_mlp_out")
    sae = load_sae("gpt2-small-mlp-tm/blocks.0.hook_mlp_out")
    from safetensors.torch import load_file

    raw = next(offline_hf.glob("hub/models--tommmcgrath*/snapshots/*/*/sae_weights.safetensors"))
    torch.testing.assert_close(sae.W_enc, load_file(str(raw))["W_enc"] * factor)


def test_hub_path_names_the_same_sae_as_its_release(offline_hf):
    by_release = load_sae("gpt2-small-res-jb/blocks.0.hook_resid_pre")
    by_path = load_sae("jbloom/GPT2-Small-SAEs-Reformatted/blocks.0.hook_resid_pre")
    assert by_path.cfg == by_release.cfg
    assert torch.equal(by_path.W_enc, by_release.W_enc)


def test_unknown_sae_id_is_one_line_with_close_ids(offline_hf):
    with pytest.raises(SaesiteError, match="blocks.7.hook_resid_pre") as err:
        load_sae("gpt2-small-res-jb/blocks.7.hook_resid_prex")
    assert "\n" not in str(err.value)


def test_a_release_missing_from_the_offline_cache_says_how_offline_works(offline_hf):
    with pytest.raises(SaesiteError, match="HF_HUB_OFFLINE=1") as err:
        load_sae("gpt2-small-res-jb/blocks.5.hook_resid_pre")
    assert "\n" not in str(err.value)


def test_without_saelens_release_names_ask_for_the_extra(offline_hf):
    with pytest.raises(SaesiteError, match=r"pip install saesite\[saelens\]"):
        load_sae("gpt2-small-res-jb/blocks.0.hook_resid_pre", use_sae_lens=False)


def test_constant_norm_rescale_and_decoder_norm_rescaling_match_saelens():
    from sae_lens import TopKSAE, TopKSAEConfig

    from saesite.sae.sae_lens import from_sae_lens

    cfg = TopKSAEConfig(
        d_in=24,
        d_sae=40,
        k=6,
        normalize_activations="constant_norm_rescale",
        rescale_acts_by_decoder_norm=True,
    )
    theirs = TopKSAE(cfg)
    with torch.no_grad():
        theirs.W_dec.mul_(torch.rand(40, 1) + 0.5)
        theirs.b_enc.normal_()
        theirs.b_dec.normal_()
    ours = from_sae_lens(theirs)
    x = torch.randn(30, 24) * 4
    with torch.no_grad():
        torch.testing.assert_close(ours.encode(x), theirs.encode(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-4, rtol=1e-4)


def test_unknown_config_keys_are_named_in_a_warning(tmp_path, caplog):
    from saesite.sae.model import SAE, SaeConfig, init_sae_, save_sae

    save_sae(init_sae_(SAE(SaeConfig(d_in=8, d_sae=16, hook_name="h"))), tmp_path)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    (tmp_path / "cfg.json").write_text(json.dumps({**cfg, "mystery_knob": 3}))
    with caplog.at_level(logging.WARNING):
        load_sae(tmp_path, use_sae_lens=False)
    assert "mystery_knob" in caplog.text


def test_saved_sae_is_read_back_completely_by_saelens(tmp_path):
    from saesite.sae.model import SAE, SaeConfig, init_sae_, save_sae

    cfg = SaeConfig(
        d_in=8, d_sae=16, hook_name="blocks.0.hook_resid_pre", model_name="tiny", context_size=32
    )
    save_sae(init_sae_(SAE(cfg)), tmp_path)
    theirs = sae_lens.SAE.load_from_disk(str(tmp_path))
    meta = theirs.cfg.metadata
    assert (meta.hook_name, meta.model_name, meta.context_size) == (
        "blocks.0.hook_resid_pre",
        "tiny",
        32,
    )
    assert meta.sae_lens_version
    assert theirs.cfg.apply_b_dec_to_input is False


def saelens_metrics(model, lens, tokens: torch.Tensor, hook: str, ignore: list[int]) -> dict:
    """L0 and explained variance computed by SAELens' own SAE and ExplainedVarianceCalculator,
    leaving out the special tokens as run_evals does."""
    from sae_lens.evals import ExplainedVarianceCalculator

    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=hook)
        x = cache[hook].flatten(0, 1)
        keep = ~torch.isin(tokens.flatten(), torch.tensor(ignore, dtype=tokens.dtype))
        acts = lens.encode(x)
        x_hat = lens.decode(acts)
    calc = ExplainedVarianceCalculator()
    calc.add_batch(sae_output=x_hat[keep], hidden_acts=x[keep])
    return {
        "l0": (acts[keep] != 0).sum(-1).float().mean().item(),
        "explained_variance": calc.compute(),
        "mse": (x[keep] - x_hat[keep]).pow(2).sum(-1).mean().item(),
    }


@pytest.mark.parametrize(("release", "sae_id"), GPT2_RELEASES)
def test_a_builds_l0_and_explained_variance_equal_saelens_on_the_same_tokens(
    offline_hf, tiny_model_dir, tiny_tokens_npy, tmp_path, release, sae_id
):
    from saesite.config import BuildConfig, DataConfig, RenderConfig, StatsConfig
    from saesite.lm.model import load_model
    from saesite.pipeline import build_site

    out = build_site(
        BuildConfig(
            model=str(tiny_model_dir),
            sae=f"{release}/{sae_id}",
            data=DataConfig(dataset=str(tiny_tokens_npy)),
            stats=StatsConfig(batch_size=8, top_k=2, n_bins=8, n_intervals=2, ce_loss=False),
            render=RenderConfig(out=str(tmp_path / "site"), workers=1),
        )
    )
    metrics = json.loads((out / "site.json").read_text())["metrics"]
    loaded = load_model(str(tiny_model_dir))
    tokens = torch.from_numpy(np.load(tiny_tokens_npy)).long()
    expected = saelens_metrics(
        loaded.model, lens_sae(release, sae_id), tokens, sae_id, metrics_ignored(out)
    )
    assert metrics["l0"] == pytest.approx(expected["l0"], rel=1e-6)
    assert metrics["explained_variance"] == pytest.approx(expected["explained_variance"], rel=1e-5)
    assert metrics["mse"] == pytest.approx(expected["mse"], rel=1e-5)


def metrics_ignored(site) -> list[int]:
    """The token ids the build says it left out of its metrics (site.json)."""
    return json.loads((site / "site.json").read_text())["metrics"].get("excluded_token_ids", [])


def test_a_builds_ce_losses_leave_out_special_tokens_as_saelens_get_recons_loss(
    offline_hf, tiny_model_dir, tiny_tokens_npy, tmp_path
):
    from sae_lens.evals import get_recons_loss
    from sae_lens.training.activation_scaler import ActivationScaler

    from saesite.config import BuildConfig, DataConfig, RenderConfig, StatsConfig
    from saesite.lm.model import load_model
    from saesite.pipeline import build_site

    loaded = load_model(str(tiny_model_dir))
    special = loaded.tokenizer.special_ids()
    tokens = torch.from_numpy(np.load(tiny_tokens_npy)).long()[:8]
    tokens[:, 0] = special[0]  # BOS at every start, and end-of-text inside
    tokens[::3, 9] = special[0]
    np.save(tmp_path / "tokens.npy", tokens.numpy())
    release, sae_id = GPT2_RELEASES[0]
    out = build_site(
        BuildConfig(
            model=str(tiny_model_dir),
            sae=f"{release}/{sae_id}",
            data=DataConfig(dataset=str(tmp_path / "tokens.npy")),
            stats=StatsConfig(batch_size=4, top_k=2, n_bins=8, n_intervals=2, ce_tokens=None),
            render=RenderConfig(out=str(tmp_path / "site"), workers=1),
        )
    )
    metrics = json.loads((out / "site.json").read_text())["metrics"]
    assert metrics["excluded_token_ids"] == special
    lens = lens_sae(release, sae_id)
    losses = get_recons_loss(
        lens, loaded.model, ActivationScaler(), tokens, False, True, ignore_tokens=special
    )
    keep = ~torch.isin(tokens, torch.tensor(special))[:, :-1]  # as run_evals masks them
    assert metrics["ce_loss_tokens"] == int(keep.sum()) < tokens.shape[0] * (tokens.shape[1] - 1)
    for ours, theirs in (
        ("ce_loss_clean", "ce_loss_without_sae"),
        ("ce_loss_spliced", "ce_loss_with_sae"),
        ("ce_loss_zero_ablated", "ce_loss_with_ablation"),
    ):
        assert metrics[ours] == pytest.approx(losses[theirs][keep].mean().item(), rel=1e-5), ours
