"""Co-firing neighbours estimated from a bounded, uniform sample of each feature's firing tokens:
the fallback above ``StatsConfig.cofiring_exact_max_features``, where the exact counts of
``stats/cofiring.py`` would take too much memory. Its counts are estimates (``exact=False``).

State per feature f: the ``m = cofiring_samples`` firing tokens of f with the smallest random keys
(a uniform sample without replacement of f's firings, like the interval reservoirs), and for each
sampled token its *co-active set*: the features firing on that token, at most
``C = cofiring_candidates`` of them (the C largest activations when more fire). The set is
captured when the token enters the sample, from the batch's sparse activations. Exact firing
counts n_f are kept too.

Estimate (at ``finalize``): with m_f = min(m, n_f) samples and c_fg of them containing g,
    count_fg ≈ n_f · c_fg / m_f,      jaccard_fg = count_fg / (n_f + n_g − count_fg).
``c_fg / m_f`` is an unbiased estimate of P(g fires | f fires) for every g that is among the C
largest activations wherever it fires with f (all g when L0 <= C); its standard error is at most
``1 / (2·sqrt(m_f))``, and it is exact when n_f <= m. Features are reported by estimated count,
descending (ties by index).

Feature shards (``stats/feature_range.py``): with ``rows``, samples are kept for those features
only (their keys hash the global feature), while co-active sets and firing counts come from
every feature's non-zeros, so each row equals the one-process row.

Bounded: memory d_sae · m · (C + 3) numbers, whatever the number of tokens. Merge: union of the
two samples, keep the m smallest keys. Keys are a hash of (seed, feature, global token)
(``stats/keys.py``), so shards merged in any order keep exactly one pass's sample. Cost after
warm-up: only tokens whose key beats the feature's m-th smallest are captured, about m·ln(n_f)
per feature over the whole pass.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Float, Int
from torch import Tensor

from saesite.stats.batch import SparseActs, TokenBatch
from saesite.stats.cofiring import Cofiring
from saesite.stats.feature_range import FeatureRange
from saesite.stats.grouping import best_of_union, float_order, sort_by_group
from saesite.stats.keys import EMPTY, offer

ELEMENTS_PER_CHUNK = 1 << 22


def coactive_sets(active: SparseActs, tok: Int[Tensor, " n"], width: int) -> Int[Tensor, "n width"]:
    """Features firing on rows ``tok`` (the ``width`` largest when more fire); -1 pads."""
    ptr = active.row_ptr()
    start, length = ptr[tok], ptr[tok + 1] - ptr[tok]
    offsets_w = torch.arange(width, device=tok.device)
    valid = offsets_w[None, :] < length[:, None]
    position = torch.where(valid, start[:, None] + offsets_w[None, :], 0)
    out = (
        torch.where(valid, active.feat[position], -1)
        if active.feat.numel()
        else torch.full((tok.numel(), width), -1, dtype=torch.int64, device=tok.device)
    )
    crowded = torch.nonzero(length > width).squeeze(1)
    if crowded.numel():
        # Sort the entries of the crowded rows by (row, value desc); take each row's first width.
        rows, row_of = torch.unique(tok[crowded], return_inverse=True)
        lengths = ptr[rows + 1] - ptr[rows]
        offsets = lengths.cumsum(0) - lengths
        row_ids = torch.repeat_interleave(torch.arange(rows.numel(), device=tok.device), lengths)
        within = torch.arange(row_ids.numel(), device=tok.device) - offsets[row_ids]
        entry = ptr[rows][row_ids] + within
        descending = (1 << 31) - 1 - float_order(active.values[entry])
        entry = entry[sort_by_group(row_ids, descending)]
        out[crowded] = active.feat[entry[offsets[row_of][:, None] + offsets_w[None, :]]]
    return out


def most_frequent(
    ids: Int[Tensor, "rows n_ids"], n: int, none: int
) -> tuple[Int[Tensor, "rows n"], Int[Tensor, "rows n"]]:
    """Per row, the n most frequent values other than ``none`` (ties: smaller value first),
    and their counts; -1 and 0 where a row has fewer distinct values."""
    values = torch.sort(ids, dim=1).values
    starts = torch.ones_like(values, dtype=torch.bool)
    starts[:, 1:] = values[:, 1:] != values[:, :-1]
    run = starts.long().cumsum(1) - 1
    counts = torch.zeros_like(values).scatter_add_(1, run, torch.ones_like(values))
    run_value = torch.full_like(values, none).scatter_(1, run, values)
    counts = torch.where(run_value == none, 0, counts)
    k = min(n, values.shape[1])
    best = (counts * (none + 1) + (none - run_value)).topk(k, dim=1).values
    count, value = best // (none + 1), none - best % (none + 1)
    value = torch.where(count > 0, value, -1)
    if k < n:
        value = torch.cat([value, value.new_full((value.shape[0], n - k), -1)], 1)
        count = torch.cat([count, count.new_zeros((count.shape[0], n - k))], 1)
    return value, count


class SampledCofiringAccumulator:
    """Uniform samples of each feature's firing tokens with their co-active features."""

    def __init__(
        self,
        d_sae: int,
        n_cofiring: int,
        samples: int,
        candidates: int,
        seed: int = 0,
        device: str = "cpu",
        rows: FeatureRange | None = None,
    ):
        self.d_sae, self.n_cofiring, self.m, self.c = d_sae, n_cofiring, samples, candidates
        self.seed = seed
        self.rows = rows or FeatureRange.every(d_sae)
        """The features sampled (a feature shard's; all by default)."""
        width = self.rows.width
        self.count = torch.zeros(d_sae, dtype=torch.int64, device=device)
        """Every feature's firing count (partners' too)."""
        self.keys = torch.full((width, samples), EMPTY, dtype=torch.int64, device=device)
        self.sets = torch.full((width, samples, candidates), -1, dtype=torch.int32, device=device)

    @torch.no_grad()
    def update(self, acts: Float[Tensor, "tok d_sae"], batch: TokenBatch) -> None:
        active, every = batch.active, batch.every_feature
        self.count += torch.bincount(every.feat, minlength=self.d_sae)
        key = batch.sample_keys(self.seed)
        threshold = self.keys.max(1).values
        cand = torch.nonzero(key < threshold[active.feat]).squeeze(1)
        tok = active.tok[cand]
        self._insert(
            active.feat[cand], key[cand], lambda ids: coactive_sets(every, tok[ids], self.c)
        )

    def _insert(self, feat: Tensor, key: Tensor, fetch: Callable[[Tensor], Tensor]) -> None:
        """Offer items to their features' samples; ``fetch(ids)`` gives the winners' sets."""
        if feat.numel() == 0:
            return
        r, c, won = offer(self.keys, feat, key)
        self.sets[r, c] = fetch(won).to(torch.int32)

    def merge(self, other: SampledCofiringAccumulator) -> None:
        if other.rows != self.rows:
            raise ValueError(f"co-firing rows {other.rows} cannot merge into {self.rows}")
        self.count += other.count
        rows = torch.nonzero((other.keys != EMPTY).any(1)).squeeze(1)
        dst, src = best_of_union(self.keys[rows], other.keys[rows])
        r, c = rows[dst[:, 0]], dst[:, 1]
        self.keys[r, c] = other.keys[rows[src[:, 0]], src[:, 1]]
        self.sets[r, c] = other.sets[rows[src[:, 0]], src[:, 1]]

    def finalize(self) -> Cofiring:
        d_sae, n = self.d_sae, min(self.n_cofiring, self.d_sae - 1)
        width, first = self.rows.width, self.rows.start
        count = self.count.cpu()
        keys, sets = self.keys.cpu(), self.sets.cpu()
        samples = (keys != EMPTY).sum(1)
        index = torch.full((width, n), -1, dtype=torch.int64)
        top = torch.zeros(width, n, dtype=torch.int64)
        chunk = max(1, ELEMENTS_PER_CHUNK // (self.m * self.c))
        for start in range(0, width, chunk):
            stop = min(start + chunk, width)
            ids = sets[start:stop].reshape(stop - start, -1).long()
            own = torch.arange(first + start, first + stop)[:, None]
            ids = torch.where((ids < 0) | (ids == own), d_sae, ids)  # d_sae: nothing
            index[start:stop], top[start:stop] = most_frequent(ids, n, d_sae)
        own_count = count[first : first + width, None]
        rate = top.double() / samples[:, None].clamp_min(1)
        estimate = rate * own_count
        other = count[index.clamp_min(0)].double()
        estimate = torch.where(index >= 0, torch.minimum(estimate, other), 0.0)
        union = own_count.double() + other - estimate
        jaccard = torch.where(index >= 0, estimate / union.clamp_min(1e-12), 0.0).clamp(0, 1)
        return Cofiring(index=index, count=estimate.round().long(), jaccard=jaccard, exact=False)

    def state_dict(self) -> dict[str, Tensor | int | float | str]:
        return {
            "kind": "sampled",
            "d_sae": self.d_sae,
            "n_cofiring": self.n_cofiring,
            "samples": self.m,
            "candidates": self.c,
            "seed": self.seed,
            "start": self.rows.start,
            "stop": self.rows.stop,
            "count": self.count,
            "keys": self.keys,
            "sets": self.sets,
        }

    @classmethod
    def from_state_dict(cls, state: dict, device: str = "cpu") -> SampledCofiringAccumulator:
        acc = cls(
            state["d_sae"],
            state["n_cofiring"],
            state["samples"],
            state["candidates"],
            seed=state["seed"],
            device=device,
            rows=FeatureRange(state["start"], state["stop"], state["d_sae"]),
        )
        acc.count, acc.keys = state["count"].to(device), state["keys"].to(device)
        acc.sets = state["sets"].to(device)
        return acc
