"""Context windows around a token: which positions, and the feature's activations on them.

The one place the window arithmetic lives (the pass gathers activations with it, the ablation
effects and the records builder find their positions with it). The window of the token at
position ``pos`` of a sequence of length ``seq_len`` starts at ``window_start = max(pos - before,
0)`` and ends at ``min(pos + after, seq_len - 1)``; its activations are stored left-aligned in a
row of ``before + after + 1`` slots (zeros past the end). Both ends are recomputed from the
global token index, so only the activations are stored. ``bounds`` and ``columns`` take torch
tensors (the pass) or numpy arrays (the records, built where torch must not run: records/build.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

Positions = Int[Tensor, "*n"] | Int[np.ndarray, "*n"]
"""Token positions, as the pass holds them (a tensor) or the records do (an array)."""


@dataclass(frozen=True)
class Window:
    """Tokens shown before and after an example's token (``--context-before/--context-after``)."""

    before: int
    after: int

    @property
    def width(self) -> int:
        """Slots of a stored window: ``before + after + 1``."""
        return self.before + self.after + 1

    def bounds(self, pos: Positions, seq_len: int) -> tuple[Positions, Positions]:
        """(window_start, length) of the windows around positions ``pos`` (tensor or array)."""
        start = (pos - self.before).clip(min=0)
        end = (pos + self.after).clip(max=seq_len - 1)
        return start, end - start + 1

    def columns(self, pos: Positions, seq_len: int) -> Positions:
        """[*n, width]: positions of each window's slots, clamped to the sequence (padding
        repeats the last); a tensor for a tensor ``pos``, an array for an array."""
        start, _ = self.bounds(pos, seq_len)
        if isinstance(pos, np.ndarray):
            offsets = np.arange(self.width)
        else:
            offsets = torch.arange(self.width, device=pos.device)
        return (start[..., None] + offsets).clip(max=seq_len - 1)

    def inside(self, pos: Int[Tensor, "*n"], seq_len: int) -> torch.BoolTensor:
        """[*n, width]: whether each slot lies inside its window (False: padding)."""
        _, length = self.bounds(pos, seq_len)
        return torch.arange(self.width, device=pos.device) < length[..., None]


def gather_windows(
    acts: Float[Tensor, "tok d_sae"],
    tok: Int[Tensor, " n"],
    feat: Int[Tensor, " n"],
    seq_len: int,
    window: Window,
) -> Float[Tensor, "n width"]:
    """acts[row(window_start + i), feat] for i < width, zero past the window's end.

    ``tok`` are rows of the batch's flattened activations; the batch holds whole sequences.
    """
    pos = tok % seq_len
    rows = (tok - pos)[:, None] + window.columns(pos, seq_len)
    valid = window.inside(pos, seq_len)
    d_sae = acts.shape[-1]
    values = acts.reshape(-1)[rows * d_sae + feat[:, None]]
    return torch.where(valid, values, torch.zeros_like(values))
