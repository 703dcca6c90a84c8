"""SAEs on a toy model's hidden layer: training (`fit_sae`), recovery tables, latent records.

An SAE instance reads one bottleneck instance's hidden vectors ``h = W x`` and has one latent per
true feature (``d_sae = n_features``, as in ARENA's exercise). True feature f's direction in the
hidden space is the column ``W[:, f]``; latent j's is its decoder row ``W_dec[j]``;

    cos(j, f) = Ŵ_dec[j] · Ŵ[:, f]

Feature f is *recovered* when its best latent has cos >= RECOVERED_COSINE; a latent *matches* the
feature of its best cosine when that is >= MATCH_COSINE. Only features the model represents
(‖W[:, f]‖ >= REPRESENTED_NORM) can be recovered in any meaningful sense.

Initialisation is ARENA's (independent Kaiming-uniform encoder and decoder, zero biases): unlike
a tied start it lets latents die, which is what resampling is there to fix. Dead means "did not
fire for RESAMPLE_WINDOW steps" (10 × 512 inputs at the default batch): a latent that has found
a feature fires on ~1% of inputs, about fifty times in that window, while a stranded one (its
encoder and decoder pointing different ways) fires a few times in 10⁵ inputs. A window of
hundreds of steps, right for language models, never catches such a latent here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from saesite.config import StatsConfig, TrainSaeConfig
from saesite.records.build import histogram_records, interval_records
from saesite.records.rounding import round_significant, rounded
from saesite.records.schema import Example, FeatureRecord, example_record, feature_record
from saesite.sae.model import SAE, SaeConfig
from saesite.stats.batch import TokenBatch
from saesite.stats.firing import FiringAccumulator, FiringStats
from saesite.stats.histogram import HistogramAccumulator, Histograms
from saesite.stats.quantiles import IntervalAccumulator, Intervals
from saesite.stats.topk import TopK, TopKAccumulator
from saesite.stats.windows import Window
from saesite.toy.data import ToyDataConfig, sample_features

RECOVERED_COSINE = 0.95
MATCH_COSINE = 0.9
REPRESENTED_NORM = 0.5
RESAMPLE_EVERY = 200
RESAMPLE_WINDOW = 10
N_NEIGHBOURS = 8
RESAMPLE_UNTIL = 0.6
"""Resample until this fraction of the steps, so resampled latents have time to settle."""


@dataclass(frozen=True, kw_only=True)
class ToySaeConfig:
    """One SAE on one toy instance."""

    d_sae: int
    l1: float = 0.8
    """L1 coefficient; the MSE is summed over the hidden dimensions (see saesite.train.sae)."""
    steps: int = 5000
    batch_size: int = 512
    lr: float = 1e-3
    resample: Literal["anthropic", "random", "none"] = "anthropic"
    seed: int = 0
    device: str = "cpu"

    def train_config(self) -> TrainSaeConfig:
        return TrainSaeConfig(
            out="",
            architecture="standard",
            d_sae=self.d_sae,
            l1=self.l1,
            lr=self.lr,
            steps=self.steps,
            batch_size=self.batch_size,
            resample=self.resample,
            resample_every=min(RESAMPLE_EVERY, self.steps),
            resample_window=RESAMPLE_WINDOW,
            resample_until=int(RESAMPLE_UNTIL * self.steps),
            log_every=max(1, self.steps // 100),
            checkpoint_every=self.steps,
            seed=self.seed,
            device=self.device,
        )


def init_toy_sae_(sae: SAE, generator: torch.Generator) -> SAE:
    """ARENA's start: W_enc and W_dec independent Kaiming-uniform, decoder rows unit, biases 0."""
    d_in, d_sae = sae.cfg.d_in, sae.cfg.d_sae
    bound = math.sqrt(6.0 / (d_in * d_sae))
    with torch.no_grad():
        sae.W_enc.uniform_(-bound, bound, generator=generator)
        sae.W_dec.uniform_(-bound, bound, generator=generator)
        sae.normalize_decoder_()
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def hidden_batches(
    W: Float[Tensor, "n_hidden n_features"],
    data: ToyDataConfig,
    p: float,
    generator: torch.Generator,
    batch_size: int,
) -> Iterator[Float[Tensor, "batch n_hidden"]]:
    """Endless hidden vectors h = W x of one instance, x drawn from ``generator``."""
    W_t = W.detach().T.contiguous()
    while True:
        yield sample_features(data, p, batch_size, generator) @ W_t


def fit_toy_sae(
    W: Float[Tensor, "n_hidden n_features"],
    data: ToyDataConfig,
    p: float,
    generator: torch.Generator,
    cfg: ToySaeConfig,
) -> tuple[SAE, dict]:
    """Train one SAE on one instance's hidden layer with ``saesite.train.sae.fit_sae``."""
    from saesite.train.sae import fit_sae

    sae = SAE(
        SaeConfig(
            d_in=W.shape[0],
            d_sae=cfg.d_sae,
            apply_b_dec_to_input=True,
            hook_name="toy.hidden",
            model_name="toy",
        )
    )
    init_toy_sae_(sae, torch.Generator().manual_seed(cfg.seed))
    sae.to(cfg.device)
    log = fit_sae(sae, hidden_batches(W, data, p, generator, cfg.batch_size), cfg.train_config())
    return sae, log


def cosine_matrix(
    W_dec: Float[Tensor, "d_sae n_hidden"], W: Float[Tensor, "n_hidden n_features"]
) -> Float[Tensor, "d_sae n_features"]:
    """cos(j, f) between decoder row j and true feature direction W[:, f] (0 for a zero W[:, f])."""
    dec = W_dec / W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
    true = W / W.norm(dim=0, keepdim=True).clamp_min(1e-12)
    return dec @ true


def recovery_table(
    W_dec: Float[Tensor, "d_sae n_hidden"], W: Float[Tensor, "n_hidden n_features"]
) -> dict:
    """Per true feature its best latent and cosine; per latent its matching feature or None."""
    cos = cosine_matrix(W_dec.detach().double(), W.detach().double())
    norms = W.detach().norm(dim=0).tolist()
    best_latent = cos.max(dim=0)
    best_feature = cos.max(dim=1)
    features = [
        {
            "feature": f,
            "latent": int(j),
            "cosine": rounded(c),
            "represented": n >= REPRESENTED_NORM,
            "recovered": c >= RECOVERED_COSINE,
        }
        for f, (j, c, n) in enumerate(
            zip(best_latent.indices.tolist(), best_latent.values.tolist(), norms, strict=True)
        )
    ]
    latents = [
        {"latent": j, "feature": int(f) if c >= MATCH_COSINE else None, "cosine": rounded(c)}
        for j, (f, c) in enumerate(
            zip(best_feature.indices.tolist(), best_feature.values.tolist(), strict=True)
        )
    ]
    return {"features": features, "latents": latents}


LATENT_PAGE_STATS = StatsConfig(top_k=10, n_intervals=5, interval_samples=3, n_bins=32)
"""How much of each latent the toy site's feature pages show (``seed`` is set per instance)."""


@dataclass(frozen=True)
class LatentStats:
    """The language-model build's finalised statistics, over toy inputs."""

    firing: FiringStats
    histograms: Histograms
    topk: TopK
    intervals: Intervals


@torch.no_grad()
def latent_stats(acts: Float[Tensor, "n d_sae"], cfg: StatsConfig) -> LatentStats:
    """The accumulators of ``stats/`` over the latents' activations, each input a sequence of
    length 1 (global token index = input index; the window is the input itself, whatever
    ``cfg``'s context)."""
    n, d_sae = acts.shape
    window = Window(0, 0)
    firing = FiringAccumulator(d_sae, cfg.dense_threshold)
    histograms = HistogramAccumulator(d_sae, cfg.n_bins)
    topk = TopKAccumulator(d_sae, cfg.top_k, window)
    intervals = IntervalAccumulator(
        d_sae, cfg.n_bins, cfg.n_intervals, cfg.interval_samples, window, seed=cfg.seed
    )
    batch = TokenBatch.from_acts(torch.zeros(n, 1, dtype=torch.int64), 0, acts)
    for accumulator in (firing, histograms, topk, intervals):
        accumulator.update(acts, batch)
    return LatentStats(
        firing=firing.finalize(),
        histograms=histograms.finalize(),
        topk=topk.finalize(),
        intervals=intervals.finalize(),
    )


@torch.no_grad()
def latent_records(
    sae: SAE,
    x: Float[Tensor, "n n_features"],
    W: Float[Tensor, "n_hidden n_features"],
    *,
    first_index: int,
    labels: list[str],
    cfg: StatsConfig = LATENT_PAGE_STATS,
) -> list[FeatureRecord]:
    """Feature JSON records (docs/schema.md) of every latent over the inputs ``x``.

    The statistics are the language-model build's (``latent_stats``), so every panel means
    the same on both sites. An example is one input vector: ``tokens`` are the true-feature
    names, ``token_ids`` their indices, ``acts`` the input's feature values, ``act`` the
    latent's activation, ``seq`` the sample's index, ``window_start`` 0 and ``pos`` the input's
    largest feature (so the pages' "fires on" names the true feature that was most on).
    """
    acts = sae.encode(x @ W.T)  # (n, d_sae)
    d_sae = acts.shape[1]
    stats = latent_stats(acts, cfg)
    names = [f"f{f}" for f in range(x.shape[1])]
    ids = list(range(x.shape[1]))
    x_rounded = round_significant(x.numpy()).tolist()
    largest = x.abs().argmax(dim=1).tolist()

    def examples(values: Tensor, index: Tensor) -> list[list[Example]]:
        """Per row of [rows, n] (act, input index), the examples of the inputs (index >= 0)."""
        return [
            [
                example_record(
                    act=act,
                    seq=row,
                    pos=largest[row],
                    window_start=0,
                    tokens=names,
                    token_ids=ids,
                    acts=x_rounded[row],
                )
                for act, row in zip(row_values, row_index, strict=True)
                if row >= 0
            ]
            for row_values, row_index in zip(values.tolist(), index.tolist(), strict=True)
        ]

    firing, intervals = stats.firing, stats.intervals
    histograms = histogram_records(stats.histograms.counts, stats.histograms.exponent, firing.dead)
    top_examples = examples(stats.topk.values, stats.topk.index)
    quantiles = interval_records(
        intervals.lo,
        intervals.hi,
        intervals.fraction,
        examples(intervals.values.flatten(0, 1), intervals.index.flatten(0, 1)),
    )
    dec = sae.W_dec / sae.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
    enc = sae.W_enc / sae.W_enc.norm(dim=0, keepdim=True).clamp_min(1e-12)
    dec_cos = dec @ dec.T
    records = []
    for j in range(d_sae):
        others = [g for g in range(d_sae) if g != j]
        others.sort(key=lambda g: (-float(dec_cos[j, g]), g))
        records.append(
            feature_record(
                index=first_index + j,
                label=labels[j],
                density=float(firing.density[j]),
                max_activation=float(firing.max[j]),
                mean_activation=float(firing.mean[j]),
                dead=bool(firing.dead[j]),
                dense=bool(firing.dense[j]),
                histogram=histograms[j],
                top_examples=top_examples[j],
                quantile_examples=quantiles[j],
                neighbours=[
                    {"index": first_index + g, "cosine": float(dec_cos[j, g])}
                    for g in others[:N_NEIGHBOURS]
                ],
                encoder_decoder_cosine=float(enc[:, j] @ dec[j]),
                token_separator=" ",  # the "tokens" are feature names: f0 f1 f2, not f0f1f2
            )
        )
    return records
