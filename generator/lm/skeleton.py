"""The model without its weights: its config and the shape of every hook, for checks that must
not wait for the weights (minutes for a 2B model, ~10 GB of memory).

    config   a saesite model folder's config.json, or TransformerLens' own config for a hub name
             or a Hugging Face folder (``get_pretrained_model_config``: the hub's config.json
             only, from the cache offline)
    hooks    the HookedTransformer built on the ``meta`` device (no memory, no initialisation)
             and run on one meta token with every hook recording its shape

So a wrong ``--hook`` or an SAE whose ``d_in`` is not the hook's width is refused before the
weights load, with the message the loaded model would give. Where the config cannot be read
this way (an architecture whose forward the meta device cannot trace, a name TransformerLens
resolves only while loading), the checks wait for the loaded model, as before.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from saesite.errors import SaesiteError

if TYPE_CHECKING:
    from transformer_lens import HookedTransformerConfig

log = logging.getLogger(__name__)


def skeleton_config(
    name_or_dir: str | None, from_pretrained_kwargs: dict[str, Any] | None = None
) -> HookedTransformerConfig | None:
    """The model's TransformerLens config without its weights, or None when it cannot be read
    cheaply (the loader then reports what is wrong)."""
    from saesite.lm.hub import is_hf_folder, repo_id_of
    from saesite.lm.model import DEMO_MODEL, read_folder_config

    path = DEMO_MODEL if name_or_dir is None else Path(name_or_dir)
    try:
        if path.is_dir() and not is_hf_folder(path):
            from transformer_lens import HookedTransformerConfig

            return HookedTransformerConfig(**read_folder_config(path), device="meta")
        name = repo_id_of(path) if path.is_dir() else name_or_dir
        if name is None:
            return None
        return _pretrained_config(name, from_pretrained_kwargs or {})
    except SaesiteError:
        raise
    except Exception as err:  # any failure here is the loader's to report, in its words
        log.debug("no config before the weights for %s (%s)", name_or_dir, err)
        return None


def _pretrained_config(name: str, kwargs: dict[str, Any]) -> HookedTransformerConfig:
    from transformer_lens.loading_from_pretrained import get_pretrained_model_config

    keep = ("first_n_layers", "n_ctx", "trust_remote_code", "revision")
    return get_pretrained_model_config(
        name, fold_ln=True, device="meta", **{k: v for k, v in kwargs.items() if k in keep}
    )


def meta_model(cfg: HookedTransformerConfig):
    """The HookedTransformer of ``cfg`` on the meta device: every module and hook, no memory."""
    import warnings

    from transformer_lens import HookedTransformer

    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        return HookedTransformer(cfg, move_to_device=False)


def hook_widths(model, hooks: list[str] | None = None) -> dict[str, int] | None:
    """Values per position (``attn.hook_z``: n_heads · d_head) of ``hooks`` (default all) in a
    forward of the meta ``model`` on two tokens, 0 for a hook that did not run; None if the
    meta forward fails (an architecture the meta device cannot trace)."""
    names = list(model.hook_dict) if hooks is None else hooks
    widths = dict.fromkeys(names, 0)

    def record(act: torch.Tensor, hook) -> None:
        if act.ndim >= 3:
            widths[hook.name] = math.prod(act.shape[2:])

    try:
        with torch.no_grad(), torch.device("meta"):
            model.run_with_hooks(
                torch.zeros(1, 2, dtype=torch.long), fwd_hooks=[(n, record) for n in names]
            )
    except Exception as err:
        log.debug("no meta forward for %s (%s)", model.cfg.model_name, err)
        return None
    return widths


def check_hook_before_weights(cfg: HookedTransformerConfig, hook: str, d_in: int) -> bool:
    """Refuse a hook the model lacks, or an SAE width that is not the hook's, from the config
    alone; True when checked (False: the meta forward could not run, check after loading)."""
    from saesite.lm.model import hook_problem

    try:
        model = meta_model(cfg)
    except Exception as err:  # the loader will say what is wrong with the config
        log.debug("no meta model for %s (%s)", cfg.model_name, err)
        return False
    problem = hook_problem(list(model.hook_dict), hook)
    if problem is not None:
        raise SaesiteError(problem)
    widths = hook_widths(model, [hook])
    if widths is None:
        return False
    if widths[hook] and widths[hook] != d_in:
        raise SaesiteError(width_problem(d_in, hook, widths[hook]))
    return True


def width_problem(d_in: int, hook: str, width: int) -> str:
    return (
        f"SAE d_in is {d_in} but hook {hook!r} has width {width}; "
        "expected them to match (wrong --hook or --sae?)"
    )
