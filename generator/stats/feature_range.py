"""Feature shards: the pass over a contiguous range of an SAE's features, and their join.

A very wide SAE (Gemma Scope 1M, Llama Scope) does not fit one worker: every per-feature
accumulator grows with d_sae. A feature shard ``J/M`` keeps accumulators for the features
``FeatureRange.start … stop - 1`` only (``feature_ranges``: M contiguous, near-equal ranges),
so its memory is that of an SAE ``width`` wide. What it still computes for every feature, and why:

- the encoder, for every token: a feature's activation does not depend on the other features
  (ReLU, JumpReLU), but co-firing pairs a shard's features with all the others, a top-k SAE's
  activations depend on all pre-activations, and the reconstruction metrics and CE losses need
  the whole x̂. So each feature shard repeats the model forward and the encoder matmul (M shards
  cost M forwards and M encoder products), while the accumulators — most of the pass's memory
  and, after warm-up, a share of its time — are split M ways;
- the sampling keys hash the *global* feature index (``TokenBatch.feature_start``), so a shard's
  reservoirs keep exactly the samples one pass keeps for those features.

``join_feature_stats`` puts the shards of one token range back together: every per-feature
statistic is a row per feature, so the finalised rows concatenate in feature order; the
reconstruction and loss sums, the same in every shard, come from the first. The result
finalises to the same values, to the last bit, as one pass over all features.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from saesite.stats.feature_stats import FeatureStats


@dataclass(frozen=True)
class FeatureRange:
    """Features ``start … stop - 1`` of an SAE with ``d_sae`` features."""

    start: int
    stop: int
    d_sae: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.stop <= self.d_sae:
            raise ValueError(
                f"features {self.start}..{self.stop - 1} of {self.d_sae}; expected "
                f"0 <= start < stop <= d_sae"
            )

    @classmethod
    def every(cls, d_sae: int) -> FeatureRange:
        return cls(0, d_sae, d_sae)

    @property
    def width(self) -> int:
        return self.stop - self.start

    @property
    def is_every(self) -> bool:
        return self.start == 0 and self.stop == self.d_sae


def feature_ranges(d_sae: int, n_shards: int) -> list[FeatureRange]:
    """``n_shards`` contiguous ranges covering the features, as equal in width as possible."""
    if not 1 <= n_shards <= d_sae:
        raise ValueError(f"{n_shards} feature shards of {d_sae} features; expected 1..{d_sae}")
    bounds = [j * d_sae // n_shards for j in range(n_shards + 1)]
    return [FeatureRange(a, b, d_sae) for a, b in zip(bounds, bounds[1:])]


class Joined:
    """Accumulators of adjacent feature ranges, finalised into one result of every feature."""

    def __init__(self, parts: list[Any]):
        self.parts = parts

    def finalize(self) -> Any:
        return join_rows([part.finalize() for part in self.parts])


def join_rows(results: list[Any]) -> Any:
    """Concatenate finalised per-feature results (frozen dataclasses) in feature order: tensor
    fields along their first axis; other fields must agree, except a firing summary's ``l0``,
    recomputed from the joined counts as one pass computes it."""
    first = results[0]
    values: dict[str, Any] = {}
    for field in dataclasses.fields(first):
        items = [getattr(result, field.name) for result in results]
        if isinstance(items[0], Tensor):
            values[field.name] = torch.cat(items)
        elif field.name != "l0":
            if any(item != items[0] for item in items[1:]):
                raise ValueError(f"feature shards disagree on {field.name}: {items}")
            values[field.name] = items[0]
    if "l0" in {field.name for field in dataclasses.fields(first)}:
        values["l0"] = float(values["count"].sum().item()) / max(values["n_tokens"], 1)
    return type(first)(**values)


def join_feature_stats(parts: list[FeatureStats]) -> FeatureStats:
    """The feature shards of one token range (any order) as one ``FeatureStats`` of every
    feature, ready for ``complete`` and ``finalize``; refused unless they tile the features."""
    parts = sorted(parts, key=lambda part: part.features.start)
    d_sae = parts[0].features.d_sae
    cursor = 0
    for part in parts:
        if part.features.d_sae != d_sae or part.features.start != cursor:
            raise ValueError(
                f"feature shard {part.features} does not follow feature {cursor - 1}; expected "
                f"shards tiling 0..{d_sae - 1} once"
            )
        if (part.seq_start, part.n_seq, part.window) != (
            parts[0].seq_start,
            parts[0].n_seq,
            parts[0].window,
        ):
            raise ValueError("feature shards of different token ranges; merge tokens first")
        cursor = part.features.stop
    if cursor != d_sae:
        raise ValueError(f"feature shards cover 0..{cursor - 1} of {d_sae}; expected all")
    head = parts[0]
    return dataclasses.replace(
        head,
        features=FeatureRange.every(d_sae),
        **{
            name: Joined([getattr(part, name) for part in parts])
            for name in ("firing", "histograms", "topk", "intervals", "cofiring")
        },
    )
