import torch

from saesite.stats.grouping import rank_within_group, smallest_per_group


def test_rank_within_group_counts_from_zero_in_each_group():
    group = torch.tensor([0, 0, 0, 2, 5, 5])
    assert rank_within_group(group).tolist() == [0, 1, 2, 0, 0, 1]


def test_smallest_per_group_keeps_the_s_smallest_keys_of_each_group_in_order():
    gen = torch.Generator().manual_seed(0)
    group = torch.randint(0, 6, (200,), generator=gen)
    key = torch.rand(200, generator=gen)
    chosen, rank = smallest_per_group(group, key, 3)
    for g in range(6):
        expected = torch.nonzero(group == g).squeeze(1)
        expected = expected[torch.argsort(key[expected])][:3]
        assert chosen[group[chosen] == g].tolist() == expected.tolist()
        assert rank[group[chosen] == g].tolist() == list(range(expected.numel()))
