"""ARENA's SAE files load into saesite's SAE and encode exactly as the exercises' forward does.

The fixtures are written in the exercises' own layouts (``torch.save(state_dict)``); the reference
is a direct transcription of each exercise's forward, not saesite's code.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from saesite.errors import SaesiteError
from saesite.sae.arena import detect_arena_format
from saesite.sae.source import load_one_sae, load_saes
from saesite.site.records_file import site_records

N_INST, D_IN, D_SAE = 3, 8, 20


def arena_state_dict(tied: bool = False, seed: int = 0) -> dict[str, torch.Tensor]:
    """An ARENA AutoEncoder state dict with an unnormalised decoder and nonzero biases."""
    gen = torch.Generator().manual_seed(seed)
    sd = {
        "W_enc": torch.randn(N_INST, D_IN, D_SAE, generator=gen),
        "b_enc": torch.randn(N_INST, D_SAE, generator=gen) * 0.5,
        "b_dec": torch.randn(N_INST, D_IN, generator=gen),
    }
    if not tied:
        sd["W_dec"] = torch.randn(N_INST, D_SAE, D_IN, generator=gen) * 3.0
    return sd


def arena_forward(sd: dict[str, torch.Tensor], h: torch.Tensor):
    """ARENA AutoEncoder.forward on h [batch, n_instances, d_in]: (acts, h_reconstructed)."""
    W_dec = sd["W_dec"] if "W_dec" in sd else sd["W_enc"].transpose(-1, -2)
    W_dec = W_dec / (W_dec.norm(dim=2, keepdim=True) + 1e-8)  # normalize_and_return_W_dec
    h_cent = h - sd["b_dec"]
    acts = torch.relu(torch.einsum("bni,nih->bnh", h_cent, sd["W_enc"]) + sd["b_enc"])
    h_reconstructed = torch.einsum("bnh,nhi->bni", acts, W_dec) + sd["b_dec"]
    return acts, h_reconstructed


@pytest.mark.parametrize("tied", [False, True])
def test_every_arena_instance_encodes_and_decodes_as_the_exercise_forward(tmp_path, tied):
    sd = arena_state_dict(tied=tied)
    path = tmp_path / "autoencoder.pt"
    torch.save(sd, path)
    h = torch.randn(50, N_INST, D_IN, generator=torch.Generator().manual_seed(1))
    acts, h_hat = arena_forward(sd, h)
    assert (acts > 0).float().mean() > 0.1  # the check compares real activity
    saes = load_saes(path)
    assert len(saes) == N_INST
    for index, sae in enumerate(saes):
        assert sae.cfg.extra_metadata["instance"] == index
        torch.testing.assert_close(sae.encode(h[:, index]), acts[:, index])
        torch.testing.assert_close(sae(h[:, index]), h_hat[:, index])


def test_instance_flag_picks_one_instance_and_toy_sae_names_are_read_from_safetensors(tmp_path):
    sd = arena_state_dict(seed=2)
    path = tmp_path / "toy_sae.safetensors"
    save_file({("_W_dec" if k == "W_dec" else k): v for k, v in sd.items()}, str(path))
    h = torch.randn(30, N_INST, D_IN)
    acts, h_hat = arena_forward(sd, h)
    sae = load_one_sae(path, instance=2)
    torch.testing.assert_close(sae.encode(h[:, 2]), acts[:, 2])
    torch.testing.assert_close(sae(h[:, 2]), h_hat[:, 2])


def write_gelu_1l(folder, name="25", d_mlp=16, dict_mult=4, **cfg_extra):
    """Neel Nanda's 1L SAE layout: NAME.pt (state dict) and NAME_cfg.json."""
    gen = torch.Generator().manual_seed(3)
    d_hidden = d_mlp * dict_mult
    W_dec = torch.randn(d_hidden, d_mlp, generator=gen)
    sd = {
        "W_enc": torch.randn(d_mlp, d_hidden, generator=gen),
        "W_dec": W_dec / W_dec.norm(dim=-1, keepdim=True),
        "b_enc": torch.randn(d_hidden, generator=gen) * 0.5,
        "b_dec": torch.randn(d_mlp, generator=gen),
    }
    torch.save(sd, folder / f"{name}.pt")
    cfg = {"seed": 49, "l1_coeff": 3e-4, "dict_mult": dict_mult, "d_mlp": d_mlp, **cfg_extra}
    cfg.update({"enc_dtype": "fp32", "seq_len": 128, "batch_size": 4096})
    (folder / f"{name}_cfg.json").write_text(json.dumps(cfg))
    return folder / f"{name}.pt", sd


def test_gelu_1l_sae_encodes_as_its_forward_on_the_mlp_hook(tmp_path):
    path, sd = write_gelu_1l(tmp_path)
    x = torch.randn(40, 16)
    x_cent = x - sd["b_dec"]
    acts = torch.relu(x_cent @ sd["W_enc"] + sd["b_enc"])
    x_reconstruct = acts @ sd["W_dec"] + sd["b_dec"]
    for given in (path, tmp_path / "25_cfg.json"):
        assert detect_arena_format(given) == "gelu-1l"
        sae = load_one_sae(given)
        assert (sae.cfg.d_in, sae.cfg.d_sae) == (16, 64)
        assert sae.cfg.hook_name == "blocks.0.mlp.hook_post"
        assert sae.cfg.model_name == "gelu-1l"
        torch.testing.assert_close(sae.encode(x), acts)
        torch.testing.assert_close(sae(x), x_reconstruct)


def test_gelu_1l_config_act_name_sets_the_hook(tmp_path):
    path, _ = write_gelu_1l(tmp_path, act_name="blocks.0.hook_mlp_out")
    assert load_one_sae(path).cfg.hook_name == "blocks.0.hook_mlp_out"


def test_saelens_folders_are_not_taken_for_arena_files(tiny_sae_dir):
    assert detect_arena_format(tiny_sae_dir) is None
    assert len(load_saes(tiny_sae_dir)) == 1


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("instance out of range", "--instance 3: "),
        ("no instance", "holds 3 SAE instances; expected --instance I (0 to 2)"),
        ("instance on gelu-1l", "is a gelu-1l SAE with one instance"),
        ("instance on saelens", "is not an ARENA n_instances state dict"),
        ("2-d state dict", "expected ARENA's AutoEncoder layout [n_instances, d_in, d_sae]"),
        ("wrong b_enc", "tensor 'b_enc' has shape (3, 7); expected (3, 20)"),
        ("not a state dict", "not a torch state dict"),
        ("gelu-1l shape", "tensor 'W_enc' has shape (16, 64); expected (16, 32)"),
    ],
)
def test_bad_arena_inputs_are_one_clear_error(tmp_path, tiny_sae_dir, case, fragment):
    arena = tmp_path / "ae.pt"
    torch.save(arena_state_dict(), arena)
    gelu, _ = write_gelu_1l(tmp_path)
    path, instance = arena, None
    if case == "instance out of range":
        instance = 3
    elif case == "instance on gelu-1l":
        path, instance = gelu, 0
    elif case == "instance on saelens":
        path, instance = tiny_sae_dir, 0
    elif case == "2-d state dict":
        torch.save({k: v[0] for k, v in arena_state_dict().items()}, arena)
    elif case == "wrong b_enc":
        torch.save({**arena_state_dict(), "b_enc": torch.zeros(3, 7)}, arena)
    elif case == "not a state dict":
        arena.write_bytes(b"not a pickle")
    elif case == "gelu-1l shape":
        cfg = json.loads((tmp_path / "25_cfg.json").read_text())
        (tmp_path / "25_cfg.json").write_text(json.dumps({**cfg, "dict_mult": 2}))
        path = gelu
    with pytest.raises(SaesiteError) as err:
        load_one_sae(path, instance=instance)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_an_arena_instance_builds_the_same_feature_pages_as_that_sae_in_saelens_format(
    tmp_path, tiny_model_dir, tiny_tokens_npy
):
    """``--sae FILE --instance 1`` equals the same weights as an SAELens folder."""
    from saesite.cli import main
    from saesite.sae.model import save_sae

    gen = torch.Generator().manual_seed(4)
    sd = {
        "W_enc": torch.randn(2, 64, 48, generator=gen) * 0.3,
        "W_dec": torch.randn(2, 48, 64, generator=gen),
        "b_enc": torch.full((2, 48), -0.1),
        "b_dec": torch.randn(2, 64, generator=gen) * 0.01,
    }
    torch.save(sd, tmp_path / "ae.pt")
    sae = load_one_sae(tmp_path / "ae.pt", instance=1)
    save_sae(sae, tmp_path / "saelens")
    common = ["--model", str(tiny_model_dir), "--dataset", str(tiny_tokens_npy), "--no-ce-loss"]
    common += ["--hook", "blocks.0.mlp.hook_post", "--batch-size", "8", "--top-k", "4"]
    arena_site, saelens_site = tmp_path / "arena-site", tmp_path / "saelens-site"
    sae_args = ["--sae", str(tmp_path / "ae.pt"), "--instance", "1"]
    assert main(["-q", "build", *common, *sae_args, "--out", str(arena_site)]) == 0
    sae_args = ["--sae", str(tmp_path / "saelens")]
    assert main(["-q", "build", *common, *sae_args, "--out", str(saelens_site)]) == 0
    arena_json = json.loads((arena_site / "site.json").read_text())
    saelens_json = json.loads((saelens_site / "site.json").read_text())
    assert arena_json["metrics"] == saelens_json["metrics"]
    assert arena_json["sae"]["d_sae"] == 48
    features = sorted(
        p.relative_to(saelens_site) for p in saelens_site.rglob("features/*/records.jsonl.gz")
    )
    assert len(features) == 1 and len(site_records(saelens_site)) == 48
    for rel in features:
        assert (arena_site / rel).read_bytes() == (saelens_site / rel).read_bytes(), rel
