import pytest
import torch

from saesite.stats.firing import FiringAccumulator
from tests.stats.shards import D_SAE, SHARD_SPLITS, feed_shards, random_acts


@pytest.mark.parametrize("split", SHARD_SPLITS)
def test_firing_stats_of_merged_shards_equal_brute_force(split):
    tokens, acts = random_acts()
    stats = feed_shards(
        lambda: FiringAccumulator(D_SAE, dense_threshold=0.3), tokens, acts, split
    ).finalize()
    fires = acts > 0
    count = fires.sum(0)
    assert stats.n_tokens == acts.shape[0]
    assert torch.equal(stats.count, count)
    assert torch.equal(stats.density, count.double() / acts.shape[0])
    assert torch.equal(stats.max, acts.max(0).values)
    expected_mean = acts.double().sum(0) / count.clamp_min(1)
    assert torch.allclose(stats.mean, expected_mean, rtol=1e-12, atol=0)
    assert torch.equal(stats.dead, count == 0)
    assert torch.equal(stats.dense, count.double() / acts.shape[0] > 0.3)
    assert stats.l0 == pytest.approx(fires.sum(1).double().mean().item(), rel=1e-12)
    assert stats.dead[0] and not stats.dead[1] and stats.dense[1]


def test_firing_finalize_is_pure():
    tokens, acts = random_acts()
    accumulator = feed_shards(lambda: FiringAccumulator(D_SAE), tokens, acts, [12])
    first, second = accumulator.finalize(), accumulator.finalize()
    assert torch.equal(first.count, second.count) and torch.equal(first.max, second.max)
    first.max.zero_()
    assert torch.equal(accumulator.finalize().max, acts.max(0).values)
