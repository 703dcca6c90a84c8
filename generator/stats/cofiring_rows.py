"""Exact co-firing for a feature shard: the rows ``start … stop - 1`` of the co-occurrence matrix

    C[f, g] = #{t : acts[t, f] > 0  and  acts[t, g] > 0},    f in the shard, g any feature,

as ``(stop − start) · d_sae`` int32 counts, plus every feature's firing count n_g (the Jaccard
indices need the partners'). ``update`` reads each token's active features from the batch's
non-zeros of *all* features (``TokenBatch.every_feature``), so the pairs are exactly those of a
one-process pass. ``finalize`` gives, per row, what ``CofiringAccumulator.finalize`` gives for
that feature: the same keys (count, then smaller partner), the same decoding
(``cofiring.partners_from_keys``), hence the same bytes once the shards are joined.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from saesite.stats.batch import TokenBatch
from saesite.stats.cofiring import (
    ROWS_ELEMENTS,
    Cofiring,
    pair_chunks,
    pair_features,
    partners_from_keys,
)
from saesite.stats.feature_range import FeatureRange


class CofiringRowsAccumulator:
    """Exact pair counts of one feature shard's features with every feature."""

    def __init__(self, rows: FeatureRange, n_cofiring: int, device: str = "cpu"):
        self.rows, self.n_cofiring = rows, n_cofiring
        self.count = torch.zeros(rows.d_sae, dtype=torch.int64, device=device)
        self.block = torch.zeros(rows.width, rows.d_sae, dtype=torch.int32, device=device)

    @torch.no_grad()
    def update(self, acts: Float[Tensor, "tok width"], batch: TokenBatch) -> None:
        active = batch.every_feature
        d_sae, start, stop = self.rows.d_sae, self.rows.start, self.rows.stop
        self.count += torch.bincount(active.feat, minlength=d_sae)
        flat = self.block.view(-1)
        for first, last in pair_chunks(active, active.n_tok or batch.n_tokens):
            f, g = pair_features(active, first, last)
            for row, partner in ((f, g), (g, f)):
                keep = (row >= start) & (row < stop)
                index = (row[keep] - start) * d_sae + partner[keep]
                flat.scatter_add_(0, index, torch.ones_like(index, dtype=torch.int32))

    def merge(self, other: CofiringRowsAccumulator) -> None:
        if other.rows != self.rows:
            raise ValueError(f"co-firing rows {other.rows} cannot merge into {self.rows}")
        self.count += other.count
        self.block += other.block

    def finalize(self) -> Cofiring:
        d_sae = self.rows.d_sae
        n = min(self.n_cofiring, d_sae - 1)
        partner = torch.arange(d_sae - 1, -1, -1)
        best = torch.full((self.rows.width, n), -1, dtype=torch.int64)
        chunk = max(1, ROWS_ELEMENTS // d_sae)
        for first in range(0, self.rows.width if n else 0, chunk):
            keys = self.block[first : first + chunk].cpu().long().mul_(d_sae).add_(partner)
            best[first : first + chunk] = keys.topk(n, dim=1).values
        fired = self.count.cpu()
        return partners_from_keys(best, fired[self.rows.start : self.rows.stop], fired)

    def state_dict(self) -> dict[str, Tensor | int | float | str]:
        return {
            "kind": "exact_rows",
            "start": self.rows.start,
            "stop": self.rows.stop,
            "d_sae": self.rows.d_sae,
            "n_cofiring": self.n_cofiring,
            "count": self.count,
            "block": self.block,
        }

    @classmethod
    def from_state_dict(cls, state: dict, device: str = "cpu") -> CofiringRowsAccumulator:
        rows = FeatureRange(state["start"], state["stop"], state["d_sae"])
        acc = cls(rows, state["n_cofiring"], device=device)
        acc.count, acc.block = state["count"].to(device), state["block"].to(device)
        return acc
