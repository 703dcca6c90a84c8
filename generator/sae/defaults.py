"""What an SAE says about how it was trained becomes the build's default.

The SAE's metadata ``model_name``, ``hook_name``, ``context_size`` and ``prepend_bos`` fill
``--model``, ``--hook``, ``--seq-len`` and BOS when they are not given. Where the user gave a
value that differs from the SAE's, the user's value is used and a warning names both.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from saesite.config import DataConfig
from saesite.errors import SaesiteError
from saesite.sae.model import SAE

log = logging.getLogger(__name__)


def _official(name: str) -> str:
    """TransformerLens' official name for an alias (gpt2 -> gpt2), else the name itself."""
    try:
        from transformer_lens.loading_from_pretrained import get_official_model_name

        return get_official_model_name(name)
    except Exception:  # not a TransformerLens name (a folder, a typo): compare as written
        return name


def resolve_model(model: str | None, sae: SAE, sae_given: bool) -> str | None:
    """--model, else the SAE's model_name (None: the bundled demo model)."""
    trained_on = sae.cfg.model_name
    if model is None:
        if not sae_given:
            return None
        if not trained_on:
            log.warning("no --model given and the SAE names no model_name; using the demo model")
            return None
        log.info("model %s (the SAE's metadata.model_name)", trained_on)
        return trained_on
    if trained_on and trained_on != "demo" and _official(model) != _official(trained_on):
        log.warning(
            "--model %s differs from the model the SAE was trained on (%s); using %s",
            model,
            trained_on,
            model,
        )
    return model


def resolve_hook(hook: str | None, sae: SAE) -> str:
    """--hook, else the SAE's hook_name."""
    trained_at = sae.cfg.hook_name
    if hook is None:
        if not trained_at:
            raise SaesiteError(
                "no --hook given and the SAE's metadata has no hook_name; expected one of them"
            )
        return trained_at
    if trained_at and hook != trained_at:
        log.warning(
            "--hook %s differs from the SAE's hook_name (%s); using %s", hook, trained_at, hook
        )
    return hook


def resolve_data(data: DataConfig, sae: SAE, n_ctx: int | None) -> DataConfig:
    """--seq-len and BOS from the SAE's context_size and prepend_bos where not given."""
    seq_len, prepend_bos = data.seq_len, data.prepend_bos
    context = sae.cfg.context_size
    if seq_len is None and context:
        seq_len = min(int(context), n_ctx) if n_ctx else int(context)
    elif seq_len is not None and context and seq_len != context:
        log.warning(
            "--seq-len %d differs from the SAE's context_size (%d); using %d",
            seq_len,
            context,
            seq_len,
        )
    if prepend_bos is None:
        prepend_bos = sae.cfg.prepend_bos
    elif prepend_bos != sae.cfg.prepend_bos:
        log.warning(
            "BOS %s differs from the SAE's prepend_bos (%s); using %s",
            "on" if prepend_bos else "off",
            sae.cfg.prepend_bos,
            "on" if prepend_bos else "off",
        )
    return replace(data, seq_len=seq_len, prepend_bos=prepend_bos)
