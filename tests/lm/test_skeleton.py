"""Cheap checks first: a wrong hook or SAE width is refused from the model's config, before the
weights load (a saesite model folder, and a TransformerLens name from the offline cache)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from saesite.config import DataConfig
from saesite.errors import SaesiteError
from saesite.lm.skeleton import hook_widths, meta_model, skeleton_config
from saesite.pipeline import load
from tests.conftest import make_tiny_sae_dir


@pytest.fixture
def weights_never_load(monkeypatch):
    """Fail the test if a model's weights are read: the folder's safetensors file, or
    TransformerLens' from_pretrained."""
    from transformer_lens import HookedTransformer

    import saesite.lm.model

    def refuse(*args, **kwargs):
        raise AssertionError("the model's weights were loaded")

    monkeypatch.setattr(saesite.lm.model, "load_file", refuse)
    monkeypatch.setattr(HookedTransformer, "from_pretrained", refuse)


def test_hook_widths_from_the_meta_model_equal_the_loaded_models(tiny_model_dir):
    from saesite.lm.model import load_model

    widths = hook_widths(meta_model(skeleton_config(str(tiny_model_dir))))
    model = load_model(str(tiny_model_dir)).model
    seen = {}

    def record(act, hook):
        seen[hook.name] = act[0, 0].numel()

    with torch.no_grad():
        model.run_with_hooks(
            torch.zeros(1, 2, dtype=torch.long),
            fwd_hooks=[(name, record) for name in model.hook_dict],
        )
    assert set(widths) == set(model.hook_dict)
    assert {name: w for name, w in widths.items() if name in seen} == seen
    assert widths["blocks.0.mlp.hook_post"] == 64 and widths["blocks.0.attn.hook_z"] == 32


def test_a_hook_the_model_lacks_is_refused_before_the_weights_load(
    tiny_model_dir, tiny_sae_dir, weights_never_load
):
    with pytest.raises(SaesiteError, match="did you mean 'blocks.0.mlp.hook_post'") as err:
        load(str(tiny_model_dir), tiny_sae_dir, hook="blocks.0.mlp.hook_posst")
    assert "\n" not in str(err.value)


def test_an_sae_of_another_width_is_refused_before_the_weights_load(
    tiny_model_dir, tiny_sae_dir, weights_never_load
):
    with pytest.raises(SaesiteError, match="SAE d_in is 64 but hook 'blocks.0.hook_resid_pre' "):
        load(str(tiny_model_dir), tiny_sae_dir, hook="blocks.0.hook_resid_pre")


def test_an_unreadable_dataset_is_refused_before_the_weights_load(
    tiny_model_dir, tiny_sae_dir, tmp_path, weights_never_load
):
    (tmp_path / "tokens.npy").write_bytes(b"\x93NUMPY garbage")
    for dataset, message in (
        (tmp_path / "missing.npy", "no such file"),
        (tmp_path / "tokens.npy", "cannot be read as .npy"),
        (tmp_path, "folder holds no"),
    ):
        with pytest.raises(SaesiteError, match=message):
            load(str(tiny_model_dir), tiny_sae_dir, data=DataConfig(dataset=str(dataset)))


def test_a_hub_models_hook_and_width_are_checked_from_its_config_alone(
    offline_hf, tmp_path, weights_never_load
):
    # tiny-stories-1M: 2 layers, d_model 16, d_mlp 64 (tests/fixtures/hf_cache.py)
    sae = make_tiny_sae_dir(tmp_path / "sae", d_in=24, hook="blocks.1.hook_resid_post")
    with pytest.raises(SaesiteError, match="did you mean 'blocks.1.hook_resid_post'"):
        load("tiny-stories-1M", sae, hook="blocks.2.hook_resid_post")
    with pytest.raises(SaesiteError, match="SAE d_in is 24 but hook .* has width 16"):
        load("tiny-stories-1M", sae)


def test_a_matching_hub_sae_passes_the_checks_and_loads_the_weights_once(
    offline_hf, tmp_path, monkeypatch
):
    from transformer_lens import HookedTransformer

    calls = []
    original = HookedTransformer.from_pretrained.__func__

    def counted(cls, *args, **kwargs):
        calls.append(args[0])
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(HookedTransformer, "from_pretrained", classmethod(counted))
    sae = make_tiny_sae_dir(tmp_path / "sae", d_in=64, hook="blocks.0.mlp.hook_post")
    np.save(tmp_path / "tokens.npy", np.arange(32).reshape(2, 16))
    loaded = load("tiny-stories-1M", sae, data=DataConfig(dataset=str(tmp_path / "tokens.npy")))
    assert calls == ["tiny-stories-1M"]
    assert loaded.hook == "blocks.0.mlp.hook_post"


def test_the_cli_says_the_bad_hook_in_one_line_and_exits_2(
    tiny_model_dir, tiny_sae_dir, tiny_tokens_npy, tmp_path, capsys, weights_never_load
):
    from saesite.cli import main

    args = ["build", "--model", str(tiny_model_dir), "--sae", str(tiny_sae_dir)]
    args += ["--dataset", str(tiny_tokens_npy), "--hook", "blocks.3.mlp.hook_post"]
    assert main([*args, "--out", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("saesite: error: --hook 'blocks.3.mlp.hook_post'")
    assert "\n" not in err and not (tmp_path / "site").exists()
