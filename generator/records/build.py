"""Plain, JSON-ready records: the only contract between compute and render.

``build_records`` turns finalised statistics (``stats.feature_stats.FinalStats``) into dicts and
lists of ``int | float | str | bool | None`` shaped exactly as ``docs/schema.md`` describes. No
tensor crosses this module's output. The per-feature dicts are built a chunk of features at a
time (vectorised) while the renderer consumes them (``FeatureRecords``), so memory holds the
statistics and one chunk of dicts, never all of them. ``FeatureRecords`` reads numpy arrays
only (``records/arrays.py``) and looks token texts up in a table decoded beforehand
(``TokenTexts``): the renderer builds ranges of them in forked workers, where neither torch nor
the tokenizer may run.

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
from typing import TYPE_CHECKING, Any

import numpy as np

from saesite.lm.model import invalid_token_bytes
from saesite.records.arrays import StatArrays, stat_arrays
from saesite.records.examples import ExampleWriter, TokenTexts
from saesite.records.rounding import rounded
from saesite.records.schema import FeatureRecord, SiteRecord, feature_record, site_record
from saesite.sae.model import SAE, sae_summary

if TYPE_CHECKING:
    from saesite.lm.model import Tokenizer
    from saesite.stats.feature_stats import FinalStats

DENSITY_BINS_PER_DECADE = 4
FEATURE_CHUNK = 1024
"""Features whose dicts are built together (vectorised conversion, bounded memory)."""
Rows = Any
"""Some features' rows of a statistic: a numpy array (``StatArrays``), or a tensor (the toy
site's statistics, toy/sae.py); anything with ``shape`` and ``tolist``."""


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


def histogram_records(counts: Rows, exponent: Rows, dead: Rows) -> list[dict]:
    """The ``histogram`` of some features from their rows of ``Histograms.counts`` and
    ``.exponent`` and ``dead`` (arrays or tensors): edges j·2^e and counts; empty for dead ones."""
    n_bins = counts.shape[1]
    out = []
    rows = zip(counts.tolist(), exponent.tolist(), dead.tolist(), strict=True)
    for counts_l, exponent_l, is_dead in rows:
        if is_dead:
            out.append({"edges": [], "counts": []})
            continue
        width = math.ldexp(1.0, exponent_l)
        out.append({"edges": [j * width for j in range(n_bins + 1)], "counts": counts_l})
    return out


def _logit_records(stats: StatArrays, writer: ExampleWriter, rows: slice) -> list[tuple]:
    if stats.logit_top_ids is None:
        return [({"positive": [], "negative": []}, None) for _ in range(rows.stop - rows.start)]

    def entries(ids: np.ndarray, values: np.ndarray) -> list[list[dict]]:
        return [
            [
                {"token": writer.text(t), "token_id": t, "value": v}
                for t, v in zip(row_ids, row_values, strict=True)
            ]
            for row_ids, row_values in zip(ids.tolist(), rounded(values), strict=True)
        ]

    positive = entries(stats.logit_top_ids[rows], stats.logit_top_values[rows])
    negative = entries(stats.logit_bottom_ids[rows], stats.logit_bottom_values[rows])
    edges = rounded(stats.logit_hist_edges[rows])
    counts = stats.logit_hist_counts[rows].tolist()
    return [
        ({"positive": p, "negative": n}, {"edges": e, "counts": c})
        for p, n, e, c in zip(positive, negative, edges, counts, strict=True)
    ]


def _neuron_records(stats: StatArrays, rows: slice) -> tuple[list, list]:
    n = rows.stop - rows.start
    if stats.neuron_ids is None:
        return [[] for _ in range(n)], [None] * n
    exposures = [
        [{"neuron": i, "weight": w} for i, w in zip(ids, ws, strict=True)]
        for ids, ws in zip(
            stats.neuron_ids[rows].tolist(), rounded(stats.neuron_weights[rows]), strict=True
        )
    ]
    share = stats.neuron_share
    shares = rounded(share[rows]) if share is not None else [None] * n
    return exposures, shares


def interval_records(
    lo: Rows, hi: Rows, fraction: Rows, examples: list[list[dict]]
) -> list[list[dict]]:
    """The ``quantile_examples`` of some features from their rows of ``Intervals.lo``, ``.hi``
    and ``.fraction`` (arrays or tensors): each interval a feature has, with
    ``examples[f · n_intervals + i]`` (f counted from the first row) as its examples."""
    n_intervals = lo.shape[1]
    lo, hi, frac = lo.tolist(), hi.tolist(), fraction.tolist()
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


def _cofiring_records(stats: StatArrays, rows: slice) -> list[list[dict]]:
    # exact counts need no mark; sampled ones say they are estimates
    mark = {} if stats.cofiring_exact else {"estimated": True}
    return [
        [
            {"index": g, "count": c, "jaccard": j, **mark}
            for g, c, j in zip(ids, counts, jaccard, strict=True)
            if g >= 0
        ]
        for ids, counts, jaccard in zip(
            stats.cofiring_index[rows].tolist(),
            stats.cofiring_count[rows].tolist(),
            rounded(stats.cofiring_jaccard[rows]),
            strict=True,
        )
    ]


class FeatureRecords:
    """The per-feature dicts of docs/schema.md, in index order, built ``chunk`` features at a time
    while they are iterated (or a range of them, ``build_range``: the renderer's forked workers
    build ranges of whole folders, site/intake.py).

    Only one chunk of dicts exists at once: at 65,536 features all of them together would take
    several GiB, ten times the pass's own tensors. Each iteration builds them afresh (the same
    dicts every time); ``list(records)`` materialises them all. With ``stored_text`` the
    examples leave ``tokens`` and ``token_ids`` to the token store (records/examples.py).
    Torch-free: it reads ``StatArrays`` and ``TokenTexts``, made before any fork.
    """

    def __init__(
        self,
        stats: StatArrays,
        texts: TokenTexts,
        chunk: int = FEATURE_CHUNK,
        *,
        stored_text: bool = False,
    ):
        self.stats, self.chunk = stats, chunk
        self.writer = ExampleWriter(
            stats.token_ids, stats.seq_start, texts, stats.window, stored_text=stored_text
        )

    def __len__(self) -> int:
        return len(self.stats)

    def __iter__(self) -> Iterator[dict]:
        return self.build_range(0, len(self))

    def build_range(self, start: int, stop: int) -> Iterator[dict]:
        """The dicts of features ``start..stop-1``, built ``chunk`` at a time as iterated."""
        for first in range(start, stop, self.chunk):
            with gc_paused():
                block = self.build(slice(first, min(first + self.chunk, stop)))
            yield from block

    def build(self, rows: slice) -> list[dict]:
        """The dicts of features ``rows`` (a slice with step 1)."""
        stats, writer = self.stats, self.writer
        n = rows.stop - rows.start
        ablation = stats.ablation[rows] if stats.ablation is not None else None
        next_top = stats.next_logit_top
        top_examples = writer.examples(
            stats.top_values[rows],
            stats.top_index[rows],
            stats.top_windows[rows],
            ablation,
            next_top[rows] if next_top is not None else None,
        )
        next_intervals = stats.next_logit_intervals
        quantiles = interval_records(
            stats.interval_lo[rows],
            stats.interval_hi[rows],
            stats.interval_fraction[rows],
            writer.examples(
                _flat(stats.interval_values[rows]),
                _flat(stats.interval_index[rows]),
                _flat(stats.interval_windows[rows]),
                next_logit=_flat(next_intervals[rows]) if next_intervals is not None else None,
            ),
        )
        cofiring = _cofiring_records(stats, rows)
        histograms = histogram_records(
            stats.histogram_counts[rows], stats.histogram_exponent[rows], stats.firing_dead[rows]
        )
        logits = _logit_records(stats, writer, rows)
        exposures, shares = _neuron_records(stats, rows)
        neighbours = [
            [{"index": g, "cosine": c} for g, c in zip(ids, cos, strict=True)]
            for ids, cos in zip(
                stats.neighbour_ids[rows].tolist(),
                rounded(stats.neighbour_cosines[rows]),
                strict=True,
            )
        ]
        density = stats.firing_density[rows].tolist()
        max_act = stats.firing_max[rows].tolist()
        mean_act = stats.firing_mean[rows].tolist()
        dead = stats.firing_dead[rows].tolist()
        dense = stats.firing_dense[rows].tolist()
        enc_dec = rounded(stats.encoder_decoder_cosine[rows])
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


def _flat(values: np.ndarray) -> np.ndarray:
    """[rows, n_intervals, s, ...] -> [rows · n_intervals, s, ...] (a view)."""
    return values.reshape(-1, *values.shape[2:])


def shown_token_ids(stats: StatArrays) -> set[int]:
    """Every id a page can show: the dataset's tokens and the logit effects' tokens."""
    ids = set(np.unique(stats.token_ids).tolist())
    for table in (stats.logit_top_ids, stats.logit_bottom_ids):
        if table is not None:
            ids.update(np.unique(table).tolist())
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
    stats = stat_arrays(result)
    used_ids = shown_token_ids(stats)
    token_bytes = invalid_token_bytes(tokenizer, used_ids)
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
        density_histogram=density_histogram(stats.firing_density, stats.firing_dead),
        token_bytes=token_bytes,
        training=training,
    )
    # The token store (site/token_store.py; the renderer writes it as tokens/*.js, never into
    # site.json) holds the dataset's text once, and pages expand examples from it. Examples
    # leave their text to it, as the written records do, where its sequence k is the
    # statistics' sequence k (always, but for a shard's own statistics).
    texts = TokenTexts.decoded(tokenizer, used_ids, token_bytes)
    features = FeatureRecords(stats, texts, stored_text=result.seq_start == 0)
    site["dataset"] = {  # type: ignore[typeddict-unknown-key]
        "sequences": stats.token_ids,
        "texts": {str(i): texts.text[i] for i in np.unique(stats.token_ids).tolist()},
    }
    return Records(site=site, features=features)
