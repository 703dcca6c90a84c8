"""``FeatureStats``: what ``compute`` hands to ``write_records``, before finalisation.

A plain container. Its fields are the streaming pass's accumulators, still open (so two shards
can ``merge``), the weight statistics, and what writing the records needs besides: the token ids
(the example windows show them) and the window. ``finalize`` turns it into ``FinalStats``: plain
tensors and the site's metrics, which ``records.build`` converts to dicts.

Sharding: a ``FeatureStats`` covers the contiguous sequences ``seq_start .. seq_start + n_seq -
1`` of the dataset (``token_ids`` holds exactly those rows); accumulators index tokens globally
(``seq * seq_len + pos``), so shards of one dataset merge without renumbering. ``merge`` takes
an adjacent shard (before or after this one) and leaves one ``FeatureStats`` over both.
A feature shard (``stats/feature_range.py``) holds accumulators for ``features`` only; shards
of one token range are put together by ``feature_range.join_feature_stats``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from saesite.config import StatsConfig
from saesite.stats.batch import TokenBatch
from saesite.stats.cofiring import Cofiring, CofiringAccumulator
from saesite.stats.cofiring_rows import CofiringRowsAccumulator
from saesite.stats.cofiring_sample import SampledCofiringAccumulator
from saesite.stats.feature_range import FeatureRange
from saesite.stats.firing import FiringAccumulator, FiringStats
from saesite.stats.histogram import HistogramAccumulator, Histograms
from saesite.stats.metrics import LossAccumulator, ReconstructionAccumulator
from saesite.stats.next_logit import NextLogit
from saesite.stats.quantiles import IntervalAccumulator, Intervals
from saesite.stats.topk import TopK, TopKAccumulator
from saesite.stats.weights import WeightStats
from saesite.stats.windows import Window


@dataclass(kw_only=True, eq=False)
class FeatureStats:
    """The accumulators of one pass (or of merged shards) and the weight statistics."""

    token_ids: Int[Tensor, "n_seq seq_len"]
    """The shard's token ids (int64, CPU): the examples' windows are read from them."""
    seq_start: int
    """Dataset index of the shard's first sequence."""
    window: Window
    """Context shown around each example token (``StatsConfig.context_before/after``)."""
    firing: FiringAccumulator
    """Counts, float64 sums, maxima -> density, mean, max, dead, dense, L0."""
    histograms: HistogramAccumulator
    """Per-feature activation histograms (power-of-two bin widths)."""
    topk: TopKAccumulator
    """Top-k tokens per feature with their context windows."""
    intervals: IntervalAccumulator
    """Stratified reservoirs -> quantile intervals with uniform samples."""
    cofiring: CofiringAccumulator | CofiringRowsAccumulator | SampledCofiringAccumulator
    """Exact co-firing pair counts (a feature shard's rows of them), or above
    ``cofiring_exact_max_features`` a sampled estimate."""
    reconstruction: ReconstructionAccumulator
    """Reconstruction MSE, explained variance and L0 at the hook over the measured tokens."""
    losses: LossAccumulator
    """Clean / spliced / zero-ablated next-token loss sums (empty without ``ce_loss``)."""
    features: FeatureRange | None = None
    """The features the per-feature accumulators cover (None: every feature of the SAE)."""
    weights: WeightStats | None = None
    """Statistics of the weights alone (the same for every shard); set by ``compute``."""
    ablation: Float[Tensor, "d_sae k width"] | None = None
    """Per top example, the change in next-token loss when its feature is ablated (computed on
    the final top-k, after any merge; ``StatsConfig.ablation``)."""
    next_logit: NextLogit | None = None
    """Per shown example, the feature's direct effect on the next token's logit (computed on
    the final examples, after any merge, with the weights)."""

    def __post_init__(self) -> None:
        if self.features is None:
            self.features = FeatureRange.every(self.firing.d_sae)

    @classmethod
    def empty(
        cls,
        d_sae: int,
        d_in: int,
        cfg: StatsConfig,
        token_ids: Int[Tensor, "n_seq seq_len"],
        seq_start: int = 0,
        features: FeatureRange | None = None,
        excluded_token_ids: tuple[int, ...] = (),
    ) -> FeatureStats:
        """Fresh accumulators for ``token_ids`` (sequences from ``seq_start`` on) and the
        features ``features`` (all by default); the global metrics leave out the tokens
        ``excluded_token_ids``."""
        device = cfg.device
        window = Window(cfg.context_before, cfg.context_after)
        features = features or FeatureRange.every(d_sae)
        width = features.width
        return cls(
            token_ids=token_ids.to("cpu", torch.int64),
            seq_start=seq_start,
            window=window,
            features=features,
            firing=FiringAccumulator(width, cfg.dense_threshold, device=device),
            histograms=HistogramAccumulator(width, cfg.n_bins, device=device),
            topk=TopKAccumulator(width, cfg.top_k, window, device=device),
            intervals=IntervalAccumulator(
                width,
                cfg.n_bins,
                cfg.n_intervals,
                cfg.interval_samples,
                window,
                seed=cfg.seed,
                device=device,
            ),
            cofiring=cofiring_accumulator(features, cfg),
            reconstruction=ReconstructionAccumulator(
                d_in, device=device, excluded_token_ids=excluded_token_ids
            ),
            losses=LossAccumulator(device=device),
        )

    @property
    def per_feature(self) -> list:
        """The accumulators fed every batch's SAE activations, in update order."""
        return [self.firing, self.histograms, self.topk, self.intervals, self.cofiring]

    @property
    def n_seq(self) -> int:
        return int(self.token_ids.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.token_ids.shape[1])

    def update(self, acts: Float[Tensor, "tok d_sae"], batch: TokenBatch) -> None:
        """Feed one batch's SAE activations to every per-feature accumulator."""
        for accumulator in self.per_feature:
            accumulator.update(acts, batch)

    def merge(self, other: FeatureStats) -> None:
        """Add an adjacent shard of the same dataset: afterwards ``self`` covers both."""
        if other.features != self.features:
            raise ValueError(
                f"cannot merge stats of features {other.features} into {self.features}; "
                "expected token shards of one feature range"
            )
        if other.window != self.window or other.seq_len != self.seq_len:
            raise ValueError(
                f"cannot merge stats with window {other.window} and seq_len {other.seq_len} into "
                f"{self.window}, {self.seq_len}; expected shards of one build"
            )
        if self.ablation is not None or other.ablation is not None:
            raise ValueError("ablation effects belong to the final top-k; compute them after merge")
        if self.next_logit is not None or other.next_logit is not None:
            raise ValueError("next-token logit effects belong to the final examples; after merge")
        if other.seq_start == self.seq_start + self.n_seq:
            self.token_ids = torch.cat([self.token_ids, other.token_ids])
        elif self.seq_start == other.seq_start + other.n_seq:
            self.token_ids = torch.cat([other.token_ids, self.token_ids])
            self.seq_start = other.seq_start
        else:
            raise ValueError(
                f"shard at sequences {other.seq_start}..{other.seq_start + other.n_seq - 1} is "
                f"not next to {self.seq_start}..{self.seq_start + self.n_seq - 1}; expected "
                "adjacent shards"
            )
        for mine, theirs in zip(self.per_feature, other.per_feature, strict=True):
            mine.merge(theirs)
        self.reconstruction.merge(other.reconstruction)
        self.losses.merge(other.losses)
        if self.weights is None:
            self.weights = other.weights

    def finalize(self) -> FinalStats:
        """Every statistic in final form (pure: mutates nothing, may be called twice)."""
        firing = self.firing.finalize()
        metrics: dict[str, float | int | list[int] | None] = {
            **self.reconstruction.finalize(),
            "l0_all_tokens": firing.l0,
            "dead_count": int(firing.dead.sum()),
            "dense_count": int(firing.dense.sum()),
            **self.losses.finalize(),
        }
        return FinalStats(
            token_ids=self.token_ids,
            seq_start=self.seq_start,
            window=self.window,
            firing=firing,
            histograms=self.histograms.finalize(),
            topk=self.topk.finalize(),
            intervals=self.intervals.finalize(),
            cofiring=self.cofiring.finalize(),
            metrics=metrics,
            weights=self.weights,
            ablation=self.ablation,
            next_logit=self.next_logit,
        )


def cofiring_accumulator(
    features: FeatureRange, cfg: StatsConfig
) -> CofiringAccumulator | CofiringRowsAccumulator | SampledCofiringAccumulator:
    """Exact pair counts up to ``cfg.cofiring_exact_max_features`` features (a feature shard's
    rows of them), else sampled."""
    d_sae = features.d_sae
    if d_sae <= cfg.cofiring_exact_max_features:
        if features.is_every:
            return CofiringAccumulator(d_sae, cfg.n_cofiring, device=cfg.device)
        return CofiringRowsAccumulator(features, cfg.n_cofiring, device=cfg.device)
    return SampledCofiringAccumulator(
        d_sae,
        cfg.n_cofiring,
        cfg.cofiring_samples,
        cfg.cofiring_candidates,
        seed=cfg.seed,  # the intervals' keys: each non-zero is hashed once per batch
        device=cfg.device,
        rows=features,
    )


@dataclass(frozen=True, kw_only=True)
class FinalStats:
    """Finalised statistics, tensors on the CPU: the input of ``records.build``."""

    token_ids: Int[Tensor, "n_seq seq_len"]
    seq_start: int
    window: Window
    firing: FiringStats
    histograms: Histograms
    topk: TopK
    intervals: Intervals
    cofiring: Cofiring
    metrics: dict[str, float | int | list[int] | None]
    """site.json ``metrics``: reconstruction, L0, dead / dense counts, losses."""
    weights: WeightStats | None
    """None when the statistics came from ``run_pass`` alone (``compute`` adds them)."""
    ablation: Float[Tensor, "d_sae k width"] | None
    next_logit: NextLogit | None = None

    @property
    def n_seq(self) -> int:
        return int(self.token_ids.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.token_ids.shape[1])

    @property
    def n_tokens(self) -> int:
        return self.n_seq * self.seq_len
