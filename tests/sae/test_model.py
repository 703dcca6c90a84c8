"""The SAE encodes exactly as SAELens does and round-trips through SAELens' folder format."""

from __future__ import annotations

import json
import re
import warnings

import pytest
import torch

from saesite.errors import SaesiteError
from saesite.sae.load import load_sae
from saesite.sae.model import SAE, SaeConfig, init_sae_, save_sae


def random_sae(architecture: str, apply_b_dec_to_input: bool = True, seed: int = 0) -> SAE:
    gen = torch.Generator().manual_seed(seed)
    cfg = SaeConfig(
        architecture=architecture,
        d_in=16,
        d_sae=40,
        k=5 if architecture == "topk" else None,
        hook_name="blocks.0.mlp.hook_post",
        apply_b_dec_to_input=apply_b_dec_to_input,
    )
    sae = init_sae_(SAE(cfg), generator=gen)
    with torch.no_grad():
        sae.b_enc.normal_(generator=gen)
        sae.b_dec.normal_(generator=gen)
        if architecture == "jumprelu":
            sae.threshold.uniform_(0, 0.5, generator=gen)
    return sae


@pytest.mark.parametrize("architecture", ["standard", "topk", "jumprelu"])
def test_encode_follows_the_documented_equations(architecture):
    sae = random_sae(architecture)
    x = torch.randn(9, 16)
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    if architecture == "standard":
        expected = pre.relu()
    elif architecture == "jumprelu":
        expected = pre.relu() * (pre > sae.threshold)
    else:
        top = pre.topk(5, dim=-1)
        expected = torch.zeros_like(pre).scatter(-1, top.indices, top.values.relu())
    torch.testing.assert_close(sae.encode(x), expected)
    torch.testing.assert_close(sae(x), expected @ sae.W_dec + sae.b_dec)


@pytest.mark.parametrize("architecture", ["standard", "topk", "jumprelu"])
def test_encode_without_autograd_gives_the_same_bits_and_leaves_its_input_alone(architecture):
    sae = random_sae(architecture)
    x = torch.randn(9, 16)
    before = x.clone()
    with_grad = sae.encode(x)
    with torch.no_grad():
        assert torch.equal(sae.encode(x), with_grad.detach())
    assert torch.equal(x, before)


def test_topk_keeps_at_most_k_active_latents_per_token():
    sae = random_sae("topk")
    acts = sae.encode(torch.randn(50, 16))
    assert int((acts > 0).sum(-1).max()) <= 5


@pytest.mark.parametrize("architecture", ["standard", "topk", "jumprelu"])
def test_saved_sae_reloads_and_encodes_identically(tmp_path, architecture):
    sae = random_sae(architecture)
    save_sae(sae, tmp_path)
    loaded = load_sae(tmp_path)
    x = torch.randn(11, 16)
    assert torch.equal(loaded.encode(x), sae.encode(x))
    assert loaded.cfg.hook_name == "blocks.0.mlp.hook_post"


@pytest.mark.parametrize("architecture", ["standard", "topk", "jumprelu"])
def test_saesite_and_saelens_load_each_others_folders_and_agree(tmp_path, architecture):
    sae_lens = pytest.importorskip("sae_lens")
    sae = random_sae(architecture)
    save_sae(sae, tmp_path / "ours")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = sae_lens.SAE.load_from_disk(str(tmp_path / "ours"), device="cpu")
    x = torch.randn(13, 16)
    with torch.no_grad():
        torch.testing.assert_close(theirs.encode(x), sae.encode(x), atol=1e-5, rtol=1e-5)
        theirs.save_model(str(tmp_path / "theirs"))
    back = load_sae(tmp_path / "theirs")
    torch.testing.assert_close(back.encode(x), sae.encode(x), atol=1e-5, rtol=1e-5)


def test_old_flat_saelens_cfg_layout_is_read(tmp_path):
    sae = random_sae("standard")
    save_sae(sae, tmp_path)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    flat = {**{k: v for k, v in cfg.items() if k != "metadata"}, **cfg["metadata"]}
    flat.pop("sae_lens_version")  # a pre-6 config
    (tmp_path / "cfg.json").write_text(json.dumps(flat))
    assert load_sae(tmp_path).cfg.hook_name == "blocks.0.mlp.hook_post"


def test_fp16_weights_load_as_float32(tmp_path):
    sae = random_sae("standard")
    save_sae(sae, tmp_path, dtype=torch.float16)
    loaded = load_sae(tmp_path)
    assert loaded.W_enc.dtype == torch.float32
    torch.testing.assert_close(loaded.W_enc, sae.W_enc, atol=1e-2, rtol=1e-2)


def _break(tmp_path, edit) -> None:
    save_sae(random_sae("standard"), tmp_path)
    edit(tmp_path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: (p / "cfg.json").unlink(), "cfg.json: missing"),
        (lambda p: (p / "cfg.json").write_text("{not json"), "not valid JSON"),
        (
            lambda p: (p / "cfg.json").write_text('{"d_in": 16, "metadata": {}}'),
            "missing key(s) d_sae",
        ),
        (
            lambda p: (p / "cfg.json").write_text(
                '{"d_in": 16, "d_sae": 40, "architecture": "gated", "metadata": {}}'
            ),
            "'gated' is not supported",
        ),
        (
            lambda p: (p / "cfg.json").write_text('{"d_in": 16, "d_sae": 40, "hook_point": "x"}'),
            "read through SAELens: pip install saesite[saelens]",
        ),
        (
            lambda p: (p / "sae_weights.safetensors").write_bytes(
                (p / "sae_weights.safetensors").read_bytes()[:100]
            ),
            "cannot be read as safetensors",
        ),
        (
            lambda p: (p / "cfg.json").write_text('{"d_in": 16, "d_sae": 41, "metadata": {}}'),
            "has shape",
        ),
    ],
)
def test_broken_sae_folders_give_one_clear_error_without_saelens(tmp_path, edit, message):
    _break(tmp_path, edit)
    with pytest.raises(SaesiteError, match=re.escape(message)):
        load_sae(tmp_path, use_sae_lens=False)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: (p / "cfg.json").write_text('{"d_in": 16}'), "SAELens cannot load it"),
        (
            lambda p: (p / "sae_weights.safetensors").write_bytes(b"12345678"),
            "cannot be read as safetensors",
        ),
        (lambda p: (p / "cfg.json").write_text('{"d_in": 16, "d_sae": 41}'), "has shape"),
    ],
)
def test_broken_sae_folders_give_one_clear_error_through_saelens(tmp_path, edit, message):
    pytest.importorskip("sae_lens")
    _break(tmp_path, edit)
    with pytest.raises(SaesiteError, match=message) as err:
        load_sae(tmp_path, use_sae_lens=True)
    assert "\n" not in str(err.value)


def test_nan_in_sae_weights_is_reported_with_a_count(tmp_path):
    sae = random_sae("standard")
    with torch.no_grad():
        sae.W_dec[3, :2] = float("nan")
    save_sae(sae, tmp_path)
    with pytest.raises(SaesiteError, match="'W_dec' has 2 NaN/Inf"):
        load_sae(tmp_path)


def test_integer_weights_are_refused_with_the_dtype_named(tmp_path):
    from safetensors.torch import load_file, save_file

    save_sae(random_sae("standard"), tmp_path)
    tensors = load_file(str(tmp_path / "sae_weights.safetensors"))
    tensors["b_enc"] = tensors["b_enc"].to(torch.int32)
    save_file(tensors, str(tmp_path / "sae_weights.safetensors"))
    with pytest.raises(SaesiteError, match="dtype I32"):
        load_sae(tmp_path)
