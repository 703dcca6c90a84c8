"""TransformerLens hook names, and a forward that ends at a hook.

Hook names are TransformerLens strings: ``blocks.3.mlp.hook_post`` is ``mlp.hook_post`` of block
3; ``hook_embed``, ``hook_pos_embed``, ``hook_tokens`` run before the blocks; ``ln_final.*``
after them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from torch import Tensor

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

EMBED_HOOKS = ("hook_embed", "hook_pos_embed", "hook_tokens")
_BLOCK_HOOK = re.compile(r"blocks\.(\d+)\.(.+)$")


def split_hook(hook: str) -> tuple[int, str] | None:
    """``blocks.3.mlp.hook_post`` -> (3, "mlp.hook_post"); None outside the blocks."""
    match = _BLOCK_HOOK.match(hook)
    return (int(match.group(1)), match.group(2)) if match else None


def hook_block(hook: str) -> int | None:
    """Index of the block holding ``hook`` (``blocks.3.mlp.hook_post`` -> 3), else None."""
    parsed = split_hook(hook)
    return parsed[0] if parsed else None


def stop_layer(hook: str) -> int | None:
    """``stop_at_layer`` that still runs ``hook``: its block + 1, 0 for embeddings, else None."""
    block = hook_block(hook)
    if block is not None:
        return block + 1
    return 0 if hook in EMBED_HOOKS else None


class _StopForward(Exception):
    """Raised from the last hook wanted, so nothing after it runs."""


def run_to_hook(
    model: HookedTransformer,
    model_input: Tensor,
    hook: str,
    *,
    also: Iterable[str] = (),
    **run_kwargs: Any,
) -> dict[str, Tensor]:
    """Run ``model`` on ``model_input`` until ``hook`` fires; the activations of ``hook`` and of
    the earlier hooks ``also``, by name (a hook that did not run is missing).

    The forward ends inside ``hook``: it raises, ``run_with_hooks`` removes the hooks on the way
    out, and the rest of the hook's block (which ``stop_at_layer`` would still run) is skipped.
    ``run_kwargs`` go to ``run_with_hooks`` (``stop_at_layer``, ``start_at_layer``).
    """
    captured: dict[str, Tensor] = {}

    def keep(act: Tensor, hook: Any) -> None:
        captured[hook.name] = act

    def stop(act: Tensor, hook: Any) -> None:
        captured[hook.name] = act
        raise _StopForward

    try:
        model.run_with_hooks(
            model_input, fwd_hooks=[*((name, keep) for name in also), (hook, stop)], **run_kwargs
        )
    except _StopForward:
        pass
    return captured
