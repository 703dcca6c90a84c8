"""Plain, JSON-ready records: the only contract between compute and render.

``build_records`` runs the streaming pass and the weight statistics and turns their tensors into
dicts and lists of ``int | float | str | bool | None`` shaped exactly as ``docs/schema.md``
describes. No tensor crosses this module's output.

Rounding, to keep pages small: the per-token ``acts`` of every example are rounded to 4
significant digits (0 stays 0; the result is the double nearest the 4-digit decimal, so JSON
writers print it short) — quantile examples' windows are stored as float16 during the pass, so
theirs carry about 3; every other float is the computed value (float32 -> Python float).
Output is deterministic for a given seed.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from generator.config import StatsConfig, WeightStatsConfig
from generator.models import invalid_token_bytes

if TYPE_CHECKING:
    from torch import Tensor

    from generator.models import LoadedModel, Tokenizer
    from generator.sae import SAE
    from generator.stats.pass_ import PassResult
    from generator.stats.weights import WeightStats

DENSITY_BINS_PER_DECADE = 4


@dataclass
class StatsRecords:
    features: list[dict]
    """One dict per feature, the feature JSON of docs/schema.md, ordered by index."""
    metrics: dict
    """site.json ``metrics``."""
    density_histogram: dict
    """``{edges, counts, dead}`` of log10 density over the live features."""
    token_bytes: dict[str, str]
    """Raw bytes (hex) of the ids used in examples and logit effects that are not valid UTF-8."""
    n_tokens: int
    n_seq: int
    seq_len: int


def round_significant(values: np.ndarray, digits: int = 4) -> np.ndarray:
    """Each value rounded to ``digits`` significant digits, as the double nearest that decimal."""
    x = np.asarray(values, dtype=np.float64)
    out = np.zeros_like(x)
    nonzero = np.isfinite(x) & (x != 0)
    v = x[nonzero]
    scale = digits - 1 - np.floor(np.log10(np.abs(v))).astype(np.int64)
    up = scale >= 0
    r = np.empty_like(v)
    p_up = 10.0 ** scale[up]
    r[up] = np.round(v[up] * p_up) / p_up
    p_down = 10.0 ** (-scale[~up])
    r[~up] = np.round(v[~up] / p_down) * p_down
    out[nonzero] = r
    out[~np.isfinite(x)] = x[~np.isfinite(x)]
    return out


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


class ExampleWriter:
    """Turns (act, global token index, window activations) into example dicts."""

    def __init__(
        self, tokens: np.ndarray, tokenizer: Tokenizer, context_before: int, context_after: int
    ):
        self.tokens = tokens
        self.seq_len = tokens.shape[1]
        self.before, self.after = context_before, context_after
        self.tokenizer = tokenizer
        self.used_ids: set[int] = set()
        self.byte_ids: set[int] = set()
        """Ids whose raw bytes are not valid UTF-8 on their own (shown as marked bytes)."""
        self._text: dict[int, str] = {}

    def text(self, token_id: int) -> str:
        text = self._text.get(token_id)
        if text is None:
            text = self._text[token_id] = self.tokenizer.decode_token(token_id)
            self.used_ids.add(token_id)
            if self.tokenizer.invalid_utf8_bytes(token_id) is not None:
                self.byte_ids.add(token_id)
        return text

    def texts(self, ids: np.ndarray) -> np.ndarray:
        """The token strings of an integer array, as an object array of the same shape."""
        unique = np.unique(ids)
        lookup = np.empty(int(unique.max()) + 1 if unique.size else 1, dtype=object)
        for token_id in unique.tolist():
            lookup[token_id] = self.text(token_id)
        return lookup[ids]

    def examples(
        self, values: Tensor, index: Tensor, windows: Tensor, ablation: Tensor | None = None
    ) -> list[list[dict]]:
        """Per row, the examples whose index is >= 0 (rows of [rows, n] and [rows, n, width]).

        ``ablation`` [rows, n, width], when given, adds each example's ``ablation`` list.
        """
        index_np = index.numpy()
        valid = index_np >= 0
        idx = np.where(valid, index_np, 0)
        seq, pos = np.divmod(idx, self.seq_len)
        start = np.maximum(pos - self.before, 0)
        length = np.minimum(pos + self.after, self.seq_len - 1) - start + 1
        columns = np.minimum(start[..., None] + np.arange(windows.shape[-1]), self.seq_len - 1)
        ids = self.tokens[seq[..., None], columns]  # [rows, n, width], padded past the end
        texts_l = self.texts(ids[valid]).tolist()
        ids_l = ids[valid].tolist()
        # Zeros as the integer 0 ("0", not "0.0"): most of a window does not fire, and this is
        # the largest single saving in a feature's JSON.
        acts_l = [
            [value if value else 0 for value in row]
            for row in round_significant(windows.float().numpy()[valid]).tolist()
        ]
        fields = zip(
            round_significant(values.float().numpy()[valid], 7).tolist(),
            seq[valid].tolist(),
            pos[valid].tolist(),
            start[valid].tolist(),
            length[valid].tolist(),
            texts_l,
            ids_l,
            acts_l,
            strict=True,
        )
        flat = [
            {
                "act": act,
                "seq": s,
                "pos": p,
                "window_start": w,
                "tokens": text[:n],
                "acts": window[:n],
            }
            for act, s, p, w, n, text, _, window in fields
        ]
        # token_ids only where the text alone is ambiguous: a window holding a byte-level token
        # that is not valid UTF-8 by itself (its text decodes to U+FFFD). Everywhere else the
        # ids are left out to keep a feature's JSON small (40 KB per feature, all files counted).
        for example, token_ids, n in zip(flat, ids_l, length[valid].tolist(), strict=True):
            if not self.byte_ids.isdisjoint(token_ids[:n]):
                example["token_ids"] = token_ids[:n]
        if ablation is not None:
            effects = round_significant(ablation.float().numpy()[valid]).tolist()
            for example, effect in zip(flat, effects, strict=True):
                example["ablation"] = effect[: len(example["acts"])]
        rows, cursor = [], 0
        for count in valid.sum(1).tolist():
            rows.append(flat[cursor : cursor + count])
            cursor += count
        return rows


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


def _histograms(result: PassResult) -> list[dict]:
    hist = result.histograms
    n_bins = hist.counts.shape[1]
    counts_l = hist.counts.tolist()
    out = []
    for feature_idx, exponent in enumerate(hist.exponent.tolist()):
        if result.firing.dead[feature_idx]:
            out.append({"edges": [], "counts": []})
            continue
        width = math.ldexp(1.0, exponent)
        out.append(
            {"edges": [j * width for j in range(n_bins + 1)], "counts": counts_l[feature_idx]}
        )
    return out


def _logit_records(weights: WeightStats, writer: ExampleWriter, d_sae: int) -> list[tuple]:
    if weights.logit_top_ids is None:
        return [({"positive": [], "negative": []}, None) for _ in range(d_sae)]

    def entries(ids: Tensor, values: Tensor) -> list[list[dict]]:
        return [
            [
                {"token": writer.text(t), "token_id": t, "value": v}
                for t, v in zip(row_ids, row_values, strict=True)
            ]
            for row_ids, row_values in zip(ids.tolist(), values.tolist(), strict=True)
        ]

    positive = entries(weights.logit_top_ids, weights.logit_top_values)
    negative = entries(weights.logit_bottom_ids, weights.logit_bottom_values)
    edges, counts = weights.logit_hist_edges.tolist(), weights.logit_hist_counts.tolist()
    return [
        ({"positive": p, "negative": n}, {"edges": e, "counts": c})
        for p, n, e, c in zip(positive, negative, edges, counts, strict=True)
    ]


def _neuron_records(weights: WeightStats, d_sae: int) -> tuple[list, list]:
    if weights.neuron_ids is None:
        return [[] for _ in range(d_sae)], [None] * d_sae
    exposures = [
        [{"neuron": n, "weight": w} for n, w in zip(ids, ws, strict=True)]
        for ids, ws in zip(
            weights.neuron_ids.tolist(), weights.neuron_weights.tolist(), strict=True
        )
    ]
    shares = weights.neuron_share.tolist() if weights.neuron_share is not None else [None] * d_sae
    return exposures, shares


def feature_records(
    result: PassResult, weights: WeightStats, tokens: np.ndarray, tokenizer: Tokenizer
) -> tuple[list[dict], set[int]]:
    """The per-feature dicts, and the token ids they mention."""
    firing = result.firing
    d_sae = firing.count.shape[0]
    writer = ExampleWriter(tokens, tokenizer, result.context_before, result.context_after)
    top = result.topk
    top_examples = writer.examples(top.values, top.index, top.windows, result.ablation)
    quantiles = _quantile_records(result, writer, d_sae)
    cofiring = _cofiring_records(result, d_sae)
    histograms = _histograms(result)
    logits = _logit_records(weights, writer, d_sae)
    exposures, shares = _neuron_records(weights, d_sae)
    neighbours = [
        [{"index": g, "cosine": c} for g, c in zip(ids, cos, strict=True)]
        for ids, cos in zip(
            weights.neighbour_ids.tolist(), weights.neighbour_cosines.tolist(), strict=True
        )
    ]
    density = firing.density.tolist()
    max_act = firing.max.tolist()
    mean_act = firing.mean.tolist()
    dead = firing.dead.tolist()
    dense = firing.dense.tolist()
    enc_dec = weights.encoder_decoder_cosine.tolist()
    features = []
    for f in range(d_sae):
        features.append(
            {
                "index": f,
                "label": None,
                "density": density[f],
                "log10_density": math.log10(density[f]) if density[f] > 0 else None,
                "max_activation": max_act[f],
                "mean_activation": mean_act[f],
                "dead": dead[f],
                "dense": dense[f],
                "histogram": histograms[f],
                "top_examples": top_examples[f],
                "quantile_examples": quantiles[f],
                "logit_effects": logits[f][0],
                "logit_histogram": logits[f][1],
                "neuron_exposures": exposures[f],
                "neuron_share": shares[f],
                "neighbours": neighbours[f],
                "cofiring": cofiring[f],
                "encoder_decoder_cosine": enc_dec[f],
            }
        )
    return features, writer.used_ids


def _quantile_records(result: PassResult, writer: ExampleWriter, d_sae: int) -> list[list[dict]]:
    intervals = result.intervals
    rows = writer.examples(
        intervals.values.flatten(0, 1),
        intervals.index.flatten(0, 1),
        intervals.windows.flatten(0, 1),
    )
    n_intervals = intervals.lo.shape[1]
    lo, hi, frac = intervals.lo.tolist(), intervals.hi.tolist(), intervals.fraction.tolist()
    out = []
    for f in range(d_sae):
        out.append(
            [
                {
                    "lo": lo[f][i],
                    "hi": hi[f][i],
                    "fraction": frac[f][i],
                    "examples": rows[f * n_intervals + i],
                }
                for i in range(n_intervals)
                if not math.isnan(lo[f][i])
            ]
        )
    return out


def _cofiring_records(result: PassResult, d_sae: int) -> list[list[dict]]:
    cofiring = result.cofiring
    out = []
    for ids, counts, jaccard in zip(
        cofiring.index.tolist(), cofiring.count.tolist(), cofiring.jaccard.tolist(), strict=True
    ):
        out.append(
            [
                {"index": g, "count": c, "jaccard": j}
                for g, c, j in zip(ids, counts, jaccard, strict=True)
                if g >= 0
            ]
        )
    return out


def build_records(
    loaded: LoadedModel,
    sae: SAE,
    tokens: Any,
    hook: str,
    stats_cfg: StatsConfig,
    weights_cfg: WeightStatsConfig,
) -> StatsRecords:
    """Run the streaming pass and the weight statistics; return JSON-ready records."""
    from generator.stats.pass_ import run_pass
    from generator.stats.weights import weight_stats

    tokens = torch.as_tensor(tokens, dtype=torch.int64)
    result = run_pass(loaded.model, sae, tokens, hook, stats_cfg)
    weights = weight_stats(loaded.model, sae, hook, weights_cfg)
    with gc_paused():
        features, used_ids = feature_records(result, weights, tokens.numpy(), loaded.tokenizer)
    firing = result.firing
    return StatsRecords(
        features=features,
        metrics=dict(result.metrics),
        density_histogram=density_histogram(firing.density.numpy(), firing.dead.numpy()),
        token_bytes=invalid_token_bytes(loaded.tokenizer, used_ids),
        n_tokens=result.n_tokens,
        n_seq=result.n_seq,
        seq_len=result.seq_len,
    )
