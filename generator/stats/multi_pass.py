"""Several SAEs, one streaming pass: the model runs once per batch, every SAE reads its hook.

Per batch of whole sequences, one forward captures every SAE's hook and stops as soon as the
last of them has run (``stop_at_layer`` at the deepest hook's block + 1, then an exception from
the hook that completes the set). Each SAE then encodes its own hook's activation and feeds its
own accumulators (``pass_.feed_batch``), exactly as a single-SAE pass of it would: the
activations are the same operations on the same tokens, so every SAE's statistics equal those
of a build of that SAE alone.

CE losses splice each SAE's reconstruction into the model from its own hook on, so a batch that
holds loss sequences (the first ``--ce-tokens``) runs each SAE's ``HookRunner`` with losses,
as the single-SAE pass does; every other batch shares the one forward.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch
from jaxtyping import Int
from torch import Tensor
from tqdm.auto import tqdm

from saesite.config import StatsConfig
from saesite.lm.hooks import stop_layer
from saesite.sae.model import SAE
from saesite.stats.feature_stats import FeatureStats
from saesite.stats.forward import HookOutput, HookRunner
from saesite.stats.heap import reuse_freed_memory
from saesite.stats.pass_ import check_finite, feed_batch, loss_sequences

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

log = logging.getLogger(__name__)


class _Captured(Exception):
    """Raised from the hook that completes the set: the rest of the forward is not needed."""


def shared_stop_layer(hooks: Sequence[str]) -> int | None:
    """``stop_at_layer`` running every hook: the deepest one's (None if any needs the whole
    model)."""
    layers = [stop_layer(hook) for hook in hooks]
    return None if any(layer is None for layer in layers) else max(layers)


def capture_hooks(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], hooks: Sequence[str]
) -> dict[str, Tensor]:
    """The activations at ``hooks`` from one forward of ``tokens``, stopped once all have run."""
    wanted = set(hooks)
    captured: dict[str, Tensor] = {}

    def capture(act: Tensor, hook) -> None:
        captured[hook.name] = act
        if len(captured) == len(wanted):
            raise _Captured

    try:
        model.run_with_hooks(
            tokens,
            stop_at_layer=shared_stop_layer(hooks),
            fwd_hooks=[(name, capture) for name in sorted(wanted)],
        )
    except _Captured:
        pass
    return captured


@torch.no_grad()
@reuse_freed_memory()
def run_multi_pass(
    model: HookedTransformer,
    saes: Sequence[SAE],
    hooks: Sequence[str],
    tokens: Int[Tensor, "n_seq seq_len"],
    cfg: StatsConfig,
    special_ids: Sequence[int] = (),
) -> list[FeatureStats]:
    """Stream ``tokens`` once through the model for every SAE (``saes[i]`` reads
    ``hooks[i]``); return each SAE's accumulators, not yet finalised. ``special_ids``: left
    out of the metrics as ``pass_.run_pass`` leaves them out."""
    excluded = () if cfg.include_special_tokens else tuple(special_ids)
    stats = [
        FeatureStats.empty(sae.cfg.d_sae, sae.cfg.d_in, cfg, tokens, 0, None, excluded)
        for sae in saes
    ]
    runners = [HookRunner(model, sae, hook) for sae, hook in zip(saes, hooks, strict=True)]
    loss_seqs = loss_sequences(cfg, tokens.shape[1])
    starts = range(0, tokens.shape[0], cfg.batch_size)
    for start in tqdm(starts, desc="statistics", unit="batch", disable=None, leave=False):
        batch_tokens = tokens[start : start + cfg.batch_size].to(cfg.device)
        n_loss = min(max(loss_seqs - start, 0), batch_tokens.shape[0])
        measured = stats[0].reconstruction.measured(batch_tokens)  # the same for every SAE
        # one SAE's output at a time, fed before the next is made: one SAE's [tok, d_sae]
        # activations in memory, not every SAE's
        outputs: Iterator[HookOutput]
        if n_loss:
            outputs = (runner.run(batch_tokens, n_loss, measured) for runner in runners)
        else:
            acts = capture_hooks(model, batch_tokens, hooks)
            outputs = (runner.from_activation(acts[runner.hook]) for runner in runners)
        for runner, out, accumulators in zip(runners, outputs, stats, strict=True):
            check_finite(out.x, start, batch_tokens.shape[1], runner.hook)
            feed_batch(accumulators, out, batch_tokens, start, None, measured)
    return stats
