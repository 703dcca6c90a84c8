"""Statistics read off the weights alone, computed in chunks of features.

Logit effects (direct path to the unembedding). The feature's output direction in the residual
stream is
    d_f = W_dec[f]                            residual hooks (hook_resid_pre/mid/post,
                                              hook_attn_out, hook_mlp_out, hook_embed,
                                              hook_pos_embed)
    d_f = W_dec[f] @ W_out[layer]             MLP hook_post (the d_mlp neuron basis)
    d_f = Σ_h W_dec[f, h] @ W_O[layer, h]     attention hook_z (heads × d_head)
and its effect on the logits is ``effects_f = LN(d_f) @ W_U`` [d_vocab], where LN is the final
normalisation's linear part: mean-centring (LN, LNPre) and multiplication by ``ln_final.w``
(LN, RMS). The data-dependent scale 1/σ(resid) is ignored, so effects are comparable between
features of one model but are not absolute logit changes. Hooks with no such path (e.g.
``hook_pre``, attention patterns) get no logit effects (None).
The logit histogram has ``n_logit_bins`` equal bins between that feature's min and max effect;
bin j holds ``edges[j] <= v < edges[j+1]`` (the max goes in the last bin).

Neuron exposures. MLP hooks (hook_post, hook_pre, hook_pre_linear): the ``n_neurons`` largest
``|W_dec[f, n]|``, and ``neuron_share = Σ_listed W_dec[f, n]² / ‖W_dec[f]‖²``. Residual hooks:
the ``n_neurons`` largest ``|cos(W_dec[f], W_in[:, n])|`` over the input neurons of the next MLP
the stream reaches (share None).

Logits read: entries of ``effects_f`` asked for by token id (``read``: for the next-token
effect of each shown example, ``stats/next_logit.py``), taken from the same product.

Neighbours: the ``n_neighbours`` largest decoder cosines ``cos(W_dec[f], W_dec[g])``, g != f.
``encoder_decoder_cosine[f] = cos(W_enc[:, f], W_dec[f])``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from saesite.config import WeightStatsConfig
from saesite.lm.hooks import split_hook
from saesite.sae.model import SAE
from saesite.stats.neighbours import DecoderNeighbours
from saesite.stats.row_topk import row_topk
from saesite.threads import one_thread

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

RESIDUAL = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out")
MLP_NEURONS = ("mlp.hook_post", "mlp.hook_pre", "mlp.hook_pre_linear")
ELEMENTS_PER_CHUNK = 1 << 23
"""Bound on chunk × max(d_sae, d_vocab): chunk buffers stay near 32 MB in float32."""


@dataclass(frozen=True)
class WeightStats:
    """Per-feature weight statistics; None where the hook has no such quantity."""

    logit_top_ids: Int[Tensor, "d_sae n"] | None
    logit_top_values: Float[Tensor, "d_sae n"] | None
    logit_bottom_ids: Int[Tensor, "d_sae n"] | None
    """Most negative first."""
    logit_bottom_values: Float[Tensor, "d_sae n"] | None
    logit_hist_edges: Float[Tensor, "d_sae n_edges"] | None
    logit_hist_counts: Int[Tensor, "d_sae n_bins"] | None
    neuron_ids: Int[Tensor, "d_sae n"] | None
    neuron_weights: Float[Tensor, "d_sae n"] | None
    """W_dec[f, n] (MLP hooks) or the cosine with W_in[:, n] (residual hooks)."""
    neuron_share: Float[Tensor, " d_sae"] | None
    neighbour_ids: Int[Tensor, "d_sae n"]
    neighbour_cosines: Float[Tensor, "d_sae n"]
    encoder_decoder_cosine: Float[Tensor, " d_sae"]
    logits_read: Float[Tensor, "d_sae n_read"] | None = None
    """``effects_f[read[f, j]]`` for the ids ``weight_stats`` was asked to ``read``; None when
    none were asked for or the hook has no logit effects."""


def _parse(hook: str) -> tuple[int | None, str]:
    """(block, name in the block), or (None, hook) outside the blocks."""
    return split_hook(hook) or (None, hook)


def in_residual(hook: str) -> bool:
    """Whether the hook's activation is the residual stream itself (output map: identity)."""
    layer, name = _parse(hook)
    return name in RESIDUAL or (layer is None and hook in ("hook_embed", "hook_pos_embed"))


def output_map(model: HookedTransformer, hook: str) -> Float[Tensor, "d_in d_model"] | None:
    """Linear map from the hook's activation space to the residual stream, if there is one."""
    layer, name = _parse(hook)
    d_model = model.cfg.d_model
    if in_residual(hook):
        return torch.eye(d_model, device=model.W_U.device, dtype=model.W_U.dtype)
    if layer is not None and name == "mlp.hook_post" and hasattr(model.blocks[layer].mlp, "W_out"):
        return model.blocks[layer].mlp.W_out
    if layer is not None and name == "attn.hook_z":
        return model.blocks[layer].attn.W_O.reshape(-1, d_model)
    return None


def final_norm(model: HookedTransformer, directions: Float[Tensor, "n d_model"]) -> Tensor:
    """The linear part of ln_final: centring (LN, LNPre), times its weight (LN, RMS)."""
    kind = model.cfg.normalization_type
    if kind in ("LN", "LNPre"):
        directions = directions - directions.mean(-1, keepdim=True)
    if kind in ("LN", "RMS"):
        directions = directions * model.ln_final.w
    return directions


def next_mlp_inputs(model: HookedTransformer, hook: str) -> Float[Tensor, "d_model d_mlp"] | None:
    """W_in of the first MLP that reads the residual stream after a residual hook."""
    layer, name = _parse(hook)
    if layer is None and hook in ("hook_embed", "hook_pos_embed"):
        target = 0
    elif name in ("hook_resid_pre", "hook_attn_out", "hook_resid_mid"):
        target = layer
    elif name in ("hook_resid_post", "hook_mlp_out"):
        target = layer + 1
    else:
        return None
    if model.cfg.attn_only or target >= model.cfg.n_layers:
        return None
    return getattr(model.blocks[target].mlp, "W_in", None)


def _chunks(d_sae: int, width: int, chunk_size: int) -> list[slice]:
    size = max(1, min(chunk_size, ELEMENTS_PER_CHUNK // max(width, 1)))
    return [slice(i, min(i + size, d_sae)) for i in range(0, d_sae, size)]


def logit_histogram(
    effects: Float[Tensor, "n d_vocab"], n_bins: int
) -> tuple[Float[Tensor, "n n_edges"], Int[Tensor, "n n_bins"]]:
    """Equal-width bins between each row's min and max (max in the last bin)."""
    lo, hi = torch.aminmax(effects, dim=1)
    return logit_histogram_(effects.clone(), n_bins, lo, hi)


def logit_histogram_(
    effects: Float[Tensor, "n d_vocab"], n_bins: int, lo: Tensor, hi: Tensor
) -> tuple[Float[Tensor, "n n_edges"], Int[Tensor, "n n_bins"]]:
    """``logit_histogram`` given each row's min and max, overwriting ``effects``.

    Bin j of row r is ``floor((v − lo_r) · n_bins / (hi_r − lo_r))`` (clamped to the last bin),
    computed in place, truncated to int8 and counted with one ``bincount`` per row:
    a few passes over the chunk instead of a binary search per value. A value within float
    rounding of an edge may fall in the neighbouring bin; the counts still sum to d_vocab.
    """
    steps = torch.arange(n_bins + 1, device=effects.device, dtype=effects.dtype) / n_bins
    edges = lo[:, None] + (hi - lo)[:, None] * steps[None, :]
    edges[:, -1] = hi
    width = hi - lo
    scale = torch.where(width > 0, n_bins / width, 0.0)
    effects.sub_(lo[:, None]).mul_(scale[:, None]).clamp_(0, n_bins - 1)
    if effects.is_cuda:  # bincount would synchronise once per row to size its output
        bins = effects.long()
        counts = torch.zeros(bins.shape[0], n_bins, dtype=torch.int64, device=bins.device)
        return edges, counts.scatter_add_(1, bins, torch.ones_like(bins))
    # truncation is floor here (values >= 0); float -> int8 is vectorised, -> uint8 is not
    bins = effects.to(torch.int8 if n_bins <= 128 else torch.int32)
    with one_thread():  # a bincount per row: thousands of small calls
        counts = torch.stack([torch.bincount(row, minlength=n_bins) for row in bins])
    return edges, counts


@torch.no_grad()
def weight_stats(
    model: HookedTransformer,
    sae: SAE,
    hook: str,
    cfg: WeightStatsConfig,
    read: Int[Tensor, "d_sae n_read"] | None = None,
) -> WeightStats:
    """Logit effects, neuron exposures, decoder neighbours and encoder/decoder cosines; and the
    logit effects at the token ids ``read`` (per feature), read off the same product."""
    W_dec = sae.W_dec.detach().float()
    d_sae = W_dec.shape[0]
    out: dict[str, list[Tensor]] = {}

    def add(key: str, value: Tensor) -> None:
        out.setdefault(key, []).append(value.cpu())

    to_resid = output_map(model, hook)
    if to_resid is not None and to_resid.shape[0] != W_dec.shape[1]:
        to_resid = None
    identity = in_residual(hook)  # skip a product by the identity per chunk
    W_U = model.W_U.detach().float()
    n_logits = min(cfg.n_logits, W_U.shape[1])
    mlp_hook = any(hook.endswith(suffix) for suffix in MLP_NEURONS)
    W_in = None if mlp_hook else next_mlp_inputs(model, hook)
    if W_in is not None and W_in.shape[0] != W_dec.shape[1]:
        W_in = None
    n_neurons = min(
        cfg.n_neurons, W_dec.shape[1] if mlp_hook else (W_in.shape[1] if W_in is not None else 0)
    )
    W_in_unit = F.normalize(W_in.float(), dim=0) if W_in is not None else None
    dec_unit = F.normalize(W_dec, dim=1)
    neighbours = DecoderNeighbours(dec_unit, min(cfg.n_neighbours, d_sae - 1))

    chunks = _chunks(d_sae, max(d_sae, W_U.shape[1]), cfg.chunk_size)
    if to_resid is not None:
        longest = max(c.stop - c.start for c in chunks)
        buffer = W_U.new_empty(longest, W_U.shape[1])
    for rows in chunks:
        w = W_dec[rows]
        if to_resid is not None:
            # one product per chunk into a reused buffer; then two top-k and the histogram
            # (which overwrites it): no second pass of matrix products over [d_sae, d_vocab]
            directions = final_norm(model, w if identity else w @ to_resid.float())
            effects = torch.matmul(directions, W_U, out=buffer[: w.shape[0]])
            if read is not None:
                add("logits_read", effects.gather(1, read[rows].to(effects.device)))
            top_values, top_ids = row_topk(effects, n_logits)
            bottom_values, bottom_ids = row_topk(effects, n_logits, largest=False)
            add("logit_top_ids", top_ids)
            add("logit_top_values", top_values)
            add("logit_bottom_ids", bottom_ids)
            add("logit_bottom_values", bottom_values)
            lo, hi = bottom_values[:, 0], top_values[:, 0]
            edges, counts = logit_histogram_(effects, cfg.n_logit_bins, lo, hi)
            add("logit_hist_edges", edges)
            add("logit_hist_counts", counts)
        if mlp_hook and n_neurons:
            top = w.abs().topk(n_neurons, dim=1)
            add("neuron_ids", top.indices)
            add("neuron_weights", w.gather(1, top.indices))
            total = w.square().sum(1)
            share = torch.where(total > 0, top.values.square().sum(1) / total, 0.0)
            add("neuron_share", share)
        elif W_in_unit is not None and n_neurons:
            cosines = dec_unit[rows] @ W_in_unit
            top = cosines.abs().topk(n_neurons, dim=1)
            add("neuron_ids", top.indices)
            add("neuron_weights", cosines.gather(1, top.indices))
        neighbours.update(rows)

    near_cosines, near_ids = neighbours.finalize()
    add("neighbour_ids", near_ids)
    add("neighbour_cosines", near_cosines)
    enc_dec = F.cosine_similarity(sae.W_enc.detach().float().T, W_dec, dim=1)
    get = lambda key: torch.cat(out[key]) if key in out else None  # noqa: E731
    return WeightStats(
        logit_top_ids=get("logit_top_ids"),
        logit_top_values=get("logit_top_values"),
        logit_bottom_ids=get("logit_bottom_ids"),
        logit_bottom_values=get("logit_bottom_values"),
        logit_hist_edges=get("logit_hist_edges"),
        logit_hist_counts=get("logit_hist_counts"),
        neuron_ids=get("neuron_ids"),
        neuron_weights=get("neuron_weights"),
        neuron_share=get("neuron_share"),
        neighbour_ids=get("neighbour_ids"),
        neighbour_cosines=get("neighbour_cosines"),
        encoder_decoder_cosine=enc_dec.cpu(),
        logits_read=get("logits_read"),
    )
