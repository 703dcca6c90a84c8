"""Ablation effect of each top example: how much the feature helps predict the next tokens.

For a top example of feature f in sequence s, the feature's decoder contribution is removed at
the hook on every position of s,
    x'_t = x_t − acts[t, f] · W_dec[f],
the rest of the model runs on, and the example's ``ablation`` is, per window position q,
    loss'(q) − loss(q),     loss(q) = −log p(token[q+1] | tokens[≤ q])
(positive: the feature helped predict the next token; 0 at the sequence's last position, which
predicts nothing). Examples are batched: each batch runs the model once per example with its own
feature ablated; clean losses are computed once per sequence. This re-runs the model d_sae · k
times over one sequence each, so it is optional and outside the pass's speed target.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from saesite.sae.model import SAE
from saesite.stats.topk import TopK
from saesite.stats.windows import Window

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

log = logging.getLogger(__name__)


def next_token_losses(
    logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos"]:
    """−log p(tokens[:, q+1]) at each position q; 0 at the last position."""
    losses = F.cross_entropy(
        logits[:, :-1].transpose(1, 2).float(), tokens[:, 1:], reduction="none"
    )
    return F.pad(losses, (0, 1))


@torch.no_grad()
def ablation_effects(
    model: HookedTransformer,
    sae: SAE,
    tokens: Int[Tensor, "n_seq seq_len"],
    hook: str,
    topk: TopK,
    window: Window,
    batch_size: int,
    device: str = "cpu",
) -> Float[Tensor, "d_sae k width"]:
    """Change in next-token loss on each top example's window when its feature is ablated."""
    seq_len = tokens.shape[1]
    out = torch.zeros(*topk.index.shape, window.width)
    feature_idx, slot = torch.nonzero(topk.index >= 0, as_tuple=True)
    seq = topk.index[feature_idx, slot] // seq_len
    pos = topk.index[feature_idx, slot] % seq_len
    columns, inside = window.columns(pos, seq_len), window.inside(pos, seq_len)

    clean = torch.zeros(tokens.shape[0], seq_len)
    needed = torch.unique(seq)
    for i in range(0, needed.numel(), batch_size):
        rows = needed[i : i + batch_size]
        batch = tokens[rows].to(device)
        clean[rows] = next_token_losses(model(batch), batch).cpu()

    W_dec = sae.W_dec
    for i in tqdm(
        range(0, seq.numel(), batch_size), desc="ablation", unit="batch", disable=None, leave=False
    ):
        part = slice(i, i + batch_size)
        batch = tokens[seq[part]].to(device)
        features = feature_idx[part].to(device)

        def ablate(act: Tensor, hook, features: Tensor = features) -> Tensor:
            flat = act.reshape(act.shape[0], act.shape[1], -1).float()
            flat_in, norm = sae.normalize(flat)
            acts = sae.encode_normalized(flat_in)
            own = acts.gather(2, features[:, None, None].expand(-1, flat.shape[1], 1))
            contribution = own * W_dec[features][:, None, :]
            if norm is not None:  # the decoder works in the normalised space
                contribution = contribution * norm.factor
            flat = flat - contribution
            return flat.reshape(act.shape).to(act.dtype)

        logits = model.run_with_hooks(batch, fwd_hooks=[(hook, ablate)])
        delta = next_token_losses(logits, batch).cpu() - clean[seq[part]]
        windows = delta.gather(1, columns[part])
        out[feature_idx[part], slot[part]] = torch.where(inside[part], windows, 0.0)
    return out
