"""Exact co-firing: for every pair of features, the number of tokens on which both fire.

State: n_f, the tokens feature f fires on, and the strict upper triangle of the co-occurrence
matrix

    C[f, g] = #{t : acts[t, f] > 0  and  acts[t, g] > 0},    f < g,

packed row-major into d_sae·(d_sae − 1)/2 int32 counts (2·d_sae² bytes: 8 MiB at 2,048
features, 512 MiB at 16,384). ``update`` takes each token's active features from the batch's
sparse activations (at most L0 of them, ascending within a token) and adds its L0·(L0 − 1)/2
pairs with one scatter-add; the work is the number of co-firing pairs, never d_sae². ``merge``
adds the counts (exact: shards of the pass may be merged in any order). ``finalize`` lists per
feature the ``n_cofiring`` partners with the largest C[f, g] (ties: smaller index first) and

    jaccard_fg = C[f, g] / (n_f + n_g − C[f, g]).

Above ``StatsConfig.cofiring_exact_max_features`` the pass uses the sampled estimate of
``stats/cofiring_sample.py`` instead (its counts are marked as estimates).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from saesite.stats.batch import SparseActs, TokenBatch

PAIRS_PER_CHUNK = 1 << 22
"""Pairs generated at once in ``update`` (bounds its scratch memory at any L0)."""
ROWS_ELEMENTS = 1 << 23
"""Counts unpacked at once in ``finalize`` (rows × d_sae; 64 MiB of int64)."""


@dataclass(frozen=True)
class Cofiring:
    index: Int[Tensor, "d_sae n"]
    """Co-firing feature, or -1 for unused slots."""
    count: Int[Tensor, "d_sae n"]
    """Tokens on which both fire (estimated where ``exact`` is false)."""
    jaccard: Float[Tensor, "d_sae n"]
    exact: bool = True
    """Counts are exact (``CofiringAccumulator``), not estimated from samples."""


def pair_offset(f: Tensor, d_sae: int) -> Tensor:
    """Packed index of pair (f, f + 1): row f of the strict upper triangle starts here."""
    return f * d_sae - f * (f + 1) // 2 - f - 1


def pair_features(
    active: SparseActs, tok_start: int, tok_stop: int
) -> tuple[Int[Tensor, " pairs"], Int[Tensor, " pairs"]]:
    """Every pair of features (f < g) firing together on tokens ``tok_start … stop - 1``, as
    two index lists (a pair once per token)."""
    ptr = active.row_ptr()
    start, length = (
        ptr[tok_start:tok_stop],
        ptr[tok_start + 1 : tok_stop + 1] - ptr[tok_start:tok_stop],
    )
    width = int(length.max()) if length.numel() else 0
    device = active.feat.device
    if width < 2:
        none = torch.empty(0, dtype=torch.int64, device=device)
        return none, none
    slot = torch.arange(width, device=device)
    valid = slot[None, :] < length[:, None]
    feats = torch.where(valid, active.feat[torch.where(valid, start[:, None] + slot, 0)], -1)
    i, j = torch.triu_indices(width, width, offset=1, device=device)
    # [tok, pairs]; f < g where both exist (a token's features ascend)
    f, g = feats.index_select(1, i), feats.index_select(1, j)
    if not bool(valid.all()):
        keep = g >= 0
        f, g = f[keep], g[keep]
    return f.reshape(-1), g.reshape(-1)


def pair_chunks(active: SparseActs, n_tok: int) -> list[tuple[int, int]]:
    """Token ranges whose pairs number at most about ``PAIRS_PER_CHUNK`` (at any L0)."""
    ptr = active.row_ptr()
    if n_tok == 0 or ptr[-1] == 0:
        return []
    widest = int((ptr[1:] - ptr[:-1]).max())
    step = max(1, PAIRS_PER_CHUNK // max(1, widest * (widest - 1) // 2))
    return [(start, min(start + step, n_tok)) for start in range(0, n_tok, step)]


def active_pairs(
    active: SparseActs, tok_start: int, tok_stop: int, row_start: Tensor | None = None
) -> Int[Tensor, " pairs"]:
    """Packed indices of every pair (f < g) firing together on tokens ``tok_start … stop - 1``
    (a pair once per token). ``row_start``: ``pair_offset(arange(d_sae))``, if at hand."""
    f, g = pair_features(active, tok_start, tok_stop)
    if row_start is None:
        row_start = pair_offset(torch.arange(active.d_sae, device=f.device), active.d_sae)
    return row_start[f] + g


def partners_from_keys(
    best: Int[Tensor, "rows n"], fired_rows: Int[Tensor, " rows"], fired: Int[Tensor, " d_sae"]
) -> Cofiring:
    """Decode each row's best keys ``count·d_sae + (d_sae − 1 − partner)`` (-1: none) into
    partners, counts and Jaccard indices; ``fired``: every feature's firing count, ``fired_rows``
    the rows' own."""
    d_sae = fired.shape[0]
    both = best.clamp_min(0) // d_sae
    index = torch.where(both > 0, d_sae - 1 - best % d_sae, -1)
    both = torch.where(index >= 0, both, 0)
    other = fired[index.clamp_min(0)]
    union = (fired_rows[:, None] + other - both).double()
    jaccard = torch.where(index >= 0, both / union.clamp_min(1), 0.0)
    return Cofiring(index=index, count=both, jaccard=jaccard, exact=True)


class CofiringAccumulator:
    """Exact pair counts from the active indices of every token."""

    def __init__(self, d_sae: int, n_cofiring: int, device: str = "cpu"):
        self.d_sae, self.n_cofiring = d_sae, n_cofiring
        self.count = torch.zeros(d_sae, dtype=torch.int64, device=device)
        self.pairs = torch.zeros(d_sae * (d_sae - 1) // 2, dtype=torch.int32, device=device)
        self.row_start = pair_offset(torch.arange(d_sae, device=device), d_sae)

    @torch.no_grad()
    def update(self, acts: Float[Tensor, "tok d_sae"], batch: TokenBatch) -> None:
        active = batch.active
        self.count += torch.bincount(active.feat, minlength=self.d_sae)
        for start, stop in pair_chunks(active, active.n_tok or batch.n_tokens):
            index = active_pairs(active, start, stop, self.row_start)
            if index.numel():
                ones = torch.ones(index.shape, dtype=torch.int32, device=index.device)
                self.pairs.scatter_add_(0, index, ones)

    def merge(self, other: CofiringAccumulator) -> None:
        self.count += other.count
        self.pairs += other.pairs

    def block(self, start: int, stop: int) -> Int[Tensor, "rows d_sae"]:
        """C[f, g] for f in ``start … stop - 1`` where g > f, zero elsewhere: row f is the
        contiguous stretch ``row_start[f] + f + 1 …`` of the packed triangle."""
        d = self.d_sae
        out = torch.zeros(stop - start, d, dtype=torch.int64, device=self.pairs.device)
        first = int(self.row_start[start]) + start + 1
        for r, f in enumerate(range(start, stop)):  # slice copies beat a masked scatter 1.5-4x
            out[r, f + 1 :] = self.pairs[first : first + d - f - 1]
            first += d - f - 1
        return out

    def rows(self, start: int, stop: int) -> Int[Tensor, "rows d_sae"]:
        """C[f, :] for f in ``start … stop - 1`` (zero on the diagonal); for tests."""
        d = self.d_sae
        f = torch.arange(start, stop, device=self.pairs.device)[:, None]
        g = torch.arange(d, device=self.pairs.device)[None, :]
        lo, hi = torch.minimum(f, g), torch.maximum(f, g)
        index = (self.row_start[lo] + hi).clamp_min(0)
        return torch.where(f == g, 0, self.pairs[index].long())

    def finalize(self) -> Cofiring:
        d_sae, n = self.d_sae, min(self.n_cofiring, self.d_sae - 1)
        # per feature, the n best keys so far; a key is count·d_sae + (d_sae − 1 − partner), so
        # the larger count wins and, at equal counts, the smaller partner
        best = torch.full((d_sae, n), -1, dtype=torch.int64)
        from_columns = [best]  # per block, each g's best partners f < g in the block
        partner = torch.arange(d_sae - 1, -1, -1)
        chunk = max(1, ROWS_ELEMENTS // max(1, d_sae))
        for start in range(0, d_sae, chunk if n else d_sae):
            stop = min(start + chunk, d_sae)
            keys = self.block(start, stop).cpu().mul_(d_sae)  # in place: d_sae² elements
            # row f of the block: its partners g > f
            best[start:stop] = keys.add_(partner).topk(n, dim=1).values
            # column g of the block: its partners f in [start, stop), f < g
            keys.sub_(partner).add_(partner[start:stop, None])
            from_columns.append(keys.topk(min(n, stop - start), dim=0).values.T)
        if n:
            best = torch.cat(from_columns, 1).topk(n, dim=1).values
        fired = self.count.cpu()
        return partners_from_keys(best, fired, fired)

    def state_dict(self) -> dict[str, Tensor | int | float | str]:
        return {
            "kind": "exact",
            "d_sae": self.d_sae,
            "n_cofiring": self.n_cofiring,
            "count": self.count,
            "pairs": self.pairs,
        }

    @classmethod
    def from_state_dict(cls, state: dict, device: str = "cpu") -> CofiringAccumulator:
        acc = cls(state["d_sae"], state["n_cofiring"], device=device)
        acc.count, acc.pairs = state["count"].to(device), state["pairs"].to(device)
        return acc
