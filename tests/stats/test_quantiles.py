import numpy as np
import pytest
import torch

from saesite.stats.histogram import HistogramAccumulator
from saesite.stats.quantiles import IntervalAccumulator
from saesite.stats.windows import Window
from tests.stats.shards import D_SAE, SEQ_LEN, SHARD_SPLITS, batches, random_acts

N_BINS, N_INTERVALS, SAMPLES, BEFORE, AFTER = 16, 3, 4, 2, 1


def run_shards(tokens, acts, split, n_bins=N_BINS, seed=0):
    """One accumulator per shard (its own seed), merged; and the histogram of the same data."""
    shards, first = [], 0
    hist = HistogramAccumulator(D_SAE, n_bins)
    for shard, n_seq in enumerate(split):
        acc = IntervalAccumulator(
            D_SAE, n_bins, N_INTERVALS, SAMPLES, Window(BEFORE, AFTER), seed=seed * 100 + shard
        )
        for batch_acts, batch in batches(tokens, acts, first, n_seq, batch_size=2):
            acc.update(batch_acts, batch)
            hist.update(batch_acts, batch)
        shards.append(acc)
        first += n_seq
    head = shards.pop()
    for other in shards:
        head.merge(other)
    return head.finalize(), hist.finalize()


@pytest.mark.parametrize("split", SHARD_SPLITS)
def test_intervals_have_exact_fractions_and_bounds_on_histogram_edges(split):
    tokens, acts = random_acts()
    intervals, hist = run_shards(tokens, acts, split)
    for f in range(D_SAE):
        values = acts[:, f][acts[:, f] > 0].double()
        live = ~torch.isnan(intervals.lo[f])
        if values.numel() == 0:
            assert not live.any()
            continue
        edges = np.array(hist.edges(f))
        occupied_pairs = len(
            {int(np.searchsorted(edges, v, side="right") - 1) // 2 for v in values.tolist()}
        )
        assert int(live.sum()) == min(N_INTERVALS, occupied_pairs)
        lo, hi = intervals.lo[f][live], intervals.hi[f][live]
        assert (hi[:-1] <= lo[1:]).all() and lo[0] <= values.min() and values.max() < hi[-1]
        assert all(bound in edges for bound in lo.tolist() + hi.tolist())
        for i in range(int(live.sum())):
            inside = ((values >= lo[i]) & (values < hi[i])).sum().item()
            assert intervals.fraction[f, i].item() == pytest.approx(inside / values.numel())
            assert inside > 0
        assert intervals.fraction[f][live].sum().item() == pytest.approx(1.0)


@pytest.mark.parametrize("split", SHARD_SPLITS)
def test_interval_samples_are_real_firings_inside_their_interval_with_their_windows(split):
    tokens, acts = random_acts()
    intervals, _ = run_shards(tokens, acts, split)
    for f in range(D_SAE):
        for i in range(N_INTERVALS):
            if torch.isnan(intervals.lo[f, i]):
                assert (intervals.index[f, i] == -1).all()
                continue
            lo, hi = intervals.lo[f, i].item(), intervals.hi[f, i].item()
            column = acts[:, f].double()
            n_inside = int(((column >= lo) & (column < hi) & (column > 0)).sum())
            kept = intervals.index[f, i][intervals.index[f, i] >= 0]
            assert kept.numel() == min(SAMPLES, n_inside)
            assert len(set(kept.tolist())) == kept.numel()
            values = intervals.values[f, i, : kept.numel()]
            assert torch.equal(values, acts[kept, f]) and (values[:-1] >= values[1:]).all()
            assert ((values >= lo) & (values < hi)).all()
            for slot, token in enumerate(kept.tolist()):
                seq, pos = divmod(token, SEQ_LEN)
                start = max(pos - BEFORE, 0)
                length = min(pos + AFTER, SEQ_LEN - 1) - start + 1
                window = acts[seq * SEQ_LEN + start : seq * SEQ_LEN + start + length, f]
                got = intervals.windows[f, i, slot, :length]
                assert torch.equal(got, window.half().float())


def test_interval_samples_are_uniform_over_the_interval_across_seeds():
    """Every firing of a one-interval feature is picked with probability samples / firings."""
    tokens, acts = random_acts()
    acts[:, 4] = 0
    firing_rows = torch.arange(3, 120, 6)  # 20 firings, all in the same reservoir bin
    acts[firing_rows, 4] = 1.0 + torch.arange(20) / 1000
    picked = torch.zeros(acts.shape[0])
    runs = 80
    for seed in range(runs):
        intervals, _ = run_shards(tokens, acts, [5, 7], seed=seed)
        kept = intervals.index[4, 0]
        picked[kept[kept >= 0]] += 1
    assert picked[firing_rows].sum() == runs * SAMPLES
    expected = runs * SAMPLES / 20  # 16 per firing; binomial sd ~3.6
    assert (picked[firing_rows] - expected).abs().max() < 12
