"""Random sparse activations with ties, and a helper that feeds them to accumulators in shards."""

from __future__ import annotations

from collections.abc import Callable

import torch

from saesite.stats.batch import TokenBatch

N_SEQ, SEQ_LEN, D_SAE = 12, 10, 24
SHARD_SPLITS = [[12], [5, 7], [1, 4, 3, 4], [3, 3, 3, 3]]
"""Sequences per shard; every split covers the same 12 sequences."""


def random_acts(
    n_seq: int = N_SEQ, seq_len: int = SEQ_LEN, d_sae: int = D_SAE, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens [n_seq, seq_len], acts [n_seq·seq_len, d_sae]): sparse, with ties and exact powers
    of two, feature 0 dead, feature 1 firing everywhere, feature 2 with one huge value."""
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 50, (n_seq, seq_len), generator=gen)
    scale = torch.rand(d_sae, generator=gen) * 8 + 0.01
    values = torch.round(torch.rand(n_seq * seq_len, d_sae, generator=gen) * 16) / 16 * scale
    fires = torch.rand(n_seq * seq_len, d_sae, generator=gen) < 0.25
    acts = torch.where(fires, values, 0.0)
    acts[:, 0] = 0
    acts[:, 1] = acts[:, 1].clamp_min(0.5)
    acts[95, 2] = 1000.0  # late, so the histogram range must double
    acts[9, 3] = 4.0  # exactly a power of two
    return tokens, acts


def batches(
    tokens: torch.Tensor, acts: torch.Tensor, first_seq: int, n_seq: int, batch_size: int = 2
):
    seq_len, d_sae = tokens.shape[1], acts.shape[1]
    for start in range(first_seq, first_seq + n_seq, batch_size):
        stop = min(start + batch_size, first_seq + n_seq)
        batch_acts = acts[start * seq_len : stop * seq_len].reshape(-1, d_sae)
        yield batch_acts, TokenBatch.from_acts(tokens[start:stop], start, batch_acts)


def feed_shards(
    make: Callable,
    tokens: torch.Tensor,
    acts: torch.Tensor,
    split: list[int],
    reverse_merge: bool = False,
):
    """One accumulator per shard of consecutive sequences, merged into the first (or the last)."""
    shards, first = [], 0
    for n_seq in split:
        accumulator = make()
        for batch_acts, batch in batches(tokens, acts, first, n_seq, batch_size=1 + n_seq % 3):
            accumulator.update(batch_acts, batch)
        shards.append(accumulator)
        first += n_seq
    if reverse_merge:
        shards.reverse()
    head = shards[0]
    for other in shards[1:]:
        head.merge(other)
    return head
