"""The one streaming loop: tokens -> model (to the hook) -> SAE -> every accumulator.

Per batch of whole sequences: run the model only as far as needed (``stats/forward.py``), encode
with the SAE, extract the non-zero activations once (``TokenBatch``), and feed the same batch to
each accumulator. Accumulator memory depends on d_sae and the config, never on the number of
tokens; so does the loop's (one batch at a time).

The accumulators (each ``update / merge / finalize``; ``merge`` of disjoint token shards equals
one pass, or has the same distribution for the samplers), held together by ``FeatureStats``:
    firing.py      counts, float64 sums, maxima -> density, mean, max, dead, dense, l0
    histogram.py   exact per-feature histograms, power-of-two widths with range doubling
    topk.py        top-k tokens with their context windows
    quantiles.py   stratified reservoirs -> quantile intervals with uniform samples
    cofiring.py    exact pair counts from each token's active features (cofiring_sample.py:
                   sampled estimate above cofiring_exact_max_features)
    metrics.py     reconstruction MSE / explained variance, clean / spliced / zero-ablated loss

Speed: everything after the encoder works on the sparse non-zeros (x̂ too: a CSR matmul), and
the samplers only touch entries that beat a per-row threshold, so after a warm-up of a few
batches the pass costs little more than the forward and the encoder matmul
(``benchmarks/bench_pass.py`` measures it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from saesite.config import StatsConfig
from saesite.errors import SaesiteError
from saesite.sae.model import SAE
from saesite.stats.batch import TokenBatch
from saesite.stats.feature_range import FeatureRange
from saesite.stats.feature_stats import FeatureStats
from saesite.stats.forward import HookOutput, HookRunner
from saesite.stats.heap import reuse_freed_memory, trim_before

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

log = logging.getLogger(__name__)


def check_finite(x: Float[Tensor, "tok d_in"], first_seq: int, seq_len: int, hook: str) -> None:
    """Refuse NaN/Inf hook activations with their count and first place, before they spread."""
    bad = ~torch.isfinite(x)
    if not bool(bad.any()):
        return
    per_token = bad.any(-1)
    first = int(torch.nonzero(per_token)[0])
    raise SaesiteError(
        f"hook {hook!r} produced {int(bad.sum())} NaN/Inf value(s) in {int(per_token.sum())} "
        f"token(s), first at sequence {first_seq + first // seq_len} position "
        f"{first % seq_len}; expected finite activations (check the model weights and dtype)"
    )


def loss_sequences(cfg: StatsConfig, seq_len: int) -> int:
    """How many of the dataset's leading sequences the CE losses are computed on: ``ce_tokens``
    rounded up to whole sequences, all of them for None, none without ``ce_loss``."""
    if not cfg.ce_loss:
        return 0
    if cfg.ce_tokens is None:
        return 1 << 62
    return -(-cfg.ce_tokens // seq_len)


def n_predictions(measured: Bool[Tensor, "batch pos"] | None, n_loss: int, seq_len: int) -> int:
    """Next-token predictions the losses of the first ``n_loss`` sequences sum over: one per
    position but the last, made at a ``measured`` token (default all)."""
    if measured is None:
        return n_loss * (seq_len - 1)
    return int(measured[:n_loss, :-1].sum())


@torch.no_grad()
@reuse_freed_memory()  # each batch allocates the same large tensors again
def run_pass(
    model: HookedTransformer,
    sae: SAE,
    tokens: Int[Tensor, "n_seq seq_len"],
    hook: str,
    cfg: StatsConfig,
    seq_start: int = 0,
    features: FeatureRange | None = None,
    special_ids: Sequence[int] = (),
) -> FeatureStats:
    """Stream ``tokens`` (the dataset's sequences from ``seq_start`` on) through the model and
    SAE once; return the accumulators, not yet finalised (so shards can merge). ``features``:
    accumulate only those (a feature shard, ``stats/feature_range.py``).

    ``special_ids`` (BOS, EOS, padding: ``Tokenizer.special_ids``) are left out of L0, MSE,
    explained variance and the CE losses unless ``cfg.include_special_tokens``, as SAELens'
    run_evals does; the feature statistics see every token."""
    excluded = () if cfg.include_special_tokens else tuple(special_ids)
    stats = FeatureStats.empty(
        sae.cfg.d_sae, sae.cfg.d_in, cfg, tokens, seq_start, features, excluded
    )
    shard = None if stats.features.is_every else stats.features
    runner = HookRunner(model, sae, hook)
    loss_seqs = loss_sequences(cfg, tokens.shape[1])
    on_gpu = torch.device(cfg.device).type == "cuda"
    if on_gpu:  # page-locked: each batch's copy is asynchronous
        tokens = tokens.pin_memory()
    unchecked = None
    starts = range(0, tokens.shape[0], cfg.batch_size)
    for start in tqdm(starts, desc="statistics", unit="batch", disable=None, leave=False):
        # the last batch's freed temporaries go back before this one's forward (heap.py)
        trim_before(cfg.batch_size * tokens.shape[1] * sae.cfg.d_sae * sae.W_enc.element_size())
        batch_tokens = tokens[start : start + cfg.batch_size].to(cfg.device, non_blocking=True)
        n_loss = min(max(loss_seqs - (seq_start + start), 0), batch_tokens.shape[0])
        measured = stats.reconstruction.measured(batch_tokens)
        out = runner.run(batch_tokens, n_loss, measured)
        place = (seq_start + start, batch_tokens.shape[1], hook)
        if on_gpu:  # check the previous batch, already computed: no wait for this one
            if unchecked is not None:
                check_finite(*unchecked)
            unchecked = (out.x, *place)
        else:
            check_finite(out.x, *place)
        feed_batch(stats, out, batch_tokens, seq_start + start, shard, measured)
    if unchecked is not None:
        check_finite(*unchecked)
    return stats


def feed_batch(
    stats: FeatureStats,
    out: HookOutput,
    batch_tokens: Int[Tensor, "batch pos"],
    first: int,
    shard: FeatureRange | None = None,
    measured: Bool[Tensor, "batch pos"] | None = None,
) -> None:
    """One batch's SAE output (sequences ``first ..``) into every accumulator of ``stats``
    (with ``shard``, those of its features alone; ``measured``: the tokens the metrics count,
    ``stats.reconstruction.measured``). Consumes ``out.acts``: it is dropped once the
    per-feature accumulators have read it, before the CE continuation runs
    (``HookOutput.losses``), so the two are never in memory together."""
    if shard is None:
        acts, active, feature_start, all_active = out.acts, out.active, 0, None
    else:  # the shard's features, renumbered from 0; co-firing also reads all of them
        acts = out.acts[:, shard.start : shard.stop]
        active = out.active.restrict(shard.start, shard.stop)
        feature_start, all_active = shard.start, out.active
    batch = TokenBatch(
        token_ids=batch_tokens,
        seq_start=first,
        active=active,
        feature_start=feature_start,
        all_active=all_active,
    )
    stats.update(acts, batch)
    del acts
    out.acts = None
    # Positions order the float sums (stats/reduction.py), so shards reduce like one pass.
    stop = first + batch_tokens.shape[0]
    n_active = out.active.row_ptr().diff()
    flat_ids = batch_tokens.flatten()
    stats.reconstruction.update(out.x, out.x_hat, n_active, flat_ids, first, stop)
    loss = out.losses()
    if loss is not None:
        n_loss = loss.shape[1]
        predictions = n_predictions(measured, n_loss, batch_tokens.shape[1])
        stats.losses.update(loss, predictions, first, stop)


def shard_range(n_seq: int, batch_size: int, shard: int, n_shards: int) -> tuple[int, int]:
    """Sequences [first, stop) of shard ``shard`` of ``n_shards``: whole batches of the one-pass
    grid, as equal in number as possible, in dataset order (so every batch, and every activation
    in it, is the one a single pass computes)."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} of {n_shards}; expected 0 <= shard < {n_shards}")
    n_batches = -(-n_seq // batch_size)
    first = shard * n_batches // n_shards * batch_size
    stop = (shard + 1) * n_batches // n_shards * batch_size
    return min(first, n_seq), min(stop, n_seq)
