"""Run the model as far as the statistics need: activations at the hook, optionally the losses.

Without losses, the forward stops at the hook: ``stop_at_layer`` skips every later block and an
exception raised from the hook skips the rest of the hook's own block (TransformerLens removes
hooks in a ``finally``, so this is safe).

With losses, one forward computes all three: the blocks before the hook's block run once
(``stop_at_layer``), their output is replicated three times, and the rest of the model runs from
the hook's block (``start_at_layer``) with a hook that keeps copy 1 (clean), replaces copy 2 by
the SAE reconstruction (spliced) and copy 3 by zeros (zero-ablated). A ``hook_resid_post`` is
the next block's input, so there the hook's own block runs once too and the three copies start
at the next block. Hooks outside the blocks (``hook_embed``, ``ln_final.*``) and shortformer
models replicate the tokens instead.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from saesite.sae.model import SAE
from saesite.stats.batch import SparseActs
from saesite.stats.metrics import LossSums
from torch import Tensor

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

EMBED_HOOKS = ("hook_embed", "hook_pos_embed", "hook_tokens")


def hook_block(hook: str) -> int | None:
    """Index of the block holding ``hook`` (``blocks.3.mlp.hook_post`` -> 3), else None."""
    match = re.match(r"blocks\.(\d+)\.", hook)
    return int(match.group(1)) if match else None


def stop_layer(hook: str) -> int | None:
    """``stop_at_layer`` that still runs ``hook``: its block + 1, 0 for embeddings, else None."""
    block = hook_block(hook)
    if block is not None:
        return block + 1
    return 0 if hook in EMBED_HOOKS else None


class _Stop(Exception):
    """Raised from the hook to end the forward once the activation is captured."""


@dataclass
class HookOutput:
    x: Float[Tensor, "tok d_in"]
    acts: Float[Tensor, "tok d_sae"]
    active: SparseActs
    x_hat: Float[Tensor, "tok d_in"]
    loss: LossSums | None


def decode_sparse(sae: SAE, active: SparseActs) -> Float[Tensor, "tok d_in"]:
    """x_hat = acts @ W_dec + b_dec from the non-zeros alone (CSR matmul: L0/d_sae the work)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        csr = torch.sparse_csr_tensor(
            active.row_ptr(),
            active.feat,
            active.values,
            size=(active.n_tok, active.d_sae),
            check_invariants=False,
        )
        return torch.addmm(sae.b_dec, csr, sae.W_dec)


def reconstruct(sae: SAE, x: Float[Tensor, "tok d_in"]) -> tuple[Tensor, SparseActs, Tensor]:
    """(acts, their non-zeros, x_hat) for flattened hook activations; x_hat in x's own space
    (an SAE that normalises its inputs has its reconstruction de-normalised, as SAELens does)."""
    x_in, norm = sae.normalize(x)
    acts = sae.encode_normalized(x_in)
    active = SparseActs.from_dense(acts)
    x_hat = decode_sparse(sae, active)
    return acts, active, norm.undo(x_hat) if norm is not None else x_hat


def next_token_loss_sums(
    logits: Float[Tensor, "batch pos d_vocab"], tokens: Int[Tensor, "batch pos"], n_groups: int
) -> list[float]:
    """Σ −log p(tokens[:, p+1] | prefix) over p < pos-1 for each of ``n_groups`` equal row
    groups of ``logits`` (all predicting ``tokens``), in float64.

    One fused cross-entropy over the contiguous logits (the last position is ignored), which
    avoids copying the largest tensor of the pass.
    """
    target = F.pad(tokens[:, 1:], (0, 1), value=-100).repeat(n_groups, 1)
    losses = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        target.reshape(-1),
        reduction="none",
        ignore_index=-100,
    )
    return losses.view(n_groups, -1).sum(1, dtype=torch.float64).tolist()


class HookRunner:
    """Activations at ``hook`` for a batch of token sequences, and optionally the three losses."""

    def __init__(self, model: HookedTransformer, sae: SAE, hook: str, ce_loss: bool):
        self.model, self.sae, self.hook = model, sae, hook
        self.ce_loss = ce_loss
        block = hook_block(hook)
        shortformer = model.cfg.positional_embedding_type == "shortformer"
        self.start_layer = block if block is not None and not shortformer else None
        resid_post = self.start_layer is not None and hook == f"blocks.{block}.hook_resid_post"
        self.after_block = block + 1 if resid_post else None
        """For a ``hook_resid_post``: the layer where the three copies start."""

    @torch.no_grad()
    def run(self, tokens: Int[Tensor, "batch pos"]) -> HookOutput:
        return self._with_loss(tokens) if self.ce_loss else self._to_hook(tokens)

    def _flat(self, act: Tensor) -> Tensor:
        d_in = self.sae.cfg.d_in
        if act.ndim < 3 or math.prod(act.shape[2:]) != d_in:
            raise ValueError(
                f"hook {self.hook} has activations of shape {tuple(act.shape)}; "
                f"expected [batch, pos, ...] with {d_in} values per position"
            )
        return act.reshape(-1, d_in)

    def _to_hook(self, tokens: Int[Tensor, "batch pos"]) -> HookOutput:
        captured: dict[str, Tensor] = {}

        def capture(act: Tensor, hook) -> None:
            captured["x"] = act
            raise _Stop

        try:
            self.model.run_with_hooks(
                tokens, stop_at_layer=stop_layer(self.hook), fwd_hooks=[(self.hook, capture)]
            )
        except _Stop:
            pass
        x = self._flat(captured["x"])
        acts, active, x_hat = reconstruct(self.sae, x)
        return HookOutput(x=x, acts=acts, active=active, x_hat=x_hat, loss=None)

    def _with_loss(self, tokens: Int[Tensor, "batch pos"]) -> HookOutput:
        if self.after_block is not None:
            return self._with_loss_from_next_block(tokens)
        n = tokens.shape[0]
        captured: dict[str, Tensor] = {}

        def splice(act: Tensor, hook) -> Tensor:
            x = self._flat(act[:n])
            acts, active, x_hat = reconstruct(self.sae, x)
            captured.update(x=x, acts=acts, active=active, x_hat=x_hat)
            act[n : 2 * n] = x_hat.reshape(act[n : 2 * n].shape).to(act.dtype)
            act[2 * n :] = 0
            return act

        if self.start_layer is None:
            logits = self.model.run_with_hooks(tokens.repeat(3, 1), fwd_hooks=[(self.hook, splice)])
        else:
            resid = self.model(tokens, stop_at_layer=self.start_layer)
            logits = self.model.run_with_hooks(
                resid.repeat(3, 1, 1),
                start_at_layer=self.start_layer,
                fwd_hooks=[(self.hook, splice)],
            )
        return HookOutput(loss=_loss_sums(logits, tokens), **captured)

    def _with_loss_from_next_block(self, tokens: Int[Tensor, "batch pos"]) -> HookOutput:
        resid = self.model(tokens, stop_at_layer=self.after_block)  # the hook's activation
        x = self._flat(resid)
        acts, active, x_hat = reconstruct(self.sae, x)
        copies = torch.cat(
            [resid, x_hat.reshape(resid.shape).to(resid.dtype), resid.new_zeros(resid.shape)]
        )
        logits = self.model(copies, start_at_layer=self.after_block)
        loss = _loss_sums(logits, tokens)
        return HookOutput(x=x, acts=acts, active=active, x_hat=x_hat, loss=loss)


def _loss_sums(
    logits: Float[Tensor, "copies pos d_vocab"], tokens: Int[Tensor, "batch pos"]
) -> LossSums:
    """The three losses of logits stacked as (clean, spliced, zero-ablated) copies of ``tokens``."""
    clean, spliced, zero_ablated = next_token_loss_sums(logits, tokens, 3)
    return LossSums(
        clean=clean,
        spliced=spliced,
        zero_ablated=zero_ablated,
        n_predictions=tokens.shape[0] * (tokens.shape[1] - 1),
    )
