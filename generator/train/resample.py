"""Dead-feature resampling (Anthropic, *Towards Monosemanticity*, 2023) and its random variant.

A feature that has not fired for a long window of tokens gets no gradient through its ReLU and
never recovers on its own. Resampling gives it a new direction where the SAE does worst:

    loss_i  = ||x_i - x_hat_i||^2                    per input
    p_i     ∝ loss_i^2                                (the square of the loss, as in the paper)
    d_f     = (x_i - b_dec) / ||x_i - b_dec||         for a dead f and a sampled input i
    W_dec[f]    = d_f
    W_enc[:, f] = d_f · 0.2 · mean_{alive g} ||W_enc[:, g]||
    b_enc[f]    = 0

and zeroes Adam's moments (``exp_avg``, ``exp_avg_sq``) for exactly those rows, columns and
entries, so stale moments of the dead feature do not push the new one. Everything else, alive
features' weights and moments and ``b_dec``, is left bit-identical. The ``random`` variant draws
``d_f`` uniformly on the unit sphere instead (same encoder scale), to show what the choice of
direction is worth.
"""

from __future__ import annotations

from typing import Literal

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from saesite.sae.model import SAE

ENCODER_SCALE = 0.2
"""New encoder columns get this fraction of the mean alive encoder norm."""
ADAM_MOMENTS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")


def reset_optimizer_state_(
    optimizer: torch.optim.Optimizer, param: Tensor, index: Int[Tensor, " n"], dim: int
) -> None:
    """Zero the optimiser moments of ``param`` at ``index`` along ``dim`` (nothing else)."""
    state = optimizer.state.get(param)
    if not state:
        return
    for key in ADAM_MOMENTS:
        moment = state.get(key)
        if isinstance(moment, Tensor) and moment.shape == param.shape:
            moment.index_fill_(dim, index.to(moment.device), 0.0)


@torch.no_grad()
def resample_dead_(
    sae: SAE,
    optimizer: torch.optim.Optimizer,
    dead: Bool[Tensor, " d_sae"],
    inputs: Float[Tensor, "n d_in"],
    *,
    method: Literal["anthropic", "random"],
    generator: torch.Generator,
) -> int:
    """Give every dead feature a new direction; return how many were resampled.

    ``anthropic`` samples inputs (without replacement while there are enough) with probability
    proportional to the square of their reconstruction loss; ``random`` draws directions at
    random. See the module docstring for the equations.
    """
    index = dead.nonzero().squeeze(1)
    n_dead = int(index.numel())
    if n_dead == 0:
        return 0
    d_in = sae.cfg.d_in
    device = sae.W_dec.device
    if method == "anthropic":
        inputs = inputs.to(device)
        loss = (sae(inputs) - inputs).pow(2).sum(-1)
        weights = loss.square().double()
        if not torch.isfinite(weights).all() or weights.sum() <= 0:
            weights = torch.ones_like(weights)
        replacement = n_dead > int((weights > 0).sum())
        picked = torch.multinomial(
            weights.cpu(), n_dead, replacement=replacement, generator=generator
        )
        directions = inputs[picked.to(device)] - sae.b_dec
    elif method == "random":
        directions = torch.randn(n_dead, d_in, generator=generator).to(device)
    else:
        raise ValueError(f"resampling method is {method!r}; expected 'anthropic' or 'random'")
    directions = directions / directions.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    alive = ~dead
    enc_norm = sae.W_enc[:, alive].norm(dim=0).mean() if bool(alive.any()) else 1.0
    sae.W_dec[index] = directions
    sae.W_enc[:, index] = directions.T * (ENCODER_SCALE * enc_norm)
    sae.b_enc[index] = 0.0
    reset_optimizer_state_(optimizer, sae.W_dec, index, dim=0)
    reset_optimizer_state_(optimizer, sae.W_enc, index, dim=1)
    reset_optimizer_state_(optimizer, sae.b_enc, index, dim=0)
    return n_dead
