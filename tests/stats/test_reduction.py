import random

import torch

from saesite.stats.keys import EMPTY, feature_salts, mix, sample_keys
from saesite.stats.reduction import TreeReduction

MASK = (1 << 64) - 1


def splitmix64_finaliser(z: int) -> int:
    """The reference: splitmix64's finaliser on unsigned 64-bit integers."""
    z &= MASK
    z ^= z >> 30
    z = (z * 0xBF58476D1CE4E5B9) & MASK
    z ^= z >> 27
    z = (z * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def test_mix_on_int64_tensors_is_splitmix64_on_unsigned_integers():
    values = torch.randint(-(2**63), 2**63 - 1, (2000,), dtype=torch.int64)
    got = [v & MASK for v in mix(values).tolist()]
    assert got == [splitmix64_finaliser(v) for v in values.tolist()]


def test_sample_keys_are_distinct_per_feature_and_roughly_uniform():
    salts = feature_salts(7, 4)
    tokens = torch.arange(200_000)
    keys = sample_keys(salts, torch.full_like(tokens, 3), tokens)
    assert keys.unique().numel() == tokens.numel() and not (keys == EMPTY).any()
    below_zero = (keys < 0).double().mean().item()
    assert abs(below_zero - 0.5) < 0.01
    other = sample_keys(salts, torch.full_like(tokens, 2), tokens)
    assert (keys == other).sum() == 0


def leaves(n: int, seed: int) -> list[tuple[int, int, torch.Tensor]]:
    """(position, stop, value): batches of 1-3 sequences with float64 values of mixed scale."""
    gen = torch.Generator().manual_seed(seed)
    out, position = [], 0
    for _ in range(n):
        size = int(torch.randint(1, 4, (1,), generator=gen))
        value = torch.randn(5, generator=gen, dtype=torch.float64) * 10.0 ** torch.randint(
            -8, 9, (5,), generator=gen
        )
        out.append((position, position + size, value))
        position += size
    return out


def reduce(parts) -> TreeReduction:
    tree = TreeReduction()
    for position, stop, value in parts:
        tree.add(position, value, stop)
    return tree


def test_tree_reduction_of_shards_merged_in_any_order_is_bitwise_one_pass():
    items = leaves(37, seed=1)
    one = reduce(items).result()
    sequential = sum((value for _, _, value in items), torch.zeros(5, dtype=torch.float64))
    assert torch.allclose(one, sequential, rtol=1e-12)
    rng = random.Random(0)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(items)), rng.randint(1, 8)))
        shards = [reduce(items[a:b]) for a, b in zip([0, *cuts], [*cuts, len(items)])]
        rng.shuffle(shards)
        head = shards[0]
        for other in shards[1:]:
            head.merge(other)
        assert torch.equal(head.result(), one)


def test_tree_reduction_state_dict_round_trips_and_keeps_merging_exactly():
    items = leaves(11, seed=2)
    left, right = reduce(items[:6]), reduce(items[6:])
    restored = TreeReduction()
    restored.load_state_dict(left.state_dict("sums"), "sums")
    restored.merge(right)
    assert torch.equal(restored.result(), reduce(items).result())
