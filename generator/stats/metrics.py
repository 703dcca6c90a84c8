"""Global SAE metrics accumulated over the same tokens as the feature statistics.

Reconstruction, over all tokens t (float64 sums, so shards merge exactly):
    mse                = Σ_t ‖x_t − x̂_t‖² / n_tokens
    explained_variance = 1 − Σ_t ‖x_t − x̂_t‖² / Σ_t ‖x_t − x̄‖²
(the spread Σ_t ‖x_t − x̄‖² is merged batch by batch, see ``ReconstructionAccumulator``).
Language-model loss, mean next-token cross-entropy (nats) over the same predictions:
    ce_loss_recovered  = (zero − spliced) / (zero − clean)
where *spliced* replaces the hook's activation by the SAE reconstruction and *zero* by zeros.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor


class ReconstructionAccumulator:
    """Squared error and the activations' spread, merged across batches in float64.

    Per batch, the squared error and ``M2_b = Σ‖x − x̄_b‖²`` (centred on the batch mean, so no
    cancellation) are float32 dot products; batches combine exactly in float64 with Chan's
    formula ``M2 = M2_a + M2_b + ‖x̄_a − x̄_b‖² · n_a n_b / (n_a + n_b)``.
    """

    def __init__(self, d_in: int, device: str = "cpu"):
        self.n_tokens = 0
        self.sse = 0.0
        self.mean = torch.zeros(d_in, dtype=torch.float64, device=device)
        self.m2 = 0.0

    def _combine(self, n: int, mean: Tensor, m2: float) -> None:
        total = self.n_tokens + n
        if total == 0:
            return
        delta = mean - self.mean
        self.m2 += m2 + float(delta.square().sum()) * self.n_tokens * n / total
        self.mean += delta * (n / total)
        self.n_tokens = total

    @torch.no_grad()
    def update(self, x: Float[Tensor, "tok d_in"], x_hat: Float[Tensor, "tok d_in"]) -> None:
        diff = (x - x_hat).reshape(-1)
        self.sse += float(torch.dot(diff, diff))
        mean = x.sum(0, dtype=torch.float64) / x.shape[0]
        rounded = mean.to(x.dtype)
        centred = (x - rounded).reshape(-1)
        # Σ‖x − m'‖² = Σ‖x − m‖² + n‖m − m'‖² for the float32-rounded mean m'.
        offset = mean - rounded.double()
        m2 = float(torch.dot(centred, centred)) - x.shape[0] * float(offset.square().sum())
        self._combine(x.shape[0], mean, m2)

    def merge(self, other: ReconstructionAccumulator) -> None:
        self.sse += other.sse
        self._combine(other.n_tokens, other.mean, other.m2)

    def finalize(self) -> dict[str, float | None]:
        n = self.n_tokens
        if n == 0:
            return {"mse": None, "explained_variance": None}
        return {
            "mse": self.sse / n,
            "explained_variance": 1.0 - self.sse / self.m2 if self.m2 > 0 else None,
        }


@dataclass(frozen=True)
class LossSums:
    """Summed next-token cross-entropy of one batch under the three interventions."""

    clean: float
    spliced: float
    zero_ablated: float
    n_predictions: int


class LossAccumulator:
    """Mean clean / spliced / zero-ablated next-token loss and CE loss recovered."""

    def __init__(self) -> None:
        self.sums = [0.0, 0.0, 0.0]
        self.n_predictions = 0

    def update(self, sums: LossSums) -> None:
        self.sums[0] += sums.clean
        self.sums[1] += sums.spliced
        self.sums[2] += sums.zero_ablated
        self.n_predictions += sums.n_predictions

    def merge(self, other: LossAccumulator) -> None:
        self.sums = [a + b for a, b in zip(self.sums, other.sums, strict=True)]
        self.n_predictions += other.n_predictions

    def finalize(self) -> dict[str, float | None]:
        keys = ("ce_loss_clean", "ce_loss_spliced", "ce_loss_zero_ablated", "ce_loss_recovered")
        if self.n_predictions == 0:
            return dict.fromkeys(keys)
        clean, spliced, zero = (s / self.n_predictions for s in self.sums)
        recovered = (zero - spliced) / (zero - clean) if zero != clean else None
        return dict(zip(keys, (clean, spliced, zero, recovered), strict=True))
