"""Context windows around a token: which positions, and the feature's activations on them.

The one place the window arithmetic lives (the pass gathers activations with it, the ablation
effects and the records builder find their positions with it). The window of the token at
position ``pos`` of a sequence of length ``seq_len`` starts at ``window_start = max(pos - before,
0)`` and ends at ``min(pos + after, seq_len - 1)``; its activations are stored left-aligned in a
row of ``before + after + 1`` slots (zeros past the end). Both ends are recomputed from the
global token index, so only the activations are stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor


@dataclass(frozen=True)
class Window:
    """Tokens shown before and after an example's token (``--context-before/--context-after``)."""

    before: int
    after: int

    @property
    def width(self) -> int:
        """Slots of a stored window: ``before + after + 1``."""
        return self.before + self.after + 1

    def bounds(
        self, pos: Int[Tensor, "*n"], seq_len: int
    ) -> tuple[Int[Tensor, "*n"], Int[Tensor, "*n"]]:
        """(window_start, length) of the windows around positions ``pos``."""
        start = (pos - self.before).clamp_min(0)
        end = (pos + self.after).clamp_max(seq_len - 1)
        return start, end - start + 1

    def columns(self, pos: Int[Tensor, "*n"], seq_len: int) -> Int[Tensor, "*n width"]:
        """Positions of each window's slots, clamped to the sequence (padding repeats the last)."""
        start, _ = self.bounds(pos, seq_len)
        offsets = torch.arange(self.width, device=pos.device)
        return (start[..., None] + offsets).clamp_max(seq_len - 1)

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
