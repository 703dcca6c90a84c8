"""Dead-feature resampling touches exactly the dead features, weights and Adam state alike."""

from __future__ import annotations

import pytest
import torch

from saesite.sae.model import SAE, SaeConfig, init_sae_
from saesite.train.resample import ENCODER_SCALE, resample_dead_

D_IN, D_SAE = 12, 30


def trained_sae_and_adam(seed: int = 0) -> tuple[SAE, torch.optim.Adam, torch.Tensor]:
    """A random SAE after a few Adam steps, so every parameter has non-zero moments."""
    gen = torch.Generator().manual_seed(seed)
    sae = init_sae_(SAE(SaeConfig(d_in=D_IN, d_sae=D_SAE, apply_b_dec_to_input=True)), gen)
    with torch.no_grad():
        sae.b_enc.normal_(0.0, 0.1, generator=gen)
        sae.b_dec.normal_(0.0, 0.1, generator=gen)
    optimizer = torch.optim.Adam(sae.parameters(), lr=1e-2)
    inputs = torch.randn(64, D_IN, generator=gen)
    for _ in range(3):
        loss = (sae(inputs) - inputs).pow(2).sum(-1).mean() + 0.1 * sae.encode(inputs).sum(
            -1
        ).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return sae, optimizer, inputs


def dead_mask(seed: int = 1) -> torch.Tensor:
    dead = torch.zeros(D_SAE, dtype=torch.bool)
    dead[torch.randperm(D_SAE, generator=torch.Generator().manual_seed(seed))[:9]] = True
    return dead


# (parameter name, dimension along which features are indexed)
FEATURE_DIM = {"W_enc": 1, "W_dec": 0, "b_enc": 0}


@pytest.mark.parametrize("method", ["anthropic", "random"])
def test_resampling_leaves_alive_features_and_b_dec_bit_identical(method):
    sae, optimizer, inputs = trained_sae_and_adam()
    dead = dead_mask()
    alive = (~dead).nonzero().squeeze(1)
    before = {name: p.detach().clone() for name, p in sae.named_parameters()}
    state_before = {
        name: {k: v.clone() for k, v in optimizer.state[p].items()}
        for name, p in sae.named_parameters()
    }
    n = resample_dead_(
        sae, optimizer, dead, inputs, method=method, generator=torch.Generator().manual_seed(0)
    )
    assert n == int(dead.sum())
    params = dict(sae.named_parameters())
    assert torch.equal(params["b_dec"], before["b_dec"])
    for key, value in optimizer.state[params["b_dec"]].items():
        assert torch.equal(value, state_before["b_dec"][key])
    for name, dim in FEATURE_DIM.items():
        assert torch.equal(
            params[name].index_select(dim, alive), before[name].index_select(dim, alive)
        ), name
        for key in ("exp_avg", "exp_avg_sq"):
            moment = optimizer.state[params[name]][key]
            assert torch.equal(
                moment.index_select(dim, alive), state_before[name][key].index_select(dim, alive)
            ), (name, key)


@pytest.mark.parametrize("method", ["anthropic", "random"])
def test_resampling_resets_the_optimizer_moments_of_dead_features(method):
    sae, optimizer, inputs = trained_sae_and_adam()
    dead = dead_mask()
    index = dead.nonzero().squeeze(1)
    params = dict(sae.named_parameters())
    for name, dim in FEATURE_DIM.items():  # the fixture really has moments to reset
        assert optimizer.state[params[name]]["exp_avg_sq"].index_select(dim, index).abs().sum() > 0
    resample_dead_(
        sae, optimizer, dead, inputs, method=method, generator=torch.Generator().manual_seed(0)
    )
    for name, dim in FEATURE_DIM.items():
        for key in ("exp_avg", "exp_avg_sq"):
            moment = optimizer.state[params[name]][key].index_select(dim, index)
            assert torch.count_nonzero(moment) == 0, (name, key)


@pytest.mark.parametrize("method", ["anthropic", "random"])
def test_resampled_features_get_unit_decoder_rows_scaled_encoder_columns_and_zero_bias(method):
    sae, optimizer, inputs = trained_sae_and_adam()
    dead = dead_mask()
    alive_norm = sae.W_enc[:, ~dead].norm(dim=0).mean().item()
    old_dec = sae.W_dec.detach().clone()
    resample_dead_(
        sae, optimizer, dead, inputs, method=method, generator=torch.Generator().manual_seed(0)
    )
    W_dec, W_enc = sae.W_dec.detach()[dead], sae.W_enc.detach()[:, dead]
    torch.testing.assert_close(W_dec.norm(dim=1), torch.ones(int(dead.sum())))
    torch.testing.assert_close(W_enc.T, W_dec * ENCODER_SCALE * alive_norm)
    assert torch.count_nonzero(sae.b_enc.detach()[dead]) == 0
    assert not torch.equal(W_dec, old_dec[dead])


def test_anthropic_directions_are_normalised_inputs_minus_b_dec():
    sae, optimizer, inputs = trained_sae_and_adam()
    dead = dead_mask()
    resample_dead_(
        sae, optimizer, dead, inputs, method="anthropic", generator=torch.Generator().manual_seed(0)
    )
    candidates = inputs - sae.b_dec.detach()
    candidates = candidates / candidates.norm(dim=1, keepdim=True)
    cosines = sae.W_dec.detach()[dead] @ candidates.T
    torch.testing.assert_close(cosines.max(dim=1).values, torch.ones(int(dead.sum())))


def test_anthropic_resampling_picks_inputs_in_proportion_to_squared_loss():
    sae, optimizer, _ = trained_sae_and_adam()
    with torch.no_grad():
        sae.W_enc.zero_()  # no feature fires: x_hat = b_dec, loss_i = ||x_i - b_dec||^2
        sae.b_enc.fill_(-1.0)
    gen = torch.Generator().manual_seed(3)
    inputs = sae.b_dec.detach() + 0.01 * torch.randn(200, D_IN, generator=gen)
    inputs[137] = sae.b_dec.detach() + torch.randn(D_IN, generator=gen)  # loss ~1e4 x the rest
    dead = torch.zeros(D_SAE, dtype=torch.bool)
    dead[5] = True
    resample_dead_(sae, optimizer, dead, inputs, method="anthropic", generator=gen)
    expected = inputs[137] - sae.b_dec.detach()
    torch.testing.assert_close(sae.W_dec.detach()[5], expected / expected.norm())


def test_resampling_with_no_dead_features_changes_nothing():
    sae, optimizer, inputs = trained_sae_and_adam()
    before = [p.detach().clone() for p in sae.parameters()]
    dead = torch.zeros(D_SAE, dtype=torch.bool)
    n = resample_dead_(
        sae, optimizer, dead, inputs, method="anthropic", generator=torch.Generator().manual_seed(0)
    )
    assert n == 0
    assert all(torch.equal(a, b) for a, b in zip(before, sae.parameters()))
