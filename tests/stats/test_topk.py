import pytest
import torch

from saesite.stats.topk import TopKAccumulator
from saesite.stats.windows import Window
from tests.stats.shards import D_SAE, SEQ_LEN, SHARD_SPLITS, feed_shards, random_acts


def brute_force_topk(acts: torch.Tensor, k: int) -> list[list[tuple[float, int]]]:
    out = []
    for f in range(acts.shape[1]):
        entries = [(v, t) for t, v in enumerate(acts[:, f].tolist()) if v > 0]
        out.append(sorted(entries, key=lambda e: (-e[0], e[1]))[:k])
    return out


@pytest.mark.parametrize("split", SHARD_SPLITS)
@pytest.mark.parametrize("k", [1, 3, 40])
def test_topk_merge_of_shards_equals_brute_force_values_positions_and_windows(split, k):
    tokens, acts = random_acts()
    before, after = 3, 2
    top = feed_shards(
        lambda: TopKAccumulator(D_SAE, k, Window(before, after)),
        tokens,
        acts,
        split,
        reverse_merge=len(split) > 2,
    ).finalize()
    expected = brute_force_topk(acts, k)
    for f in range(D_SAE):
        n = len(expected[f])
        got = list(zip(top.values[f, :n].tolist(), top.index[f, :n].tolist(), strict=True))
        assert got == expected[f]
        assert (top.index[f, n:] == -1).all() and torch.isinf(top.values[f, n:]).all()
        for slot, (_, token) in enumerate(expected[f]):
            seq, pos = divmod(token, SEQ_LEN)
            start = max(pos - before, 0)
            length = min(pos + after, SEQ_LEN - 1) - start + 1
            window = acts[seq * SEQ_LEN + start : seq * SEQ_LEN + start + length, f]
            assert torch.equal(top.windows[f, slot, :length], window)
            assert (top.windows[f, slot, length:] == 0).all()


def test_topk_ties_are_broken_by_the_earlier_token():
    tokens, acts = random_acts()
    acts[:, 5] = 0
    acts[[3, 17, 60, 61, 99], 5] = 2.0
    top = feed_shards(
        lambda: TopKAccumulator(D_SAE, 3, Window(1, 1)), tokens, acts, [4, 8], reverse_merge=True
    ).finalize()
    assert top.index[5].tolist() == [3, 17, 60]
