"""Plain, JSON-ready records: the only contract between compute and render.

``build_records`` turns finalised statistics (``stats.feature_stats.FinalStats``) into dicts and
lists of ``int | float | str | bool | None`` shaped exactly as ``docs/schema.md`` describes, in
the main process. No tensor crosses this module's output. The per-feature dicts are built a
chunk of features at a time (vectorised) while the renderer consumes them (``FeatureRecords``),
so memory holds the statistics' tensors and one chunk of dicts, never all of them.

Rounding, to keep pages small: the per-token ``acts`` of every example are rounded to 4
significant digits (0 stays 0; the result is the double nearest the 4-digit decimal, so JSON
writers print it short) — quantile examples' windows are stored as float16 during the pass, so
theirs carry about 3; weight-derived values (logit effects and their histogram edges, neuron
weights and share, cosines) and Jaccard indices are rounded to 4 significant digits too (pages
show 3; float32's 17-digit tails only cost bytes); density, mean and max activation and the
interval fractions (they sum to 1) are the computed values (float32 -> Python float).
Output is deterministic for a given seed.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from saesite.lm.model import invalid_token_bytes
from saesite.records.examples import ExampleWriter
from saesite.records.rounding import rounded
from saesite.records.schema import FeatureRecord, SiteRecord, feature_record, site_record
from saesite.sae.model import SAE, sae_summary

if TYPE_CHECKING:
    from torch import Tensor

    from saesite.lm.model import Tokenizer
    from saesite.stats.feature_stats import FinalStats
    from saesite.stats.histogram import Histograms
    from saesite.stats.quantiles import Intervals
    from saesite.stats.weights import WeightStats

DENSITY_BINS_PER_DECADE = 4
FEATURE_CHUNK = 1024
"""Features whose dicts are built together (vectorised conversion, bounded memory)."""


@dataclass(frozen=True)
class Records:
    """What ``write_records`` gives ``render``: the site record and every feature record."""

    site: SiteRecord
    """site.json fields (docs/schema.md) but the per-feature ``features`` list and ``labels``,
    which the renderer adds."""
    features: Collection[FeatureRecord]
    """One dict per feature, the feature JSON of docs/schema.md, in index order (a
    ``FeatureRecords`` builds them lazily, a chunk at a time)."""


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building millions of acyclic dicts and lists.

    Each new container counts towards the collector's thresholds, so it would otherwise run
    full passes over the growing records again and again (about half the conversion time).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def density_histogram(density: np.ndarray, dead: np.ndarray) -> dict:
    """Histogram of log10 density over live features: 1/4-decade bins from floor(min) to 0."""
    live = np.log10(density[~dead])
    if live.size == 0:
        return {"edges": [], "counts": [], "dead": int(dead.sum())}
    low = math.floor(float(live.min()))
    n_bins = max(1, -low * DENSITY_BINS_PER_DECADE)
    edges = low + np.arange(n_bins + 1) / DENSITY_BINS_PER_DECADE
    counts, _ = np.histogram(live, bins=edges)
    return {"edges": edges.tolist(), "counts": counts.tolist(), "dead": int(dead.sum())}


def histogram_records(hist: Histograms, dead: Tensor, rows: slice) -> list[dict]:
    """The ``histogram`` of features ``rows``: edges j·2^e and counts; empty for dead ones."""
    n_bins = hist.counts.shape[1]
    counts_l = hist.counts[rows].tolist()
    dead = dead[rows].tolist()
    out = []
    for counts, exponent, is_dead in zip(counts_l, hist.exponent[rows].tolist(), dead, strict=True):
        if is_dead:
            out.append({"edges": [], "counts": []})
            continue
        width = math.ldexp(1.0, exponent)
        out.append({"edges": [j * width for j in range(n_bins + 1)], "counts": counts})
    return out


def _logit_records(weights: WeightStats, writer: ExampleWriter, rows: slice) -> list[tuple]:
    if weights.logit_top_ids is None:
        return [({"positive": [], "negative": []}, None) for _ in range(rows.stop - rows.start)]

    def entries(ids: Tensor, values: Tensor) -> list[list[dict]]:
        return [
            [
                {"token": writer.text(t), "token_id": t, "value": v}
                for t, v in zip(row_ids, row_values, strict=True)
            ]
            for row_ids, row_values in zip(ids.tolist(), rounded(values), strict=True)
        ]

    positive = entries(weights.logit_top_ids[rows], weights.logit_top_values[rows])
    negative = entries(weights.logit_bottom_ids[rows], weights.logit_bottom_values[rows])
    edges = rounded(weights.logit_hist_edges[rows])
    counts = weights.logit_hist_counts[rows].tolist()
    return [
        ({"positive": p, "negative": n}, {"edges": e, "counts": c})
        for p, n, e, c in zip(positive, negative, edges, counts, strict=True)
    ]


def _neuron_records(weights: WeightStats, rows: slice) -> tuple[list, list]:
    n = rows.stop - rows.start
    if weights.neuron_ids is None:
        return [[] for _ in range(n)], [None] * n
    exposures = [
        [{"neuron": i, "weight": w} for i, w in zip(ids, ws, strict=True)]
        for ids, ws in zip(
            weights.neuron_ids[rows].tolist(), rounded(weights.neuron_weights[rows]), strict=True
        )
    ]
    share = weights.neuron_share
    shares = rounded(share[rows]) if share is not None else [None] * n
    return exposures, shares


def interval_records(
    intervals: Intervals, rows: slice, examples: list[list[dict]]
) -> list[list[dict]]:
    """The ``quantile_examples`` of features ``rows``: each interval a feature has, with
    ``examples[f · n_intervals + i]`` (f counted from ``rows.start``) as its examples."""
    n_intervals = intervals.lo.shape[1]
    lo, hi = intervals.lo[rows].tolist(), intervals.hi[rows].tolist()
    frac = intervals.fraction[rows].tolist()
    return [
        [
            {
                "lo": lo[f][i],
                "hi": hi[f][i],
                "fraction": frac[f][i],
                "examples": examples[f * n_intervals + i],
            }
            for i in range(n_intervals)
            if not math.isnan(lo[f][i])
        ]
        for f in range(len(lo))
    ]


def _cofiring_records(result: FinalStats, rows: slice) -> list[list[dict]]:
    cofiring = result.cofiring
    # exact counts need no mark; sampled ones say they are estimates
    mark = {} if cofiring.exact else {"estimated": True}
    return [
        [
            {"index": g, "count": c, "jaccard": j, **mark}
            for g, c, j in zip(ids, counts, jaccard, strict=True)
            if g >= 0
        ]
        for ids, counts, jaccard in zip(
            cofiring.index[rows].tolist(),
            cofiring.count[rows].tolist(),
            rounded(cofiring.jaccard[rows]),
            strict=True,
        )
    ]


class FeatureRecords:
    """The per-feature dicts of docs/schema.md, in index order, built ``chunk`` features at a time
    while they are iterated.

    Only one chunk of dicts exists at once: at 65,536 features all of them together would take
    several GiB, ten times the pass's own tensors. Each iteration builds them afresh (the same
    dicts every time); ``list(records)`` materialises them all. With ``stored_text`` the
    examples leave ``tokens`` and ``token_ids`` to the token store (records/examples.py).
    """

    def __init__(
        self,
        result: FinalStats,
        tokenizer: Tokenizer,
        chunk: int = FEATURE_CHUNK,
        *,
        stored_text: bool = False,
    ):
        self.result, self.weights, self.chunk = result, result.weights, chunk
        self.writer = ExampleWriter(
            result.token_ids.numpy(),
            result.seq_start,
            tokenizer,
            result.window,
            stored_text=stored_text,
        )

    def __len__(self) -> int:
        return int(self.result.firing.count.shape[0])

    def __iter__(self) -> Iterator[dict]:
        for first in range(0, len(self), self.chunk):
            with gc_paused():
                block = self.build(slice(first, min(first + self.chunk, len(self))))
            yield from block

    def build(self, rows: slice) -> list[dict]:
        """The dicts of features ``rows`` (a slice with step 1)."""
        result, weights, writer = self.result, self.weights, self.writer
        firing, top = result.firing, result.topk
        n = rows.stop - rows.start
        ablation = result.ablation[rows] if result.ablation is not None else None
        next_logit = result.next_logit.top[rows] if result.next_logit else None
        top_examples = writer.examples(
            top.values[rows], top.index[rows], top.windows[rows], ablation, next_logit
        )
        intervals = result.intervals
        quantiles = interval_records(
            intervals,
            rows,
            writer.examples(
                intervals.values[rows].flatten(0, 1),
                intervals.index[rows].flatten(0, 1),
                intervals.windows[rows].flatten(0, 1),
                next_logit=(
                    result.next_logit.intervals[rows].flatten(0, 1) if result.next_logit else None
                ),
            ),
        )
        cofiring = _cofiring_records(result, rows)
        histograms = histogram_records(result.histograms, firing.dead, rows)
        logits = _logit_records(weights, writer, rows)
        exposures, shares = _neuron_records(weights, rows)
        neighbours = [
            [{"index": g, "cosine": c} for g, c in zip(ids, cos, strict=True)]
            for ids, cos in zip(
                weights.neighbour_ids[rows].tolist(),
                rounded(weights.neighbour_cosines[rows]),
                strict=True,
            )
        ]
        density = firing.density[rows].tolist()
        max_act = firing.max[rows].tolist()
        mean_act = firing.mean[rows].tolist()
        dead = firing.dead[rows].tolist()
        dense = firing.dense[rows].tolist()
        enc_dec = rounded(weights.encoder_decoder_cosine[rows])
        return [
            feature_record(
                index=rows.start + f,
                density=density[f],
                max_activation=max_act[f],
                mean_activation=mean_act[f],
                dead=dead[f],
                dense=dense[f],
                histogram=histograms[f],
                top_examples=top_examples[f],
                quantile_examples=quantiles[f],
                logit_effects=logits[f][0],
                logit_histogram=logits[f][1],
                neuron_exposures=exposures[f],
                neuron_share=shares[f],
                neighbours=neighbours[f],
                cofiring=cofiring[f],
                encoder_decoder_cosine=enc_dec[f],
            )
            for f in range(n)
        ]


def shown_token_ids(tokens: np.ndarray, weights: WeightStats) -> set[int]:
    """Every id a page can show: the dataset's tokens and the logit effects' tokens."""
    ids = set(np.unique(tokens).tolist())
    for name in ("logit_top_ids", "logit_bottom_ids"):
        table = getattr(weights, name)
        if table is not None:
            ids.update(torch.unique(table).tolist())
    return ids


def build_records(
    result: FinalStats,
    tokenizer: Tokenizer,
    *,
    model_name: str,
    hook: str,
    sae: SAE,
    config: dict,
    training: dict | None = None,
) -> Records:
    """The site record and the (lazily built) feature records of finalised statistics.

    ``config`` is the build's configuration as a dict (site.json ``config``); ``training`` the
    SAE's training log, shown on the training page when present.
    """
    if result.weights is None:
        raise ValueError("statistics without weight statistics; expected them from compute")
    used_ids = shown_token_ids(result.token_ids.numpy(), result.weights)
    firing = result.firing
    site = site_record(
        model=model_name,
        hook=hook,
        d_in=sae.cfg.d_in,
        d_sae=sae.cfg.d_sae,
        sae=sae_summary(sae),
        n_tokens=result.n_tokens,
        n_seq=result.n_seq,
        seq_len=result.seq_len,
        config=config,
        metrics=dict(result.metrics),
        density_histogram=density_histogram(firing.density.numpy(), firing.dead.numpy()),
        token_bytes=invalid_token_bytes(tokenizer, used_ids),
        training=training,
    )
    # The token store (site/token_store.py; the renderer writes it as tokens/*.js, never into
    # site.json) holds the dataset's text once, and pages expand examples from it. Examples
    # leave their text to it, as the written records do, where its sequence k is the
    # statistics' sequence k (always, but for a shard's own statistics).
    features = FeatureRecords(result, tokenizer, stored_text=result.seq_start == 0)
    token_ids = result.token_ids.numpy()
    site["dataset"] = {  # type: ignore[typeddict-unknown-key]
        "sequences": token_ids,
        "texts": {str(i): features.writer.text(i) for i in np.unique(token_ids).tolist()},
    }
    return Records(site=site, features=features)
