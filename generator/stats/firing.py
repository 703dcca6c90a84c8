"""Per-feature firing statistics: how often, how strongly, how high.

    count[f]   = #{tokens t : acts[t, f] > 0}
    sum[f]     = Σ_t acts[t, f]                      (float64)
    max[f]     = max_t acts[t, f]                    (0 when the feature never fired)
    density[f] = count[f] / n_tokens
    mean[f]    = sum[f] / count[f]                   (mean over firing tokens; 0 when dead)
    l0         = Σ_f count[f] / n_tokens             (mean number of features firing per token)

Counts are exact integers; the float64 sums are reduced along the tree of token positions
(``stats/reduction.py``), so ``merge`` of disjoint shards equals one pass to the last bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from saesite.stats.batch import TokenBatch
from saesite.stats.reduction import TreeReduction


@dataclass(frozen=True)
class FiringStats:
    n_tokens: int
    count: Int[Tensor, " d_sae"]
    density: Float[Tensor, " d_sae"]
    mean: Float[Tensor, " d_sae"]
    max: Float[Tensor, " d_sae"]
    dead: Bool[Tensor, " d_sae"]
    dense: Bool[Tensor, " d_sae"]
    l0: float


class FiringAccumulator:
    """Counts, float64 sums and maxima of each feature's non-zero activations."""

    def __init__(self, d_sae: int, dense_threshold: float = 0.1, device: str = "cpu"):
        self.d_sae = d_sae
        self.dense_threshold = dense_threshold
        self.n_tokens = 0
        self.count = torch.zeros(d_sae, dtype=torch.int64, device=device)
        self.sums = TreeReduction()
        """Per-batch float64 sums [d_sae]."""
        self.max = torch.zeros(d_sae, dtype=torch.float32, device=device)

    @torch.no_grad()
    def update(self, acts: Float[Tensor, "tok d_sae"], batch: TokenBatch) -> None:
        active = batch.active
        feat = active.feat
        self.n_tokens += batch.n_tokens
        self.count += torch.bincount(feat, minlength=self.d_sae)
        batch_sum = torch.bincount(feat, weights=active.values.double(), minlength=self.d_sae)
        self.sums.add(batch.seq_start, batch_sum, batch.seq_start + batch.token_ids.shape[0])
        torch.maximum(self.max, active.feature_max().float(), out=self.max)

    def merge(self, other: FiringAccumulator) -> None:
        self.n_tokens += other.n_tokens
        self.count += other.count
        self.sums.merge(other.sums)
        torch.maximum(self.max, other.max, out=self.max)

    def finalize(self) -> FiringStats:
        n = max(self.n_tokens, 1)
        density = self.count.double() / n
        total = self.sums.result()
        if total is None:
            total = torch.zeros(self.d_sae, dtype=torch.float64, device=self.count.device)
        mean = torch.where(self.count > 0, total / self.count.clamp_min(1), 0.0)
        count = self.count.cpu()
        return FiringStats(
            n_tokens=self.n_tokens,
            count=count.clone(),
            density=density.cpu(),
            mean=mean.cpu(),
            max=self.max.cpu().clone(),
            dead=count == 0,
            dense=density.cpu() > self.dense_threshold,
            l0=float(self.count.sum().item()) / n,
        )

    def state_dict(self) -> dict[str, Tensor | int | float | str]:
        return {
            "d_sae": self.d_sae,
            "dense_threshold": self.dense_threshold,
            "n_tokens": self.n_tokens,
            "count": self.count,
            "max": self.max,
            **self.sums.state_dict("sums"),
        }

    @classmethod
    def from_state_dict(cls, state: dict, device: str = "cpu") -> FiringAccumulator:
        acc = cls(state["d_sae"], state["dense_threshold"], device=device)
        acc.n_tokens = state["n_tokens"]
        acc.count, acc.max = state["count"].to(device), state["max"].to(device)
        acc.sums.load_state_dict(state, "sums", device)
        return acc
