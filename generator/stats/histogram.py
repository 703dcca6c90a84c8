"""Per-feature histograms of non-zero activations with exact counts and power-of-two widths.

Feature f has ``n_bins`` bins ``[j·w_f, (j+1)·w_f)`` for ``j < n_bins`` with ``w_f = 2^e_f``.
``e_f`` is always the smallest integer with ``max_f < n_bins · 2^e_f``: it starts below any
float32 value and rises when a larger activation arrives ("range doubling"). Raising ``e`` by
``d`` folds bins ``j -> j >> d``, which keeps counts exact because every old bin lies inside one
new bin. ``merge`` brings both sides to the larger exponent, then adds counts.

Why this is exact: ``v · 2^-e`` is computed exactly in float64, so each value lands in the same
bin as ``np.histogram`` over the final edges ``j · 2^e`` puts it. Why the edges are good: the
final ``e`` is minimal for the feature's maximum, so the maximum lies in the upper half of
``[0, n_bins · w)`` and at least half the bins span the observed range.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from saesite.stats.batch import TokenBatch

E_EMPTY = -160
"""Exponent of a feature that has not fired: n_bins · 2^-160 is below every positive float32
(for n_bins <= 2^10), so the first firing sets the exponent."""
MAX_BINS = 1024


def required_exponent(values: Float[Tensor, " n"], n_bins: int) -> Int[Tensor, " n"]:
    """Smallest integer e with ``values < n_bins · 2^e`` (E_EMPTY for values <= 0)."""
    v = values.double()
    positive = v > 0
    safe = torch.where(positive, v, torch.ones_like(v))
    e = (torch.floor(torch.log2(safe / n_bins)) + 1).to(torch.int64)
    two = torch.tensor(2.0, dtype=torch.float64, device=v.device)
    for _ in range(2):  # log2 may be off by one near powers of two; fix with exact comparisons
        e = e + (safe >= n_bins * torch.pow(two, e.double())).long()
        e = e - (safe < n_bins * torch.pow(two, (e - 1).double())).long()
    return torch.where(positive, e.clamp_min(E_EMPTY), torch.full_like(e, E_EMPTY))


def bin_index(values: Float[Tensor, " n"], exponent: Int[Tensor, " n"]) -> Int[Tensor, " n"]:
    """floor(v / 2^e), exact (float64 scaling by a power of two)."""
    two = torch.tensor(2.0, dtype=torch.float64, device=values.device)
    return torch.floor(values.double() * torch.pow(two, (-exponent).double())).long()


def fold_bins(counts: Int[Tensor, "f n_bins"], shift: Int[Tensor, " f"]) -> Int[Tensor, "f n_bins"]:
    """Counts after widening each row's bins by 2^shift: bin j goes to j >> shift."""
    n_bins = counts.shape[1]
    j = torch.arange(n_bins, device=counts.device)
    target = j[None, :] >> shift.clamp(0, 62)[:, None]
    return torch.zeros_like(counts).scatter_add_(1, target, counts)


@dataclass(frozen=True)
class Histograms:
    exponent: Int[Tensor, " d_sae"]
    """Bin width of feature f is 2^exponent[f]."""
    counts: Int[Tensor, "d_sae n_bins"]

    def edges(self, feature_idx: int) -> list[float]:
        """The n_bins + 1 edges j · 2^e of one feature."""
        w = 2.0 ** int(self.exponent[feature_idx])
        return [j * w for j in range(self.counts.shape[1] + 1)]


class HistogramAccumulator:
    """Exact counts of each feature's non-zero activations in power-of-two-width bins."""

    def __init__(self, d_sae: int, n_bins: int, device: str = "cpu"):
        if not 1 <= n_bins <= MAX_BINS:
            raise ValueError(f"n_bins is {n_bins}; expected 1..{MAX_BINS}")
        self.n_bins = n_bins
        self.exponent = torch.full((d_sae,), E_EMPTY, dtype=torch.int64, device=device)
        self.counts = torch.zeros(d_sae, n_bins, dtype=torch.int64, device=device)

    def _raise_exponent(self, needed: Int[Tensor, " d_sae"]) -> None:
        grow = torch.nonzero(needed > self.exponent).squeeze(1)
        if grow.numel():
            shift = needed[grow] - self.exponent[grow]
            self.counts[grow] = fold_bins(self.counts[grow], shift)
            self.exponent[grow] = needed[grow]

    @torch.no_grad()
    def update(self, acts: Float[Tensor, "tok d_sae"], batch: TokenBatch) -> None:
        active = batch.active
        self._raise_exponent(required_exponent(active.feature_max(), self.n_bins))
        j = bin_index(active.values, self.exponent[active.feat])
        flat = active.feat * self.n_bins + j
        self.counts += torch.bincount(flat, minlength=self.counts.numel()).view_as(self.counts)

    def merge(self, other: HistogramAccumulator) -> None:
        other_counts = other.counts.clone()
        grow = torch.nonzero(self.exponent > other.exponent).squeeze(1)
        if grow.numel():
            other_counts[grow] = fold_bins(
                other_counts[grow], self.exponent[grow] - other.exponent[grow]
            )
        self._raise_exponent(other.exponent)
        self.counts += other_counts

    def finalize(self) -> Histograms:
        return Histograms(exponent=self.exponent.cpu().clone(), counts=self.counts.cpu().clone())

    def state_dict(self) -> dict[str, Tensor | int | float | str]:
        return {"n_bins": self.n_bins, "exponent": self.exponent, "counts": self.counts}

    @classmethod
    def from_state_dict(cls, state: dict, device: str = "cpu") -> HistogramAccumulator:
        acc = cls(state["exponent"].shape[0], state["n_bins"], device)
        acc.exponent, acc.counts = state["exponent"].to(device), state["counts"].to(device)
        return acc
