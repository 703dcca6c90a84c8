"""The training objective: learning-rate and L1 schedules, the unit-norm decoder constraint,
the TopK auxiliary loss, and when to resample.

The schedules take the step counted from 0; ``resample_steps`` counts steps completed.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from saesite.config import TrainSaeConfig
from saesite.sae.model import SAE

AUX_K_COEF = 1 / 32
"""Weight of the TopK auxiliary loss (OpenAI's alpha)."""


def lr_at(step: int, cfg: TrainSaeConfig, last_resample: int | None = None) -> float:
    """Constant, then linear decay to 0 over the last ``lr_decay_fraction`` of the steps; after a
    resampling (``last_resample`` steps completed) it ramps back up over ``resample_lr_warmup``.
    """
    decay = int(cfg.steps * cfg.lr_decay_fraction)
    lr = cfg.lr
    if decay > 0 and step >= cfg.steps - decay:
        lr = cfg.lr * (cfg.steps - step) / decay
    if last_resample is not None and cfg.resample_lr_warmup > 0:
        lr *= min(1.0, (step - last_resample + 1) / cfg.resample_lr_warmup)
    return lr


def l1_at(step: int, cfg: TrainSaeConfig) -> float:
    """The L1 coefficient, ramped linearly from 0 over ``l1_warmup_steps``."""
    if cfg.l1_warmup_steps <= 0:
        return cfg.l1
    return cfg.l1 * min(1.0, (step + 1) / cfg.l1_warmup_steps)


def resample_steps(cfg: TrainSaeConfig) -> set[int]:
    """Steps (counted as steps completed) after which dead features are resampled."""
    if cfg.resample == "none" or cfg.architecture != "standard":
        return set()
    until = cfg.resample_until if cfg.resample_until is not None else int(0.8 * cfg.steps)
    return set(range(cfg.resample_every, min(until, cfg.steps) + 1, cfg.resample_every))


@torch.no_grad()
def remove_parallel_grad_(sae: SAE) -> None:
    """Drop the part of each decoder-row gradient along the row (keeps rows on the sphere)."""
    if sae.W_dec.grad is None:
        return
    rows = sae.W_dec / sae.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
    sae.W_dec.grad.sub_((sae.W_dec.grad * rows).sum(1, keepdim=True) * rows)


def aux_k_loss(
    sae: SAE,
    x: Float[Tensor, "batch d_in"],
    x_hat: Float[Tensor, "batch d_in"],
    pre: Float[Tensor, "batch d_sae"],
    dead: Tensor,
    aux_k: int,
) -> Tensor:
    """Normalised MSE of the residual modelled by the top ``aux_k`` dead latents."""
    residual = (x - x_hat).detach()
    k = min(aux_k, int(dead.sum()))
    top = pre.masked_fill(~dead, float("-inf")).topk(k, dim=-1)
    acts = torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))
    residual_hat = acts @ sae.W_dec
    variance = (residual - residual.mean(0)).pow(2).sum(-1).mean().clamp_min(1e-12)
    return (residual_hat - residual).pow(2).sum(-1).mean() / variance
