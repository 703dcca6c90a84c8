"""The model from a hook onward: the rest of the hook's block, the later blocks, the loss.

The three CE-loss copies (clean, spliced, zero-ablated) differ only from the hook on, so only
that part runs three times. For a hook inside a standard pre-norm block the rest of the block
is applied by hand from what the block computed before the hook (``context``):

    hook_resid_pre   resid_post = block(v)
    attn.hook_z      attn_out   = z · W_O + b_O,           then as hook_attn_out
    hook_attn_out    resid_mid  = resid_pre + v,           then as hook_resid_mid
    hook_resid_mid   resid_post = v + mlp(ln2(v))
    mlp.hook_post    resid_post = resid_mid + v · W_out + b_out
    hook_mlp_out     resid_post = resid_mid + v
    hook_resid_post  resid_post = v

Other hooks and block variants (parallel attention/MLP, post-norm, extra norms, attention
results per head) fall back to replaying the block (``stats/forward.py``).

Zeroing a residual-stream hook (``WHOLE_STREAM``) zeroes everything the later positions know:
every position then enters the rest of the model with the same vector, attention averages
values that are all the same (whatever the pattern: causal, rotary, ALiBi, sliding window), and
each position computes the same logits. So the zero-ablated copy runs one position
(``constant_losses``), not the batch: a third less work for the three copies.

The loss needs logits [tok, d_vocab] (3 × 4,096 × 50,257 floats are 2.5 GB at GPT-2 size), so
the final norm, the unembedding and the cross-entropy run a bounded number of rows at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor

from saesite.lm.hooks import split_hook

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer
    from transformer_lens.components import TransformerBlock

SUFFIX_CONTEXT = {
    "hook_resid_pre": None,
    "attn.hook_z": "hook_resid_pre",
    "hook_attn_out": "hook_resid_pre",
    "hook_resid_mid": None,
    "mlp.hook_post": "hook_resid_mid",
    "hook_mlp_out": "hook_resid_mid",
    "hook_resid_post": None,
}
"""Hooks whose block suffix is applied by hand -> the block activation the suffix also needs."""
WHOLE_STREAM = frozenset({"hook_resid_pre", "hook_resid_mid", "hook_resid_post"})
"""Block hooks holding the whole residual stream: zeroed, no later position depends on its token
(module docstring). Not the hooks with a ``context`` (the stream before them survives)."""
LOGIT_ELEMENTS = {"cpu": 1 << 25, "cuda": 1 << 28}
"""Bound on rows × d_vocab of one chunk of logits: 128 MiB in float32 on the CPU, 1 GiB on a
GPU (where small unembedding matmuls would leave it idle)."""


def suffix_supported(model: HookedTransformer, hook: str) -> bool:
    """Whether the rest of the hook's block can be applied by hand (module docstring)."""
    parsed = split_hook(hook)
    if parsed is None or parsed[1] not in SUFFIX_CONTEXT:
        return False
    cfg, name = model.cfg, parsed[1]
    if name == "hook_resid_pre" or name == "hook_resid_post":
        return True
    if (
        cfg.parallel_attn_mlp
        or cfg.use_normalization_before_and_after
        or cfg.original_architecture in ("Olmo2ForCausalLM", "Olmo3ForCausalLM")
        or (cfg.attn_only and name != "attn.hook_z" and name != "hook_attn_out")
    ):
        return False
    if name == "attn.hook_z":
        return not cfg.use_attn_result and not getattr(cfg, "load_in_4bit", False)
    if name == "mlp.hook_post":
        mlp = model.blocks[parsed[0]].mlp
        return isinstance(getattr(mlp, "W_out", None), Tensor) and mlp.W_out.ndim == 2
    return True


def block_suffix(
    block: TransformerBlock,
    name: str,
    value: Tensor,
    context: Float[Tensor, "batch pos d_model"] | None,
) -> Float[Tensor, "batch pos d_model"]:
    """The block's output (resid_post) from its activation ``value`` at hook ``name``."""
    if name == "hook_resid_post":
        return value
    if name == "hook_resid_pre":
        return block(value)
    if name == "hook_mlp_out":
        return context + value
    if name == "mlp.hook_post":
        mlp_out = torch.addmm(block.mlp.b_out, value.flatten(0, 1), block.mlp.W_out)
        return context + mlp_out.view(*value.shape[:2], -1)
    if name == "attn.hook_z":
        W_O = block.attn.W_O  # [head, d_head, d_model]
        z = value.reshape(value.shape[0] * value.shape[1], -1)
        attn_out = torch.addmm(block.attn.b_O, z, W_O.reshape(-1, W_O.shape[-1]))
        value, name = attn_out.view(*value.shape[:2], -1), "hook_attn_out"
    if name == "hook_attn_out":
        value, name = context + value, "hook_resid_mid"
    if block.cfg.attn_only:
        return value
    return value + block.apply_mlp(block.ln2(value))


def final_residual(
    model: HookedTransformer, resid: Float[Tensor, "batch pos d_model"], start_layer: int
) -> Float[Tensor, "batch pos d_model"]:
    """The residual stream after the last block, from the input of block ``start_layer``."""
    return model(resid, start_at_layer=start_layer, stop_at_layer=model.cfg.n_layers)


def next_token_targets(
    tokens: Int[Tensor, "seq pos"], copies: int, measured: Bool[Tensor, "seq pos"] | None = None
) -> Int[Tensor, " tok"]:
    """token[p+1] for each position of ``copies`` stacked copies of ``tokens``; −100 (ignored)
    at the last position, which predicts nothing, and where ``measured`` is false (the
    predictions made at special tokens, left out as SAELens' run_evals does)."""
    target = F.pad(tokens[:, 1:], (0, 1), value=-100)
    if measured is not None:
        target = target.masked_fill(~measured, -100)
    return target.repeat(copies, 1).reshape(-1)


def sequence_losses(
    model: HookedTransformer,
    final: Float[Tensor, "batch pos d_model"],
    tokens: Int[Tensor, "seq pos"],
    measured: Bool[Tensor, "seq pos"] | None = None,
) -> Float[Tensor, " batch"]:
    """Σ_p −log p(token[p+1] | ≤ p) per row of ``final`` in float64, over the positions p
    ``measured`` marks (default all); its rows are copies of ``tokens`` stacked (batch = copies
    × seq). Logits exist a chunk of rows at a time."""
    n_rows, pos, d_model = final.shape
    target = next_token_targets(tokens, n_rows // tokens.shape[0], measured)
    flat = final.reshape(-1, d_model)
    losses = torch.empty(flat.shape[0], dtype=torch.float32, device=flat.device)
    step = max(pos, LOGIT_ELEMENTS.get(flat.device.type, 1 << 25) // model.cfg.d_vocab)
    for start in range(0, flat.shape[0], step):
        rows = slice(start, start + step)
        losses[rows] = F.cross_entropy(
            _logits(model, flat[rows]), target[rows], reduction="none", ignore_index=-100
        )
    return losses.view(n_rows, pos).sum(1, dtype=torch.float64)


def constant_losses(
    model: HookedTransformer,
    final: Float[Tensor, "1 1 d_model"],
    tokens: Int[Tensor, "seq pos"],
    measured: Bool[Tensor, "seq pos"] | None = None,
) -> Float[Tensor, " seq"]:
    """``sequence_losses`` of ``tokens`` when every position's final residual is ``final``
    (a zeroed ``WHOLE_STREAM`` hook): one row of logits, its log-probabilities gathered at the
    targets."""
    log_probs = F.log_softmax(_logits(model, final.reshape(1, -1)), dim=-1)[0]
    target = next_token_targets(tokens, 1, measured).view(tokens.shape)
    scored = target != -100
    losses = torch.where(scored, -log_probs[target.clamp(min=0)], 0.0)
    return losses.sum(1, dtype=torch.float64)


def _logits(model: HookedTransformer, resid: Float[Tensor, "rows d_model"]) -> Tensor:
    """float32 logits of final residual rows (final norm, unembedding, soft cap)."""
    resid = resid[None]
    if model.cfg.normalization_type is not None:
        resid = model.ln_final(resid)
    logits = model.unembed(resid)[0]
    cap = model.cfg.output_logits_soft_cap
    if cap is not None and cap > 0:
        logits = cap * torch.tanh(logits / cap)
    return logits.float()
