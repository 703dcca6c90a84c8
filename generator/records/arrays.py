"""Finalised statistics as numpy arrays: everything ``records.build.FeatureRecords`` reads.

The renderer builds the feature records in forked worker processes (``site/intake.py``), where
torch must not run: its OpenMP thread pool does not survive a fork (an op big enough to use it
hangs), and issue 12 took torch out of the workers. So before anything forks, ``stat_arrays``
turns the statistics into numpy arrays: zero-copy views of the CPU tensors (``Tensor.numpy``),
which every worker shares with the parent page for page. A value is copied only where numpy
has no such dtype (bfloat16) or where the records read it at float32 and it is stored wider
(``records.rounding.rounded`` reads a tensor at float32; an array as it is).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from jaxtyping import Bool, Float, Int

from saesite.stats.windows import Window

if TYPE_CHECKING:
    from torch import Tensor

    from saesite.stats.feature_stats import FinalStats


def as_array(tensor: Tensor) -> np.ndarray:
    """The tensor's values as a numpy array: a view of a CPU tensor's memory (no copy) but for
    bfloat16, which numpy has not (read as float32, which holds every bfloat16 exactly)."""
    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return tensor.numpy()


def as_float32(tensor: Tensor) -> np.ndarray:
    """The tensor at float32, as the records round it (``rounded``): a view when it is float32."""
    return tensor.detach().cpu().float().numpy()


def _optional(tensor: Tensor | None, convert=as_array) -> np.ndarray | None:
    return None if tensor is None else convert(tensor)


@dataclass(frozen=True, kw_only=True)
class StatArrays:
    """``FinalStats`` as the records read it, numpy only; fields named ``<statistic>_<field>``
    after ``FinalStats.<statistic>.<field>`` (weights' fields keep their names)."""

    token_ids: Int[np.ndarray, "n_seq seq_len"]
    seq_start: int
    window: Window
    firing_density: Float[np.ndarray, " d_sae"]
    firing_mean: Float[np.ndarray, " d_sae"]
    firing_max: Float[np.ndarray, " d_sae"]
    firing_dead: Bool[np.ndarray, " d_sae"]
    firing_dense: Bool[np.ndarray, " d_sae"]
    histogram_exponent: Int[np.ndarray, " d_sae"]
    histogram_counts: Int[np.ndarray, "d_sae n_bins"]
    top_values: Float[np.ndarray, "d_sae k"]
    top_index: Int[np.ndarray, "d_sae k"]
    top_windows: Float[np.ndarray, "d_sae k width"]
    interval_lo: Float[np.ndarray, "d_sae n_intervals"]
    interval_hi: Float[np.ndarray, "d_sae n_intervals"]
    interval_fraction: Float[np.ndarray, "d_sae n_intervals"]
    interval_values: Float[np.ndarray, "d_sae n_intervals s"]
    interval_index: Int[np.ndarray, "d_sae n_intervals s"]
    interval_windows: Float[np.ndarray, "d_sae n_intervals s width"]
    cofiring_index: Int[np.ndarray, "d_sae n"]
    cofiring_count: Int[np.ndarray, "d_sae n"]
    cofiring_jaccard: Float[np.ndarray, "d_sae n"]
    """float32, as rounded."""
    cofiring_exact: bool
    ablation: Float[np.ndarray, "d_sae k width"] | None
    next_logit_top: Float[np.ndarray, "d_sae k"] | None
    next_logit_intervals: Float[np.ndarray, "d_sae n_intervals s"] | None
    logit_top_ids: Int[np.ndarray, "d_sae n"] | None
    logit_top_values: Float[np.ndarray, "d_sae n"] | None
    logit_bottom_ids: Int[np.ndarray, "d_sae n"] | None
    logit_bottom_values: Float[np.ndarray, "d_sae n"] | None
    logit_hist_edges: Float[np.ndarray, "d_sae n_edges"] | None
    logit_hist_counts: Int[np.ndarray, "d_sae n_bins"] | None
    neuron_ids: Int[np.ndarray, "d_sae n"] | None
    neuron_weights: Float[np.ndarray, "d_sae n"] | None
    neuron_share: Float[np.ndarray, " d_sae"] | None
    neighbour_ids: Int[np.ndarray, "d_sae n"]
    neighbour_cosines: Float[np.ndarray, "d_sae n"]
    encoder_decoder_cosine: Float[np.ndarray, " d_sae"]

    def __len__(self) -> int:
        return int(self.firing_density.shape[0])


def stat_arrays(result: FinalStats) -> StatArrays:
    """The arrays of finalised statistics with weight statistics (``compute``'s result)."""
    weights = result.weights
    if weights is None:
        raise ValueError("statistics without weight statistics; expected them from compute")
    firing, hist, top, intervals, cofiring = (
        result.firing,
        result.histograms,
        result.topk,
        result.intervals,
        result.cofiring,
    )
    next_logit = result.next_logit
    return StatArrays(
        token_ids=as_array(result.token_ids),
        seq_start=result.seq_start,
        window=result.window,
        firing_density=as_array(firing.density),
        firing_mean=as_array(firing.mean),
        firing_max=as_array(firing.max),
        firing_dead=as_array(firing.dead),
        firing_dense=as_array(firing.dense),
        histogram_exponent=as_array(hist.exponent),
        histogram_counts=as_array(hist.counts),
        top_values=as_array(top.values),
        top_index=as_array(top.index),
        top_windows=as_array(top.windows),
        interval_lo=as_array(intervals.lo),
        interval_hi=as_array(intervals.hi),
        interval_fraction=as_array(intervals.fraction),
        interval_values=as_array(intervals.values),
        interval_index=as_array(intervals.index),
        interval_windows=as_array(intervals.windows),
        cofiring_index=as_array(cofiring.index),
        cofiring_count=as_array(cofiring.count),
        cofiring_jaccard=as_float32(cofiring.jaccard),
        cofiring_exact=cofiring.exact,
        ablation=_optional(result.ablation),
        next_logit_top=_optional(next_logit.top if next_logit else None),
        next_logit_intervals=_optional(next_logit.intervals if next_logit else None),
        logit_top_ids=_optional(weights.logit_top_ids),
        logit_top_values=_optional(weights.logit_top_values, as_float32),
        logit_bottom_ids=_optional(weights.logit_bottom_ids),
        logit_bottom_values=_optional(weights.logit_bottom_values, as_float32),
        logit_hist_edges=_optional(weights.logit_hist_edges, as_float32),
        logit_hist_counts=_optional(weights.logit_hist_counts),
        neuron_ids=_optional(weights.neuron_ids),
        neuron_weights=_optional(weights.neuron_weights, as_float32),
        neuron_share=_optional(weights.neuron_share, as_float32),
        neighbour_ids=as_array(weights.neighbour_ids),
        neighbour_cosines=as_float32(weights.neighbour_cosines),
        encoder_decoder_cosine=as_float32(weights.encoder_decoder_cosine),
    )
