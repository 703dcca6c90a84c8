"""Each shown example's direct effect on the logit of the token that came next.

For an example of feature f at (seq, pos), with ``t = token[seq, pos + 1]``,
    next_logit = LN(d_f) · W_U[:, t]
where ``LN(d_f)`` is the feature's output direction through the final normalisation's linear
part, exactly as the logit-effects section computes it (``stats/weights.py``): the entry of
``effects_f`` for the token that actually followed. NaN at a sequence's last position (nothing
follows), in unused slots, and for hooks with no direct path to the unembedding.

Only the examples a page shows are computed (top-k and the interval samples): d_sae · (k + n)
dot products of length d_model, gathered in chunks, so it costs nothing next to the pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float, Int
from torch import Tensor

from saesite.sae.model import SAE
from saesite.stats.weights import final_norm, output_map

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

ELEMENTS_PER_CHUNK = 1 << 22
"""Bound on features × examples × d_model gathered at once (16 MB in float32)."""


@dataclass(frozen=True)
class NextLogit:
    """Per shown example, the feature's direct effect on the next token's logit (NaN: none)."""

    top: Float[Tensor, "d_sae k"]
    intervals: Float[Tensor, "d_sae n_intervals s"]


@torch.no_grad()
def next_token_effects(
    model: HookedTransformer,
    sae: SAE,
    hook: str,
    token_ids: Int[Tensor, "n_seq seq_len"],
    seq_start: int,
    index: Int[Tensor, "d_sae n"],
) -> Float[Tensor, "d_sae n"]:
    """``LN(d_f) · W_U[:, token after index[f, j]]`` for the global token indices ``index``."""
    out = torch.full(index.shape, float("nan"))
    to_resid = output_map(model, hook)
    if to_resid is None or to_resid.shape[0] != sae.W_dec.shape[1]:
        return out
    seq_len = token_ids.shape[1]
    flat = token_ids.reshape(-1).cpu()
    first = seq_start * seq_len
    pos = index % seq_len
    has_next = (index >= first) & (index < first + flat.numel()) & (pos + 1 < seq_len)
    following = torch.where(has_next, index - first + 1, 0).clamp(max=max(flat.numel() - 1, 0))
    next_ids = flat[following]  # [d_sae, n]
    W_U = model.W_U.detach().float()
    W_dec = sae.W_dec.detach().float()
    d_model, n = W_U.shape[0], max(index.shape[1], 1)
    step = max(1, ELEMENTS_PER_CHUNK // (n * d_model))
    for start in range(0, W_dec.shape[0], step):
        rows = slice(start, start + step)
        directions = final_norm(model, W_dec[rows].to(to_resid.device) @ to_resid.float())
        columns = W_U.T[next_ids[rows].to(W_U.device)]  # [chunk, n, d_model]
        out[rows] = torch.einsum("fd,fnd->fn", directions, columns).float().cpu()
    return torch.where(has_next, out, torch.full_like(out, float("nan")))


def next_logit(
    model: HookedTransformer,
    sae: SAE,
    hook: str,
    token_ids: Int[Tensor, "n_seq seq_len"],
    seq_start: int,
    top_index: Int[Tensor, "d_sae k"],
    interval_index: Int[Tensor, "d_sae n_intervals s"],
) -> NextLogit:
    """The effects of the top examples and of the interval samples."""
    d_sae = interval_index.shape[0]
    effects = next_token_effects(
        model,
        sae,
        hook,
        token_ids,
        seq_start,
        torch.cat([top_index, interval_index.reshape(d_sae, -1)], dim=1),
    )
    k = top_index.shape[1]
    return NextLogit(top=effects[:, :k], intervals=effects[:, k:].reshape(interval_index.shape))
