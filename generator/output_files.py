"""Commands that write a few named files into a folder (``train-sae``, ``train-model``) never
overwrite them unasked: existing files of those names are refused before any work, and
``--force`` replaces those files only; nothing else in the folder is touched."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from saesite.errors import SaesiteError
from saesite.site.out_folder import real_path

SAE_FILES = ("cfg.json", "sae_weights.safetensors", "training_log.json")
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "demo_tokens.npy")


def check_files_free(out: str | Path, names: Iterable[str], *, force: bool) -> None:
    """Refuse when ``out`` is not a folder, or already holds one of ``names`` (unless ``force``)."""
    folder = real_path(out)
    if folder.exists() and not folder.is_dir():
        raise SaesiteError(f"--out {str(out)!r} exists and is not a folder; expected a folder")
    present = [name for name in names if (folder / name).exists()]
    if present and not force:
        raise SaesiteError(
            f"--out {str(out)!r} already holds {', '.join(present)}; expected a folder without "
            "them (pass --force to replace these files; nothing else there is touched)"
        )
