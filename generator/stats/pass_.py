"""The one streaming loop: tokens -> model (to the hook) -> SAE -> every accumulator.

Per batch of whole sequences: run the model only as far as needed (``stats/forward.py``), encode
with the SAE, extract the non-zero activations once (``TokenBatch``), and feed the same batch to
each accumulator. Accumulator memory depends on d_sae and the config, never on the number of
tokens; so does the loop's (one batch at a time).

The accumulators (each ``update / merge / finalize``; ``merge`` of disjoint token shards equals
one pass, or has the same distribution for the samplers):
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
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float, Int
from saesite.config import StatsConfig
from saesite.errors import SaesiteError
from saesite.sae.model import SAE
from saesite.stats.batch import TokenBatch
from saesite.stats.cofiring import Cofiring, CofiringAccumulator
from saesite.stats.cofiring_sample import SampledCofiringAccumulator
from saesite.stats.firing import FiringAccumulator, FiringStats
from saesite.stats.forward import HookRunner
from saesite.stats.heap import reuse_freed_memory
from saesite.stats.histogram import HistogramAccumulator, Histograms
from saesite.stats.metrics import LossAccumulator, ReconstructionAccumulator
from saesite.stats.quantiles import IntervalAccumulator, Intervals
from saesite.stats.topk import TopK, TopKAccumulator
from torch import Tensor
from tqdm.auto import tqdm

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PassResult:
    """Everything the streaming pass measured; tensors on the CPU."""

    n_seq: int
    seq_len: int
    context_before: int
    context_after: int
    firing: FiringStats
    histograms: Histograms
    topk: TopK
    intervals: Intervals
    cofiring: Cofiring
    metrics: dict[str, float | int | None]
    ablation: Tensor | None = None
    """[d_sae, k, width] change in next-token loss per top example (``cfg.ablation``)."""

    @property
    def n_tokens(self) -> int:
        return self.n_seq * self.seq_len


class FeatureAccumulators:
    """The per-feature accumulators of one shard, driven together."""

    def __init__(self, d_sae: int, cfg: StatsConfig):
        device = cfg.device
        self.firing = FiringAccumulator(d_sae, cfg.dense_threshold, device=device)
        self.histograms = HistogramAccumulator(d_sae, cfg.n_bins, device=device)
        self.topk = TopKAccumulator(
            d_sae, cfg.top_k, cfg.context_before, cfg.context_after, device=device
        )
        self.intervals = IntervalAccumulator(
            d_sae,
            cfg.n_bins,
            cfg.n_intervals,
            cfg.interval_samples,
            cfg.context_before,
            cfg.context_after,
            seed=cfg.seed,
            device=device,
        )
        if d_sae <= cfg.cofiring_exact_max_features:
            self.cofiring = CofiringAccumulator(d_sae, cfg.n_cofiring, device=device)
        else:
            self.cofiring = SampledCofiringAccumulator(
                d_sae,
                cfg.n_cofiring,
                cfg.cofiring_samples,
                cfg.cofiring_candidates,
                seed=cfg.seed + 1,
                device=device,
            )

    def all(self) -> list:
        return [self.firing, self.histograms, self.topk, self.intervals, self.cofiring]

    def update(self, acts, batch: TokenBatch) -> None:
        for accumulator in self.all():
            accumulator.update(acts, batch)

    def merge(self, other: FeatureAccumulators) -> None:
        for mine, theirs in zip(self.all(), other.all(), strict=True):
            mine.merge(theirs)


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


@torch.no_grad()
@reuse_freed_memory()  # each batch allocates the same large tensors again
def run_pass(
    model: HookedTransformer,
    sae: SAE,
    tokens: Int[Tensor, "n_seq seq_len"],
    hook: str,
    cfg: StatsConfig,
) -> PassResult:
    """Stream ``tokens`` through the model and SAE once and finalize every statistic."""
    n_seq, seq_len = tokens.shape
    d_sae = sae.cfg.d_sae
    features = FeatureAccumulators(d_sae, cfg)
    recon = ReconstructionAccumulator(sae.cfg.d_in, device=cfg.device)
    losses = LossAccumulator()
    runner = HookRunner(model, sae, hook, ce_loss=cfg.ce_loss)
    starts = range(0, n_seq, cfg.batch_size)
    for start in tqdm(starts, desc="statistics", unit="batch", disable=None, leave=False):
        batch_tokens = tokens[start : start + cfg.batch_size].to(cfg.device)
        out = runner.run(batch_tokens)
        check_finite(out.x, start, batch_tokens.shape[1], hook)
        batch = TokenBatch(token_ids=batch_tokens, seq_start=start, active=out.active)
        features.update(out.acts, batch)
        recon.update(out.x, out.x_hat)
        if out.loss is not None:
            losses.update(out.loss)
    firing = features.firing.finalize()
    metrics: dict[str, float | int | None] = {
        **recon.finalize(),
        "l0": firing.l0,
        "dead_count": int(firing.dead.sum()),
        "dense_count": int(firing.dense.sum()),
        **losses.finalize(),
    }
    topk = features.topk.finalize()
    ablation = None
    if cfg.ablation:
        from saesite.stats.ablation import ablation_effects

        ablation = ablation_effects(
            model,
            sae,
            tokens,
            hook,
            topk,
            cfg.context_before,
            cfg.context_after,
            cfg.batch_size,
            device=cfg.device,
        )
    return PassResult(
        n_seq=n_seq,
        seq_len=seq_len,
        context_before=cfg.context_before,
        context_after=cfg.context_after,
        firing=firing,
        histograms=features.histograms.finalize(),
        topk=topk,
        intervals=features.intervals.finalize(),
        cofiring=features.cofiring.finalize(),
        metrics=metrics,
        ablation=ablation,
    )
