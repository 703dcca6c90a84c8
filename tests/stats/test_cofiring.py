"""Exact co-firing counts against a brute-force count over the whole activation matrix."""

import pytest
import torch

from saesite.stats.batch import SparseActs, TokenBatch
from saesite.stats.cofiring import CofiringAccumulator, active_pairs, pair_offset
from tests.stats.shards import D_SAE, SHARD_SPLITS, feed_shards, random_acts


def brute_force(acts: torch.Tensor) -> torch.Tensor:
    """C[f, g]: tokens on which both fire, by a dense matmul of the firing indicator."""
    fires = (acts > 0).double()
    both = (fires.T @ fires).long()
    both.fill_diagonal_(0)
    return both


def expected_top(both: torch.Tensor, n: int) -> list[list[int]]:
    out = []
    for row in both:
        order = torch.sort(row, descending=True, stable=True).indices[:n]  # ties: smaller index
        out.append([g for g in order.tolist() if row[g] > 0])
    return out


@pytest.mark.parametrize("split", SHARD_SPLITS)
def test_cofiring_counts_equal_brute_force_for_any_sharding(split):
    tokens, acts = random_acts()
    acc = feed_shards(lambda: CofiringAccumulator(D_SAE, n_cofiring=5), tokens, acts, split)
    both = brute_force(acts)
    assert torch.equal(acc.rows(0, D_SAE), both)
    result = acc.finalize()
    assert result.exact
    n = (acts > 0).sum(0)
    for f, partners in enumerate(expected_top(both, 5)):
        k = len(partners)
        assert result.index[f, :k].tolist() == partners
        assert (result.index[f, k:] == -1).all()
        assert result.count[f, :k].tolist() == both[f, partners].tolist()
        jaccard = both[f, partners].double() / (n[f] + n[partners] - both[f, partners])
        assert torch.allclose(result.jaccard[f, :k], jaccard)


def test_finalize_is_pure_and_tokens_with_one_or_no_active_feature_add_no_pairs():
    acts = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [2.0, 0.0, 3.0]])
    acc = CofiringAccumulator(3, n_cofiring=2)
    acc.update(acts, TokenBatch.from_acts(torch.zeros(1, 3, dtype=torch.long), 0, acts))
    first, second = acc.finalize(), acc.finalize()
    assert torch.equal(first.index, second.index)
    assert first.index.tolist() == [[2, -1], [-1, -1], [0, -1]]
    assert first.count.tolist() == [[1, 0], [0, 0], [1, 0]]


def test_packed_pair_index_covers_the_upper_triangle_once():
    d = 7
    f, g = torch.triu_indices(d, d, offset=1)
    assert (pair_offset(f, d) + g).tolist() == list(range(d * (d - 1) // 2))


def test_pairs_are_generated_in_chunks_of_tokens_as_in_one_go():
    _, acts = random_acts()
    active = SparseActs.from_dense(acts)
    whole = active_pairs(active, 0, acts.shape[0])
    parts = torch.cat(
        [active_pairs(active, s, min(s + 7, acts.shape[0])) for s in range(0, acts.shape[0], 7)]
    )
    assert torch.equal(whole, parts)
