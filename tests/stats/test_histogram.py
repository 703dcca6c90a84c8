import numpy as np
import pytest
import torch

from saesite.stats.histogram import (
    E_EMPTY,
    HistogramAccumulator,
    bin_index,
    fold_bins,
    required_exponent,
)
from tests.stats.shards import D_SAE, SHARD_SPLITS, feed_shards, random_acts


@pytest.mark.parametrize("n_bins", [1, 7, 16, 64])
def test_required_exponent_is_the_smallest_that_fits(n_bins):
    values = torch.tensor([1e-30, 0.1, 0.5, 1.0, 3.0, 4.0, 7.999, 8.0, 1000.0, 2.0**100, 3e38])
    e = required_exponent(values, n_bins)
    for v, exponent in zip(values.double().tolist(), e.tolist(), strict=True):
        assert v < n_bins * 2.0**exponent
        assert v >= n_bins * 2.0 ** (exponent - 1)
    assert required_exponent(torch.tensor([0.0]), n_bins).item() == E_EMPTY


def test_folding_bins_keeps_every_count_in_the_bin_that_holds_its_value():
    gen = torch.Generator().manual_seed(1)
    values = torch.rand(500, generator=gen) * 16
    counts = torch.bincount(bin_index(values, torch.zeros(500, dtype=torch.long)), minlength=16)
    folded = fold_bins(counts[None], torch.tensor([2]))[0]
    direct = torch.bincount(bin_index(values, torch.full((500,), 2)), minlength=16)
    assert torch.equal(folded, direct)


@pytest.mark.parametrize("split", SHARD_SPLITS)
@pytest.mark.parametrize("n_bins", [8, 10])
def test_histogram_of_merged_shards_matches_numpy_on_final_edges(split, n_bins):
    tokens, acts = random_acts()
    hist = feed_shards(
        lambda: HistogramAccumulator(D_SAE, n_bins),
        tokens,
        acts,
        split,
        reverse_merge=len(split) % 2 == 0,
    ).finalize()
    for f in range(D_SAE):
        values = acts[:, f][acts[:, f] > 0].numpy()
        if values.size == 0:
            assert hist.counts[f].sum() == 0
            continue
        edges = np.array(hist.edges(f))
        expected, _ = np.histogram(values.astype(np.float64), bins=edges)
        assert hist.counts[f].tolist() == expected.tolist()
        assert edges[-1] / 2 <= values.max() < edges[-1]  # max in the upper half


def test_histogram_merge_in_any_order_gives_identical_counts():
    tokens, acts = random_acts(seed=3)
    make = lambda: HistogramAccumulator(D_SAE, 16)  # noqa: E731
    one = feed_shards(make, tokens, acts, [12]).finalize()
    for split in SHARD_SPLITS[1:]:
        for reverse in (False, True):
            merged = feed_shards(make, tokens, acts, split, reverse_merge=reverse).finalize()
            assert torch.equal(merged.counts, one.counts)
            assert torch.equal(merged.exponent, one.exponent)
