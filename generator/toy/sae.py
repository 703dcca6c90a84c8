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

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from saesite.config import TrainSaeConfig
from saesite.records.build import round_significant
from saesite.records.schema import Example, FeatureRecord, example_record, feature_record
from saesite.sae.model import SAE, SaeConfig
from saesite.stats.histogram import required_exponent
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
            "cosine": _r(c),
            "represented": n >= REPRESENTED_NORM,
            "recovered": c >= RECOVERED_COSINE,
        }
        for f, (j, c, n) in enumerate(
            zip(best_latent.indices.tolist(), best_latent.values.tolist(), norms, strict=True)
        )
    ]
    latents = [
        {"latent": j, "feature": int(f) if c >= MATCH_COSINE else None, "cosine": _r(c)}
        for j, (f, c) in enumerate(
            zip(best_feature.indices.tolist(), best_feature.values.tolist(), strict=True)
        )
    ]
    return {"features": features, "latents": latents}


def _r(value: float, digits: int = 4) -> float:
    return float(round_significant(np.array([value]), digits)[0])


def _histogram(values: Float[Tensor, " n"], n_bins: int) -> dict:
    """Power-of-two-width bins over [0, n_bins·w), as the language-model pages (stats/histogram)."""
    if values.numel() == 0:
        return {"edges": [], "counts": []}
    exponent = int(required_exponent(values.max().reshape(1), n_bins)[0])
    width = math.ldexp(1.0, exponent)
    index = torch.floor(values.double() / width).long().clamp(0, n_bins - 1)
    counts = torch.bincount(index, minlength=n_bins).tolist()
    return {"edges": [j * width for j in range(n_bins + 1)], "counts": counts}


@dataclass(frozen=True, kw_only=True)
class LatentPageConfig:
    """How much of each latent the feature pages show."""

    n_samples: int = 8192
    top_k: int = 10
    n_intervals: int = 5
    interval_samples: int = 3
    n_bins: int = 32
    dense_threshold: float = 0.1


@torch.no_grad()
def latent_records(
    sae: SAE,
    x: Float[Tensor, "n n_features"],
    W: Float[Tensor, "n_hidden n_features"],
    *,
    first_index: int,
    labels: list[str],
    cfg: LatentPageConfig,
    generator: torch.Generator,
) -> list[FeatureRecord]:
    """Feature JSON records (docs/schema.md) of every latent over the inputs ``x``.

    An example is one input vector: ``tokens`` are the true-feature names, ``token_ids`` their
    indices, ``acts`` the input's feature values, ``act`` the latent's activation, ``seq`` the
    sample's index, ``window_start`` 0 and ``pos`` the input's largest feature (so the pages'
    "fires on" names the true feature that was most on).
    """
    acts = sae.encode(x @ W.T)  # (n, d_sae)
    n, d_sae = acts.shape
    names = [f"f{f}" for f in range(x.shape[1])]
    ids = list(range(x.shape[1]))
    x_rounded = round_significant(x.numpy()).tolist()
    largest = x.abs().argmax(dim=1).tolist()

    def example(row: int, latent: int) -> Example:
        return example_record(
            act=float(acts[row, latent]),
            seq=row,
            pos=largest[row],
            window_start=0,
            tokens=names,
            token_ids=ids,
            acts=x_rounded[row],
        )

    dec = sae.W_dec / sae.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
    enc = sae.W_enc / sae.W_enc.norm(dim=0, keepdim=True).clamp_min(1e-12)
    dec_cos = dec @ dec.T
    records = []
    for j in range(d_sae):
        col = acts[:, j]
        fired = col > 0
        count = int(fired.sum())
        density = count / n
        values = col[fired]
        order = torch.argsort(col, descending=True, stable=True)[: min(cfg.top_k, count)]
        others = [g for g in range(d_sae) if g != j]
        others.sort(key=lambda g: (-float(dec_cos[j, g]), g))
        records.append(
            feature_record(
                index=first_index + j,
                label=labels[j],
                density=density,
                max_activation=float(values.max()) if count else 0.0,
                mean_activation=float(values.mean()) if count else 0.0,
                dead=count == 0,
                dense=density > cfg.dense_threshold,
                histogram=_histogram(values, cfg.n_bins),
                top_examples=[example(int(r), j) for r in order.tolist()],
                quantile_examples=_quantiles(col, cfg, generator, lambda r, j=j: example(r, j)),
                neighbours=[
                    {"index": first_index + g, "cosine": float(dec_cos[j, g])}
                    for g in others[:N_NEIGHBOURS]
                ],
                encoder_decoder_cosine=float(enc[:, j] @ dec[j]),
                token_separator=" ",  # the "tokens" are feature names: f0 f1 f2, not f0f1f2
            )
        )
    return records


def _quantiles(col: Tensor, cfg: LatentPageConfig, generator: torch.Generator, example) -> list:
    """Equal-width intervals over (0, max]; a uniform sample of each, shown by activation."""
    fired = (col > 0).nonzero().squeeze(1)
    if fired.numel() == 0:
        return []
    top = float(col[fired].max())
    edges = [top * i / cfg.n_intervals for i in range(cfg.n_intervals + 1)]
    out = []
    for i in range(cfg.n_intervals):
        lo, hi = edges[i], edges[i + 1]
        last = i == cfg.n_intervals - 1
        values = col[fired]
        inside = fired[(values >= lo) & ((values <= hi) if last else (values < hi))]
        if inside.numel() == 0:
            continue
        pick = inside[torch.randperm(inside.numel(), generator=generator)[: cfg.interval_samples]]
        pick = pick[torch.argsort(col[pick], descending=True, stable=True)]
        out.append(
            {
                "lo": lo,
                "hi": hi,
                "fraction": inside.numel() / fired.numel(),
                "examples": [example(int(r)) for r in pick.tolist()],
            }
        )
    return out
