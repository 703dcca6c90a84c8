"""Synthetic inputs for toy models of superposition: sparse features, correlated pairs, |x|.

    x_f = U[0, 1) with probability p, else 0          (p: one per instance)
    correlated pair (f, f+1):      one coin for both, so both are on or both off
    anti-correlated pair (f, f+1): the pair is on with probability 2p, then exactly one of the
                                   two, so never both; each is on with probability p
    signed (computation model):    x_f = U[-1, 1) with probability p; the target is |x|

Features are ordered: correlated pairs first, then anti-correlated pairs, then independent ones.
Each instance draws from its own ``torch.Generator`` seeded from a stable key, so an instance's
data (and so its training) does not depend on how many other instances share the batch.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor


@dataclass(frozen=True, kw_only=True)
class ToyDataConfig:
    """Which features exist and how they co-occur."""

    n_features: int
    """Number of true features."""
    n_correlated_pairs: int = 0
    """Pairs (0,1), (2,3), … that are always on or off together."""
    n_anticorrelated_pairs: int = 0
    """Pairs after the correlated ones that are never on together."""
    signed: bool = False
    """Values uniform in [-1, 1) instead of [0, 1) (the |x| computation model)."""

    def __post_init__(self) -> None:
        if self.n_features <= 0:
            raise ValueError(f"n_features is {self.n_features}; expected a positive number")
        paired = 2 * (self.n_correlated_pairs + self.n_anticorrelated_pairs)
        negative = min(self.n_correlated_pairs, self.n_anticorrelated_pairs) < 0
        if negative or paired > self.n_features:
            raise ValueError(
                f"{self.n_correlated_pairs} correlated + {self.n_anticorrelated_pairs} "
                f"anti-correlated pairs need {paired} features; expected at most n_features "
                f"= {self.n_features}"
            )

    def check_probability(self, p: float) -> None:
        """Anti-correlated pairs are on with probability 2p, so p must be at most 1/2."""
        limit = 0.5 if self.n_anticorrelated_pairs else 1.0
        if not 0.0 < p <= limit:
            raise ValueError(f"feature probability is {p}; expected a number in (0, {limit}]")


def stable_seed(*key: object) -> int:
    """A seed from a stable hash of ``key`` (e.g. seed, model, level, replica, purpose)."""
    text = "/".join(str(part) for part in key)
    return zlib.crc32(text.encode()) * 7919 + len(text)


def instance_generator(*key: object) -> torch.Generator:
    """A CPU generator seeded from ``stable_seed(*key)``."""
    return torch.Generator().manual_seed(stable_seed(*key))


def sample_features(
    cfg: ToyDataConfig, p: float, batch_size: int, generator: torch.Generator
) -> Float[Tensor, "batch n_features"]:
    """One instance's batch of inputs, drawn from ``generator`` only."""
    n = cfg.n_features
    magnitude = torch.rand(batch_size, n, generator=generator)
    if cfg.signed:
        magnitude = magnitude * 2.0 - 1.0
    coin = torch.rand(batch_size, n, generator=generator)
    present = coin < p
    n_corr = 2 * cfg.n_correlated_pairs
    if n_corr:
        pair_on = coin[:, 0:n_corr:2] < p
        present[:, 0:n_corr:2] = pair_on
        present[:, 1:n_corr:2] = pair_on
    n_anti = 2 * cfg.n_anticorrelated_pairs
    if n_anti:
        pair_on = coin[:, n_corr : n_corr + n_anti : 2] < 2 * p
        first = coin[:, n_corr + 1 : n_corr + n_anti : 2] < 0.5
        present[:, n_corr : n_corr + n_anti : 2] = pair_on & first
        present[:, n_corr + 1 : n_corr + n_anti : 2] = pair_on & ~first
    return torch.where(present, magnitude, torch.zeros(()))


def sample_batch(
    cfg: ToyDataConfig,
    feature_probability: Sequence[float],
    generators: Sequence[torch.Generator],
    batch_size: int,
) -> Float[Tensor, "inst batch n_features"]:
    """Inputs for every instance, each from its own generator, stacked on dim 0."""
    return torch.stack(
        [
            sample_features(cfg, p, batch_size, gen)
            for p, gen in zip(feature_probability, generators, strict=True)
        ]
    )


class BatchStream:
    """Endless batches for every instance, drawn ``CHUNK`` batches at a time (fewer small ops).

    The chunk size is fixed, so the stream is the same whatever the number of steps taken.
    """

    CHUNK = 32

    def __init__(
        self,
        cfg: ToyDataConfig,
        feature_probability: Sequence[float],
        generators: Sequence[torch.Generator],
        batch_size: int,
        device: str = "cpu",
    ):
        self.cfg, self.probs, self.generators = cfg, list(feature_probability), list(generators)
        self.batch_size, self.device = batch_size, device
        self._chunk: Tensor | None = None
        self._next = self.CHUNK

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> Float[Tensor, "inst batch n_features"]:
        if self._next == self.CHUNK:
            x = sample_batch(self.cfg, self.probs, self.generators, self.CHUNK * self.batch_size)
            n_inst = len(self.probs)
            shape = (n_inst, self.CHUNK, self.batch_size, self.cfg.n_features)
            self._chunk = x.view(shape).transpose(0, 1).contiguous().to(self.device)
            self._next = 0
        batch = self._chunk[self._next]
        self._next += 1
        return batch


def target(cfg: ToyDataConfig, x: Float[Tensor, "*b n_features"]) -> Float[Tensor, "*b n_features"]:
    """What the model must output: x itself, or |x| for the computation model."""
    return x.abs() if cfg.signed else x
