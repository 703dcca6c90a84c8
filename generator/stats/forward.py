"""Run the model as far as the statistics need: activations at the hook, optionally the losses.

Without losses, the forward stops at the hook: ``stop_at_layer`` skips every later block and an
exception raised from the hook skips the rest of the hook's own block (TransformerLens removes
hooks in a ``finally``, so this is safe).

With losses, the three copies (clean, spliced: the hook's activation replaced by the SAE
reconstruction, zero-ablated: by zeros) share everything before the hook, so it runs once: the
blocks before the hook's block (``stop_at_layer``), then that block up to the hook, and only the
rest of the model runs on the three copies (``stats/continuation.py``), one copy after another
(a third of the memory of running them as one batch), the clean loss coming from the same
forward as the activations. The copies run after the accumulators have read the batch and
dropped its [tok, d_sae] activations (``HookOutput.losses``), so the two are never in memory
together (GPT-2 small, 24,576 features, batch 32: 0.4 GiB of activations, 0.6 GiB for the
continuation). Losses are computed for the first ``n_loss`` sequences of a batch (the
``--ce-tokens`` budget); the rest stop at the hook. Hooks whose block suffix is not applied by
hand replay the hook's block on the three copies with a splicing hook; hooks outside the blocks
(``hook_embed``, ``ln_final.*``) and shortformer models replay the model.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor

from saesite.lm.hooks import hook_block, run_to_hook, split_hook, stop_layer
from saesite.sae.model import SAE
from saesite.stats.batch import SparseActs
from saesite.stats.continuation import (
    SUFFIX_CONTEXT,
    WHOLE_STREAM,
    block_suffix,
    constant_losses,
    final_residual,
    next_token_targets,
    sequence_losses,
    suffix_supported,
)
from saesite.stats.heap import trim_before

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer


@dataclass
class HookOutput:
    x: Float[Tensor, "tok d_in"]
    acts: Float[Tensor, "tok d_sae"] | None
    """None once the accumulators have read it (``pass_.feed_batch`` drops it)."""
    active: SparseActs
    x_hat: Float[Tensor, "tok d_in"]
    loss: Float[Tensor, "3 seq"] | None
    """Summed next-token loss per sequence: clean, spliced, zero-ablated (float64); None
    without losses, or while ``continuation`` has not run (read it through ``losses()``)."""
    continuation: Callable[[], Float[Tensor, "3 seq"]] | None = None
    """Runs the three copies from the hook on and returns their losses; it holds what they
    need (the hook's activation, x_hat, the context), never ``acts``."""

    def losses(self) -> Float[Tensor, "3 seq"] | None:
        """The losses, running the continuation the first time (call it after ``acts`` is
        dropped: the continuation's temporaries then reuse its memory)."""
        if self.continuation is not None:
            self.loss, self.continuation = self.continuation(), None
        return self.loss


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


def _spliced(
    clean: Float[Tensor, "seq pos ..."],
    x_hat: Float[Tensor, "tok d_in"],
    measured: Bool[Tensor, "seq pos"] | None,
) -> Float[Tensor, "seq pos ..."]:
    """The hook's activation with the reconstruction at the ``measured`` tokens (default all)."""
    spliced = x_hat.view(clean.shape).to(clean.dtype)
    if measured is None:
        return spliced
    keep = measured.view(*measured.shape, *([1] * (clean.ndim - 2)))
    return torch.where(keep, spliced, clean)


def reconstruct(sae: SAE, x: Float[Tensor, "tok d_in"]) -> tuple[Tensor, SparseActs, Tensor]:
    """(acts, their non-zeros, x_hat) for flattened hook activations; x_hat in x's own space
    (an SAE that normalises its inputs has its reconstruction de-normalised, as SAELens does).
    The forward's temporaries are freed by now: their pages go back before the large
    activations are allocated (``heap.trim_before``)."""
    trim_before(x.shape[0] * sae.cfg.d_sae * sae.W_enc.element_size())
    x_in, norm = sae.normalize(x)
    acts = sae.encode_normalized(x_in)
    active = SparseActs.from_dense(acts)
    x_hat = decode_sparse(sae, active)
    return acts, active, norm.undo(x_hat) if norm is not None else x_hat


class HookRunner:
    """Activations at ``hook`` for a batch of token sequences, and optionally the three losses."""

    def __init__(self, model: HookedTransformer, sae: SAE, hook: str):
        self.model, self.sae, self.hook = model, sae, hook
        block = hook_block(hook)
        shortformer = model.cfg.positional_embedding_type == "shortformer"
        self.start_layer = block if block is not None and not shortformer else None
        self.from_hook = self.start_layer is not None and suffix_supported(model, hook)
        """Whether the three copies start at the hook itself (else at its block's input)."""

    @torch.no_grad()
    def run(
        self,
        tokens: Int[Tensor, "batch pos"],
        n_loss: int = 0,
        measured: Bool[Tensor, "batch pos"] | None = None,
    ) -> HookOutput:
        """Activations for the batch; the three losses of its first ``n_loss`` sequences, over
        the predictions made at the ``measured`` tokens (default all), the SAE spliced in at
        those tokens only (special tokens keep their activation, as in SAELens' run_evals)."""
        if n_loss == 0:
            return self._to_hook(tokens)
        measured = measured[:n_loss] if measured is not None else None
        if self.from_hook:
            return self._with_loss_from_hook(tokens, n_loss, measured)
        return self._with_loss_replayed(tokens, n_loss, measured)

    def _flat(self, act: Tensor) -> Tensor:
        d_in = self.sae.cfg.d_in
        if act.ndim < 3 or math.prod(act.shape[2:]) != d_in:
            raise ValueError(
                f"hook {self.hook} has activations of shape {tuple(act.shape)}; "
                f"expected [batch, pos, ...] with {d_in} values per position"
            )
        return act.reshape(-1, d_in).to(self.sae.W_enc.dtype)  # bf16/fp16 models: SAE in fp32

    def _to_hook(self, tokens: Int[Tensor, "batch pos"]) -> HookOutput:
        captured = run_to_hook(self.model, tokens, self.hook, stop_at_layer=stop_layer(self.hook))
        return self.from_activation(captured[self.hook])

    def from_activation(self, act: Float[Tensor, "batch pos ..."]) -> HookOutput:
        """The SAE's output (no losses) for the hook's activation, captured by this runner or
        by a forward several SAEs share (``stats/multi_pass.py``)."""
        x = self._flat(act)
        acts, active, x_hat = reconstruct(self.sae, x)
        return HookOutput(x=x, acts=acts, active=active, x_hat=x_hat, loss=None)

    def _with_loss_from_hook(
        self, tokens: Int[Tensor, "batch pos"], n_loss: int, measured: Tensor | None
    ) -> HookOutput:
        """The model to the hook once; from the hook on, three copies of the first ``n_loss``
        sequences (``stats/continuation.py``)."""
        block_idx, name = split_hook(self.hook)
        resid = self.model(tokens, stop_at_layer=block_idx)  # the input of the hook's block
        context_hook = SUFFIX_CONTEXT[name]
        captured: dict[str, Tensor] = {"hook_resid_pre": resid}
        if name == "hook_resid_pre":
            captured["value"] = resid
        else:
            block = f"blocks.{block_idx}."
            also = [block + "hook_resid_mid"] if context_hook == "hook_resid_mid" else []
            ran = run_to_hook(
                self.model,
                resid,
                block + name,
                also=also,
                start_at_layer=block_idx,
                stop_at_layer=block_idx + 1,
            )
            captured["value"] = ran[block + name]
            if also:
                captured["hook_resid_mid"] = ran[also[0]]
        value = captured["value"]
        x = self._flat(value)
        acts, active, x_hat = reconstruct(self.sae, x)
        clean = value[:n_loss]
        continuation = functools.partial(
            self._three_copies,
            clean,
            x_hat[: clean.numel() // x.shape[1]],
            captured[context_hook][:n_loss] if context_hook else None,
            tokens[:n_loss],
            measured,
        )
        return HookOutput(
            x=x, acts=acts, active=active, x_hat=x_hat, loss=None, continuation=continuation
        )

    @torch.no_grad()  # runs later, from HookOutput.losses, outside run()'s no_grad
    def _three_copies(
        self,
        clean: Float[Tensor, "seq pos ..."],
        x_hat: Float[Tensor, "tok d_in"],
        context: Float[Tensor, "seq pos d_model"] | None,
        tokens: Int[Tensor, "seq pos"],
        measured: Bool[Tensor, "seq pos"] | None,
    ) -> Float[Tensor, "3 seq"]:
        """Clean, spliced and zero-ablated copies of the hook's activation ``clean`` through the
        rest of the model, one at a time (a third of the activations of all three at once); at
        a residual-stream hook the zero-ablated copy is one position (``constant_losses``)."""
        block_idx, name = split_hook(self.hook)
        block = self.model.blocks[block_idx]

        def rest(copy: Tensor) -> Tensor:
            resid_post = block_suffix(block, name, copy, context)
            return final_residual(self.model, resid_post, block_idx + 1)

        losses = [
            sequence_losses(self.model, rest(copy), tokens, measured)
            for copy in (clean, _spliced(clean, x_hat, measured))
        ]
        if name in WHOLE_STREAM:
            zero = rest(clean.new_zeros((1, 1, *clean.shape[2:])))
            losses.append(constant_losses(self.model, zero, tokens, measured))
        else:
            zero = rest(torch.zeros_like(clean))
            losses.append(sequence_losses(self.model, zero, tokens, measured))
        return torch.stack(losses)

    def _with_loss_replayed(
        self, tokens: Int[Tensor, "batch pos"], n_loss: int, measured: Tensor | None
    ) -> HookOutput:
        """The hook's block (or, outside the blocks, the whole model) runs on the batch and on
        two more copies of its first ``n_loss`` sequences; a hook splices the copies."""
        n = tokens.shape[0]
        captured: dict[str, Tensor] = {}

        def splice(act: Tensor, hook) -> Tensor:
            x = self._flat(act[:n])
            acts, active, x_hat = reconstruct(self.sae, x)
            captured.update(x=x, acts=acts, active=active, x_hat=x_hat)
            clean = act[n : n + n_loss]
            act[n : n + n_loss] = _spliced(clean, x_hat[: clean.numel() // x.shape[1]], measured)
            act[n + n_loss :] = 0
            return act

        def three(batch: Tensor) -> Tensor:
            return torch.cat([batch, batch[:n_loss], batch[:n_loss]])

        if self.start_layer is None:
            logits = self.model.run_with_hooks(three(tokens), fwd_hooks=[(self.hook, splice)])
            rows = torch.cat([logits[:n_loss], logits[n:]])
            target = next_token_targets(tokens[:n_loss], 3, measured)
            losses = F.cross_entropy(
                rows.flatten(0, 1).float(), target, reduction="none", ignore_index=-100
            )
            loss = losses.view(3 * n_loss, -1).sum(1, dtype=torch.float64)
        else:
            resid = self.model(tokens, stop_at_layer=self.start_layer)
            final = self.model.run_with_hooks(
                three(resid),
                start_at_layer=self.start_layer,
                stop_at_layer=self.model.cfg.n_layers,
                fwd_hooks=[(self.hook, splice)],
            )
            loss = sequence_losses(
                self.model, torch.cat([final[:n_loss], final[n:]]), tokens[:n_loss], measured
            )
        return HookOutput(loss=loss.view(3, n_loss), **captured)
