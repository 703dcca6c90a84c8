"""Quantile-interval examples from the same single pass: stratified reservoirs per feature.

Reservoir bins. Feature f's activation range ``[0, n_bins · 2^e_f)`` (the histogram's, see
``stats/histogram.py``, with the same range doubling) is cut into ``R = ceil(n_bins / 2)``
reservoir bins of width ``2 · 2^e_f`` (pairs of histogram bins). Each (feature, reservoir bin)
keeps the exact count of its firings and the ``interval_samples`` firings with the smallest
random keys (``stats/keys.py``: a hash of (seed, feature, global token), distinct per feature).
The s smallest keys of a set are a uniform sample without replacement of it, so:
- folding bins when the range doubles = union of the merged bins' items, keep the s smallest;
- ``merge`` of shards = fold both to the larger exponent, add counts, union, keep the s smallest.
Keys depend on the item alone, so shards merged in any order keep exactly one pass's sample.
Each kept firing stores its activation, global token index and the feature's activations on its
context window (captured at insertion, float16 to halve memory).

Intervals (at ``finalize``). The occupied reservoir bins of a feature, in order, are split into
``min(n_intervals, #occupied)`` contiguous groups as equal in number of bins as possible
(``numpy.array_split``); so the intervals are roughly equal-width in activation and skip empty
stretches. Interval ``[lo, hi)`` spans from the lower edge of its first bin to the upper edge of
its last; ``fraction`` is its exact share of the feature's firings; its examples are the s
smallest keys among its bins' items — a uniform sample without replacement from the interval's
firings — shown by activation, descending.

Memory: d_sae · R · (1 + s · (16 + 2 · window)) bytes-ish, independent of the number of tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from saesite.stats.batch import TokenBatch
from saesite.stats.grouping import best_of_union, smallest_per_group
from saesite.stats.histogram import E_EMPTY, MAX_BINS, fold_bins, required_exponent
from saesite.stats.keys import EMPTY, offer
from saesite.stats.windows import Window, gather_windows


@dataclass(frozen=True)
class Intervals:
    lo: Float[Tensor, "d_sae n_intervals"]
    """Lower bound; NaN for intervals a feature does not have (fewer occupied bins, or dead)."""
    hi: Float[Tensor, "d_sae n_intervals"]
    fraction: Float[Tensor, "d_sae n_intervals"]
    values: Float[Tensor, "d_sae n_intervals s"]
    """Sampled activations, descending; -inf in unused slots."""
    index: Int[Tensor, "d_sae n_intervals s"]
    """Global token index; -1 in unused slots."""
    windows: Float[Tensor, "d_sae n_intervals s width"]


class IntervalAccumulator:
    """Exact counts and uniform reservoir samples per (feature, pair of histogram bins)."""

    def __init__(
        self,
        d_sae: int,
        n_bins: int,
        n_intervals: int,
        samples: int,
        window: Window,
        seed: int = 0,
        device: str = "cpu",
    ):
        if not 2 <= n_bins <= MAX_BINS:
            raise ValueError(f"n_bins is {n_bins}; expected 2..{MAX_BINS}")
        self.d_sae, self.n_bins, self.n_intervals, self.s = d_sae, n_bins, n_intervals, samples
        self.seed = seed
        self.n_res = math.ceil(n_bins / 2)
        self.window = window
        width = window.width
        slots = d_sae * self.n_res
        self.exponent = torch.full((d_sae,), E_EMPTY, dtype=torch.int64, device=device)
        self.counts = torch.zeros(d_sae, self.n_res, dtype=torch.int64, device=device)
        self.keys = torch.full((slots, samples), EMPTY, dtype=torch.int64, device=device)
        self.index = torch.full((slots, samples), -1, dtype=torch.int64, device=device)
        self.values = torch.zeros(slots, samples, device=device)
        self.windows = torch.zeros(slots, samples, width, dtype=torch.float16, device=device)

    def _slot(self, feat: Tensor, values: Tensor) -> Tensor:
        two = torch.tensor(2.0, dtype=torch.float64, device=values.device)
        scale = torch.pow(two, (-self.exponent[feat] - 1).double())
        return feat * self.n_res + torch.floor(values.double() * scale).long()

    def _insert(self, slot: Tensor, key: Tensor, fetch: Callable[[Tensor], tuple]) -> None:
        """Offer items to their slots' reservoirs (each keeps the s smallest keys).

        ``fetch(ids)`` gives (global index, value, window) of the items that get in, so windows
        are gathered only for them.
        """
        if slot.numel() == 0:
            return
        r, c, won = offer(self.keys, slot, key)
        index, values, windows = fetch(won)
        self.index[r, c] = index
        self.values[r, c] = values
        self.windows[r, c] = windows.to(torch.float16)

    PAYLOAD = ("keys", "index", "values", "windows")
    """The per-item tensors [slots, s, ...]; ``keys`` first."""

    def _fold_(self, arrays: dict[str, Tensor], shift: Int[Tensor, " d_sae"]) -> None:
        """Widen the reservoir bins of features with ``shift > 0`` by 2^shift, in ``arrays``
        (this accumulator's tensors or copies): bin j's items go to j >> shift, and each new
        bin keeps its s smallest keys. Row-wise sorts of the 2^shift · s items per new bin."""
        n_res, s = self.n_res, self.s
        steps = torch.arange(n_res, device=shift.device)
        for d in torch.unique(shift[shift > 0]).tolist():
            feats = torch.nonzero(shift == d).squeeze(1)
            slots = (feats[:, None] * n_res + steps[None, :]).reshape(-1)
            group = min(1 << min(d, 62), 1 << (n_res - 1).bit_length())
            n_out = -(-n_res // group)
            pad = n_out * group - n_res
            keys = arrays["keys"][slots].view(feats.numel(), n_res, s)
            keys = torch.nn.functional.pad(keys, (0, 0, 0, pad), value=EMPTY)
            keys = keys.reshape(feats.numel(), n_out, group * s)
            order = torch.sort(keys, dim=2, stable=True).indices[:, :, :s]
            for name in self.PAYLOAD:
                old = arrays[name][slots]
                tail = old.shape[2:]
                fill = EMPTY if name == "keys" else (-1 if name == "index" else 0)
                grouped = torch.full(
                    (feats.numel(), n_out * group, s, *tail),
                    fill,
                    dtype=old.dtype,
                    device=old.device,
                )
                grouped[:, :n_res] = old.view(feats.numel(), n_res, s, *tail)
                grouped = grouped.reshape(feats.numel(), n_out, group * s, *tail)
                index = order.reshape(*order.shape, *([1] * len(tail))).expand(*order.shape, *tail)
                kept = grouped.gather(2, index)
                new = torch.full_like(old.view(feats.numel(), n_res, s, *tail), fill)
                new[:, :n_out] = kept
                arrays[name][slots] = new.reshape(old.shape)

    def _raise_exponent(self, needed: Tensor) -> None:
        grow = torch.nonzero(needed > self.exponent).squeeze(1)
        if grow.numel() == 0:
            return
        shift = (needed - self.exponent).clamp_min(0)
        self.counts[grow] = fold_bins(self.counts[grow], shift[grow])
        if self.s:
            self._fold_({name: getattr(self, name) for name in self.PAYLOAD}, shift)
        self.exponent[grow] = needed[grow]

    @torch.no_grad()
    def update(self, acts: Float[Tensor, "tok d_sae"], batch: TokenBatch) -> None:
        active = batch.active
        self._raise_exponent(required_exponent(active.feature_max(), self.n_bins))
        slot = self._slot(active.feat, active.values)
        self.counts += torch.bincount(slot, minlength=self.counts.numel()).view_as(self.counts)
        if self.s == 0:
            return
        key = batch.sample_keys(self.seed)
        threshold = self.keys.max(1).values
        cand = torch.nonzero(key < threshold[slot]).squeeze(1)
        tok, feat, values = active.tok[cand], active.feat[cand], active.values[cand]

        def fetch(ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            windows = gather_windows(acts, tok[ids], feat[ids], batch.seq_len, self.window)
            return tok[ids] + batch.token_offset, values[ids], windows

        self._insert(slot[cand], key[cand], fetch)

    def merge(self, other: IntervalAccumulator) -> None:
        needed = torch.maximum(self.exponent, other.exponent)
        self._raise_exponent(needed)
        shift = needed - other.exponent
        self.counts += fold_bins(other.counts, shift)
        if not self.s:
            return
        theirs = {name: getattr(other, name) for name in self.PAYLOAD}
        if bool((shift > 0).any()):
            theirs = {name: tensor.clone() for name, tensor in theirs.items()}
            self._fold_(theirs, shift)
        # Now bin for bin: the union of two [slots, s] reservoirs, the s smallest keys kept.
        rows = torch.nonzero((theirs["keys"] != EMPTY).any(1)).squeeze(1)
        dst, src = best_of_union(self.keys[rows], theirs["keys"][rows])
        r, c = rows[dst[:, 0]], dst[:, 1]
        o_r, o_c = rows[src[:, 0]], src[:, 1]
        for name in self.PAYLOAD:
            getattr(self, name)[r, c] = theirs[name][o_r, o_c]

    def finalize(self) -> Intervals:
        return finalize_intervals(self)

    TENSORS = ("exponent", "counts", "keys", "index", "values", "windows")

    def state_dict(self) -> dict[str, Tensor | int | float | str]:
        return {
            "d_sae": self.d_sae,
            "n_bins": self.n_bins,
            "n_intervals": self.n_intervals,
            "samples": self.s,
            "context_before": self.window.before,
            "context_after": self.window.after,
            "seed": self.seed,
            **{name: getattr(self, name) for name in self.TENSORS},
        }

    @classmethod
    def from_state_dict(cls, state: dict, device: str = "cpu") -> IntervalAccumulator:
        acc = cls(
            state["d_sae"],
            state["n_bins"],
            state["n_intervals"],
            state["samples"],
            Window(state["context_before"], state["context_after"]),
            seed=state["seed"],
            device=device,
        )
        for name in cls.TENSORS:
            setattr(acc, name, state[name].to(device))
        return acc


def finalize_intervals(acc: IntervalAccumulator) -> Intervals:
    """Group occupied reservoir bins into intervals; sample each interval from its bins."""
    d_sae, n_res, n_int, s = acc.d_sae, acc.n_res, acc.n_intervals, acc.s
    counts = acc.counts.cpu()
    occupied = counts > 0
    rank = occupied.long().cumsum(1) - 1
    m = occupied.sum(1, keepdim=True)
    n = m.clamp(max=n_int).clamp_min(1)
    q, rem = m // n, m % n
    boundary = rem * (q + 1)
    group = torch.where(rank < boundary, rank // (q + 1), rem + (rank - boundary) // q.clamp_min(1))
    group = torch.where(occupied, group, n_int)  # n_int: a spill column for empty bins
    res = torch.arange(n_res)[None, :].expand(d_sae, n_res)
    first = torch.full((d_sae, n_int + 1), n_res).scatter_reduce(1, group, res, "amin")[:, :n_int]
    last = torch.full((d_sae, n_int + 1), -1).scatter_reduce(1, group, res, "amax")[:, :n_int]
    in_group = torch.zeros(d_sae, n_int + 1, dtype=torch.int64).scatter_add(1, group, counts)
    width = torch.pow(torch.tensor(2.0, dtype=torch.float64), (acc.exponent.cpu() + 1).double())
    top = acc.n_bins * width / 2  # the histogram's upper edge (R may round n_bins/2 up)
    exists = last >= 0
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    lo = torch.where(exists, first.double() * width[:, None], nan)
    hi = torch.where(exists, torch.minimum((last + 1).double() * width[:, None], top[:, None]), nan)
    total = counts.sum(1, keepdim=True).clamp_min(1).double()
    fraction = torch.where(exists, in_group[:, :n_int].double() / total, nan)

    windows_width = acc.windows.shape[2]
    values = torch.full((d_sae * n_int, s), float("-inf"))
    index = torch.full((d_sae * n_int, s), -1, dtype=torch.int64)
    windows = torch.zeros(d_sae * n_int, s, windows_width)
    keys = acc.keys.cpu()
    present = keys != EMPTY
    if s and bool(present.any()):
        slot = torch.arange(d_sae * n_res)[:, None].expand_as(keys)[present]
        feat, res_bin = slot // n_res, slot % n_res
        target = feat * n_int + group[feat, res_bin]
        chosen, rank_in = smallest_per_group(target, keys[present], s)
        rows = target[chosen]
        # Within an interval, show the sample by activation, descending.
        sample_values = acc.values.cpu()[present][chosen]
        values[rows, rank_in] = sample_values
        index[rows, rank_in] = acc.index.cpu()[present][chosen]
        windows[rows, rank_in] = acc.windows.cpu()[present][chosen].float()
        order = torch.sort(values, dim=1, descending=True, stable=True).indices
        values = values.gather(1, order)
        index = index.gather(1, order)
        windows = windows[torch.arange(d_sae * n_int)[:, None], order]
    return Intervals(
        lo=lo,
        hi=hi,
        fraction=fraction,
        values=values.view(d_sae, n_int, s),
        index=index.view(d_sae, n_int, s),
        windows=windows.view(d_sae, n_int, s, windows_width),
    )
