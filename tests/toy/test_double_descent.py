"""The double-descent sweep: its loss, its independence between instances, and the curve itself."""

from __future__ import annotations

import pytest
import torch

from saesite.config import DoubleDescentConfig
from saesite.toy.double_descent import (
    _group_loss,
    _groups,
    best_per_size,
    lr_scale,
    peak_size,
    sample_points,
    train_sweep,
)


def test_points_are_sparse_unit_vectors_or_zero():
    x = sample_points(50, 0.1, 400, torch.Generator().manual_seed(0))
    norms = x.norm(dim=1)
    assert torch.all(((norms - 1).abs() < 1e-5) | (norms == 0))
    assert (x >= 0).all()
    assert 3 < (x > 0).sum(dim=1).float().mean() < 7  # about p·n = 5 features per point


def test_padded_group_loss_equals_each_instances_own_mean():
    gen = torch.Generator().manual_seed(1)
    points = [sample_points(6, 0.5, size, gen) for size in (3, 5, 11)]
    W, b = torch.randn(3, 2, 6, generator=gen), torch.randn(3, 6, generator=gen)
    (group,) = _groups(points, "cpu")
    expected = torch.stack(
        [(x - torch.relu(x @ W[i].T @ W[i] + b[i])).pow(2).mean() for i, x in enumerate(points)]
    )
    torch.testing.assert_close(_group_loss(W, b, group), expected)


def test_an_instance_trains_the_same_alone_as_next_to_other_sizes():
    small = DoubleDescentConfig(sizes=(5,), steps=40, replicas=2, n_test=64)
    alone = train_sweep(small, seed=3)
    together = train_sweep(
        DoubleDescentConfig(sizes=(5, 40, 2000), steps=40, replicas=2, n_test=64), seed=3
    )
    torch.testing.assert_close(together.W[:2], alone.W, rtol=1e-5, atol=1e-6)
    assert together.test_loss[:2] == pytest.approx(alone.test_loss, rel=1e-5)


def test_learning_rate_warms_up_then_decays_to_zero():
    scales = [lr_scale(step, 1000) for step in range(1000)]
    assert scales[0] == pytest.approx(1 / 50) and max(scales) == pytest.approx(1.0)
    assert scales.index(max(scales)) == 49 and scales[-1] < 1e-4


def test_the_sweep_peaks_in_test_loss_between_its_smallest_and_largest_size():
    """A property of this run (seed 1): memorising at T=3 and generalising at T=300 both beat
    the middle, where the model can just barely memorise its points. Measured: test loss 0.021
    at T=3, 0.064 at the peak T=20, 0.017 at T=300."""
    cfg = DoubleDescentConfig(
        sizes=(3, 12, 20, 30, 50, 300), steps=1500, replicas=1, n_test=2048, lr=1e-2
    )
    result = train_sweep(cfg, seed=1)
    best = best_per_size(result)
    test = {size: result.test_loss[inst] for size, inst in best.items()}
    train = {size: result.train_loss[inst] for size, inst in best.items()}
    assert 3 < peak_size(result) < 300
    assert test[peak_size(result)] > 1.5 * max(test[3], test[300]), test
    assert train[3] < 0.1 * train[300]  # memorised: the few points are fitted almost exactly
    assert test[300] < test[3]  # generalised: better on fresh points than the memoriser
