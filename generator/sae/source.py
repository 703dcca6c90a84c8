"""Which loader reads ``--sae``: ARENA's files by their layout, else SAELens (sae/load.py)."""

from __future__ import annotations

from pathlib import Path

from saesite.errors import SaesiteError
from saesite.sae.arena import detect_arena_format, load_arena
from saesite.sae.load import load_sae
from saesite.sae.model import SAE


def load_saes(path: str | Path, device: str = "cpu", instance: int | None = None) -> list[SAE]:
    """Every SAE a ``--sae`` path holds: one, or each instance of an ARENA ``n_instances`` file."""
    fmt = detect_arena_format(path)
    if fmt is not None:
        return load_arena(path, fmt, instance, device)
    if instance is not None:
        raise SaesiteError(
            f"--instance {instance}: {path} is not an ARENA n_instances state dict; expected "
            "--instance only with one"
        )
    return [load_sae(path, device)]


def load_one_sae(path: str | Path, device: str = "cpu", instance: int | None = None) -> SAE:
    """The one SAE a single-SAE build reads; several instances need ``--instance``."""
    saes = load_saes(path, device, instance)
    if len(saes) != 1:
        raise SaesiteError(
            f"--sae {path} holds {len(saes)} SAE instances; expected --instance I "
            f"(0 to {len(saes) - 1}) to choose one"
        )
    return saes[0]
