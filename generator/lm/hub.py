"""Models from the Hugging Face hub through TransformerLens: by name, or from a model folder.

    --model gpt2-small | pythia-1.4b | Qwen/Qwen2.5-0.5B     any TransformerLens name
    --model PATH/models--ORG--NAME/snapshots/<sha>            a Hugging Face snapshot or folder
Both go through ``HookedTransformer.from_pretrained`` (with ``hf_model`` for a folder), so the
weight processing is TransformerLens' own. TransformerLens reads the model's hub config by its
name, so a folder needs a name it knows: the snapshot's repo id, or ``_name_or_path``.
Offline, HF_HUB_OFFLINE=1 with those files in the Hugging Face cache works.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import torch

from saesite.errors import SaesiteError

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
OFFLINE_HINT = (
    "without network, set HF_HUB_OFFLINE=1 with the model in the Hugging Face cache, or pass a "
    "local model folder"
)


def is_hf_folder(path: Path) -> bool:
    """A transformers model folder (config.json with model_type), not a saesite model folder."""
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(config, dict) and "model_type" in config and "d_model" not in config


def repo_id_of(path: Path) -> str | None:
    """ORG/NAME of a hub snapshot folder (``models--ORG--NAME/snapshots/<sha>``), else the
    config's ``_name_or_path``."""
    match = re.search(r"models--([^/]+)/snapshots/[0-9a-f]{40}", path.resolve().as_posix())
    if match:
        return match.group(1).replace("--", "/")
    try:
        name = json.loads((path / "config.json").read_text()).get("_name_or_path")
    except (OSError, json.JSONDecodeError):
        return None
    return name if isinstance(name, str) and name and not Path(name).is_absolute() else None


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]


def load_hub_model(
    name: str,
    device: str,
    dtype: str = "float32",
    from_pretrained_kwargs: dict[str, Any] | None = None,
    **hf: Any,
):
    """``HookedTransformer.from_pretrained(name, ...)`` with one-line errors."""
    from transformer_lens import HookedTransformer

    kwargs = {**(from_pretrained_kwargs or {}), **hf}
    log.info("loading %s through TransformerLens (%s)", name, dtype)
    try:
        return HookedTransformer.from_pretrained(
            name, device=device, dtype=DTYPES[dtype], **kwargs
        ).eval()
    except Exception as err:  # network errors, unknown names: one line for the user
        raise SaesiteError(
            f"--model {name}: TransformerLens could not load it ({_one_line(err)}); {OFFLINE_HINT}"
        ) from None


def load_hf_folder(path: Path, device: str, dtype: str = "float32"):
    """A Hugging Face model folder through TransformerLens with ``hf_model``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = repo_id_of(path)
    if name is None:
        raise SaesiteError(
            f"--model {path}: a Hugging Face model folder, but TransformerLens needs the model's "
            "name; expected a hub snapshot (models--ORG--NAME/snapshots/<sha>) or a "
            "config.json with _name_or_path"
        )
    try:
        hf_model = AutoModelForCausalLM.from_pretrained(str(path), dtype=DTYPES[dtype])
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except Exception as err:  # transformers raises many kinds: one line for the user
        raise SaesiteError(f"--model {path}: cannot be read ({_one_line(err)})") from None
    return load_hub_model(name, device, dtype, hf_model=hf_model, tokenizer=tokenizer), name
