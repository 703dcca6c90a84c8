"""Context windows around a token: which positions, and the feature's activations on them.

The window of the token at position ``pos`` of a sequence of length ``seq_len`` starts at
``window_start = max(pos - before, 0)`` and ends at ``min(pos + after, seq_len - 1)``; its
activations are stored left-aligned in a row of ``before + after + 1`` slots (zeros past the end).
Both ends are recomputed from the global token index, so only the activations are stored.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor


def window_bounds(
    pos: Int[Tensor, " n"], seq_len: int, before: int, after: int
) -> tuple[Int[Tensor, " n"], Int[Tensor, " n"]]:
    """(window_start, length) of the windows around positions ``pos``."""
    start = (pos - before).clamp_min(0)
    end = (pos + after).clamp_max(seq_len - 1)
    return start, end - start + 1


def gather_windows(
    acts: Float[Tensor, "tok d_sae"],
    tok: Int[Tensor, " n"],
    feat: Int[Tensor, " n"],
    seq_len: int,
    before: int,
    after: int,
) -> Float[Tensor, "n width"]:
    """acts[row(window_start + i), feat] for i < width, zero past the window's end.

    ``tok`` are rows of the batch's flattened activations; the batch holds whole sequences.
    """
    width = before + after + 1
    pos = tok % seq_len
    start, length = window_bounds(pos, seq_len, before, after)
    offsets = torch.arange(width, device=tok.device)
    rows = (tok - pos + start)[:, None] + offsets[None, :]
    valid = offsets[None, :] < length[:, None]
    rows = torch.where(valid, rows, tok[:, None])
    d_sae = acts.shape[-1]
    values = acts.reshape(-1)[rows * d_sae + feat[:, None]]
    return torch.where(valid, values, torch.zeros_like(values))
