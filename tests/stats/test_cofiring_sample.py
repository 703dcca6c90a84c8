import pytest
import torch

from saesite.stats.batch import SparseActs
from saesite.stats.cofiring_sample import SampledCofiringAccumulator, coactive_sets
from tests.stats.shards import D_SAE, SHARD_SPLITS, batches, random_acts


def run_shards(tokens, acts, split, samples, candidates=D_SAE, n_cofiring=4, seed=0):
    shards, first = [], 0
    for shard, n_seq in enumerate(split):
        acc = SampledCofiringAccumulator(
            D_SAE, n_cofiring, samples, candidates, seed=seed * 100 + shard
        )
        for batch_acts, batch in batches(tokens, acts, first, n_seq, batch_size=3):
            acc.update(batch_acts, batch)
        shards.append(acc)
        first += n_seq
    head = shards[0]
    for other in shards[1:]:
        head.merge(other)
    return head.finalize()


def exact_cooccurrence(acts):
    fires = (acts > 0).double()
    return (fires.T @ fires).long()


@pytest.mark.parametrize("split", SHARD_SPLITS)
def test_cofiring_is_exact_when_every_firing_fits_in_the_sample(split):
    tokens, acts = random_acts()
    result = run_shards(tokens, acts, split, samples=acts.shape[0])
    both = exact_cooccurrence(acts)
    n = both.diagonal()
    for f in range(D_SAE):
        row = both[f].clone()
        row[f] = 0
        order = torch.sort(row, descending=True, stable=True).indices[:4]
        order = order[row[order] > 0]
        assert result.index[f, : order.numel()].tolist() == order.tolist()
        assert (result.index[f, order.numel() :] == -1).all()
        assert result.count[f, : order.numel()].tolist() == row[order].tolist()
        jaccard = row[order].double() / (n[f] + n[order] - row[order])
        assert torch.allclose(result.jaccard[f, : order.numel()], jaccard)


def test_coactive_sets_keep_the_largest_activations_of_crowded_tokens():
    acts = torch.tensor([[0.0, 3.0, 1.0, 2.0, 0.5], [0.0, 0.0, 4.0, 0.0, 0.0]])
    active = SparseActs.from_dense(acts)
    sets = coactive_sets(active, torch.tensor([0, 1]), width=2)
    assert sets[0].tolist() == [1, 3] and sets[1].tolist() == [2, -1]


def test_cofiring_estimate_from_small_samples_is_unbiased_across_seeds():
    tokens, acts = random_acts()
    f = 1  # fires on every token
    exact = exact_cooccurrence(acts)[f]
    estimates = torch.zeros(D_SAE, dtype=torch.float64)
    runs = 60
    for seed in range(runs):
        result = run_shards(tokens, acts, [6, 6], samples=20, n_cofiring=D_SAE - 1, seed=seed)
        valid = result.index[f] >= 0
        estimates[result.index[f][valid]] += result.count[f][valid].double()
    estimates /= runs
    others = [g for g in range(D_SAE) if g != f]
    # n_f = 120, m = 20: per-run sd <= 120 / (2·sqrt(20)) ≈ 13.4, so the mean's sd <= ~1.8.
    assert torch.allclose(estimates[others], exact[others].double(), atol=8)


def test_most_frequent_counts_values_per_row_and_breaks_ties_by_smaller_value():
    from saesite.stats.cofiring_sample import most_frequent

    ids = torch.tensor([[5, 3, 5, 9, 3, 1, 9, 9], [9, 9, 9, 9, 2, 9, 9, 9]])
    value, count = most_frequent(ids, 3, none=9)
    assert value.tolist() == [[3, 5, 1], [2, -1, -1]]
    assert count.tolist() == [[2, 2, 1], [1, 0, 0]]
