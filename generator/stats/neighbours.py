"""Each feature's nearest other features by decoder cosine, from half of the cosine matrix.

The cosines ``C = U @ U.T`` (U: the unit decoder rows) are symmetric, so the chunk of rows
``[s, e)`` multiplies only by the rows before its end, ``U[s:e] @ U[:e].T``: half the
[d_sae, d_sae] product the full matrix costs. That block serves two sides:
  rows      features s..e-1 against every feature before e: a ``row_topk`` each
  columns   features before s against the chunk's features: the cosines that beat a feature's
            current k-th best (its top k so far) are merged into its top k
A feature's top k after the last chunk is therefore over every other feature. Values equal the
full matrix's top k up to float rounding of the products (each pair's cosine is computed once,
so C[f, g] and C[g, f] are the same float); among equal cosines, which features are kept is
deterministic but may differ from ``torch.topk``'s choice.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from saesite.stats.row_topk import row_topk


class DecoderNeighbours:
    """Running top-k decoder cosines; ``update`` the chunks of rows in order, then ``finalize``."""

    def __init__(self, unit: Float[Tensor, "d_sae d_in"], k: int) -> None:
        d_sae = unit.shape[0]
        if not 0 <= k < d_sae:
            raise ValueError(f"k={k} neighbours: expected 0 <= k < d_sae={d_sae}")
        self.unit, self.k, self.done = unit, k, 0
        self.values = unit.new_full((d_sae, k), float("-inf"))
        self.ids = torch.full((d_sae, k), -1, dtype=torch.long, device=unit.device)

    def update(self, rows: slice) -> None:
        """Cosines of features ``rows`` with every feature before ``rows.stop``."""
        start, stop = rows.start, rows.stop
        if start != self.done:
            raise ValueError(f"chunks must come in order: expected rows from {self.done}")
        self.done = stop
        if not self.k:
            return
        block = self.unit[start:stop] @ self.unit[:stop].T
        own = torch.arange(stop - start, device=block.device)
        block[own, start + own] = float("-inf")
        k = min(self.k, stop)
        self.values[start:stop, :k], self.ids[start:stop, :k] = row_topk(block, k)
        if start:
            self._merge_columns(block[:, :start], start)

    def _merge_columns(self, block: Float[Tensor, "rows before"], start: int) -> None:
        """Merge ``block[r, g] = cos(start + r, g)`` into feature g's top k where it beats it."""
        r, g = (block > self.values[:start, -1]).nonzero(as_tuple=True)
        if not g.numel():
            return
        order = torch.argsort(g, stable=True)  # by feature g, then by r
        r, g = r[order], g[order]
        features, counts = torch.unique_consecutive(g, return_counts=True)
        group = torch.repeat_interleave(torch.arange(features.numel(), device=g.device), counts)
        rank = torch.arange(g.numel(), device=g.device) - (counts.cumsum(0) - counts)[group]
        shape = (features.numel(), int(counts.max()))
        new_values = self.values.new_full(shape, float("-inf"))
        new_values[group, rank] = block[r, g]
        new_ids = self.ids.new_full(shape, -1)
        new_ids[group, rank] = start + r
        values = torch.cat([self.values[features], new_values], dim=1)
        ids = torch.cat([self.ids[features], new_ids], dim=1)
        top = values.topk(self.k, dim=1)
        self.values[features], self.ids[features] = top.values, ids.gather(1, top.indices)

    def finalize(self) -> tuple[Float[Tensor, "d_sae k"], Int[Tensor, "d_sae k"]]:
        """(cosines, feature ids), nearest first."""
        if self.done != self.unit.shape[0]:
            raise ValueError(f"only {self.done} of {self.unit.shape[0]} features were updated")
        return self.values, self.ids
