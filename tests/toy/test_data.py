"""Toy data: feature probabilities, correlated and anti-correlated pairs, per-instance streams."""

from __future__ import annotations

import math

import pytest
import torch

from saesite.toy.data import (
    BatchStream,
    ToyDataConfig,
    instance_generator,
    sample_batch,
    sample_features,
)

N = 40_000


def _within(measured: float, p: float, n: int, sigmas: float = 5.0) -> bool:
    return abs(measured - p) <= sigmas * math.sqrt(p * (1 - p) / n)


def test_independent_features_are_on_with_the_requested_probability():
    cfg = ToyDataConfig(n_features=6)
    for p in (0.5, 0.1, 0.02):
        x = sample_features(cfg, p, N, instance_generator("probability", p))
        on = (x > 0).double().mean(0)
        assert all(_within(v, p, N) for v in on.tolist()), (p, on)


def test_feature_values_are_uniform_in_zero_one_or_minus_one_one_when_signed():
    x = sample_features(ToyDataConfig(n_features=4), 0.5, N, instance_generator("uniform"))
    on = x[x > 0]
    assert on.max() < 1 and abs(on.mean().item() - 0.5) < 0.01
    signed = sample_features(
        ToyDataConfig(n_features=4, signed=True), 0.5, N, instance_generator("signed")
    )
    present = signed[signed != 0]
    assert present.min() >= -1 and present.max() < 1 and abs(present.mean().item()) < 0.01
    assert abs((present < 0).double().mean().item() - 0.5) < 0.01


def test_correlated_pairs_are_on_together_and_anticorrelated_pairs_never_together():
    cfg = ToyDataConfig(n_features=7, n_correlated_pairs=1, n_anticorrelated_pairs=2)
    p = 0.2
    on = sample_features(cfg, p, N, instance_generator("pairs")) > 0
    assert torch.equal(on[:, 0], on[:, 1])
    assert not (on[:, 2] & on[:, 3]).any() and not (on[:, 4] & on[:, 5]).any()
    for f in range(7):
        assert _within(on[:, f].double().mean().item(), p, N), f
    # the unpaired feature is independent of the others: P(both) = p²
    both = (on[:, 6] & on[:, 0]).double().mean().item()
    assert _within(both, p * p, N)


def test_anticorrelated_pairs_need_a_probability_of_at_most_one_half():
    cfg = ToyDataConfig(n_features=2, n_anticorrelated_pairs=1)
    cfg.check_probability(0.5)
    with pytest.raises(ValueError, match="expected a number in"):
        cfg.check_probability(0.6)


def test_too_many_pairs_for_the_features_is_refused():
    with pytest.raises(ValueError, match="at most n_features"):
        ToyDataConfig(n_features=3, n_correlated_pairs=1, n_anticorrelated_pairs=1)


def test_an_instances_data_does_not_depend_on_the_other_instances():
    cfg = ToyDataConfig(n_features=5)
    alone = sample_batch(cfg, [0.1], [instance_generator("a")], 64)
    together = sample_batch(cfg, [0.1, 0.7], [instance_generator("a"), instance_generator("b")], 64)
    assert torch.equal(alone[0], together[0])


def test_batch_stream_yields_consecutive_slices_of_one_draw():
    cfg = ToyDataConfig(n_features=3)
    stream = BatchStream(
        cfg, [0.3, 0.6], [instance_generator("s0"), instance_generator("s1")], batch_size=8
    )
    batches = [next(stream) for _ in range(BatchStream.CHUNK + 1)]
    assert batches[0].shape == (2, 8, 3)
    whole = sample_features(cfg, 0.3, 8 * BatchStream.CHUNK, instance_generator("s0"))
    assert torch.equal(torch.cat([b[0] for b in batches[: BatchStream.CHUNK]]), whole)
    assert not torch.equal(batches[BatchStream.CHUNK], batches[0])
