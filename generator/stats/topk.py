"""Per-feature top-k activating tokens, with the activations of their context windows.

State per feature f: the k largest ``(act, global token index)`` seen so far — among equal acts
the earlier token wins — in no particular order (sorted at ``finalize``), and for each the
activations of f on the token's window (see ``stats/windows.py``), captured when the token is
inserted: the window lies in the current batch because batches hold whole sequences.

Update: only entries above the feature's current k-th value are candidates (a sparse filter; after
warm-up almost nothing passes). Candidates are cut to k per feature, ordered (act desc, token asc),
and each touched row keeps the best k of old ∪ new; only the new winners' windows are gathered
and written. Tokens arrive in increasing global index, so a new token that ties the k-th value
loses, as it should. ``merge`` uses the same (act desc, index asc) order, so shards merged in any
order equal one pass. Memory: d_sae · k · (window + 3) numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from saesite.stats.batch import TokenBatch
from saesite.stats.grouping import best_of_union, float_order, rank_within_group, sort_by_group
from saesite.stats.windows import Window, gather_windows

NO_TOKEN = torch.iinfo(torch.int64).max
"""Index of an empty slot while selecting (sorts after every real token)."""


@dataclass(frozen=True)
class TopK:
    values: Float[Tensor, "d_sae k"]
    """Activations, descending; -inf in unused slots."""
    index: Int[Tensor, "d_sae k"]
    """Global token index (seq · seq_len + pos); -1 in unused slots."""
    windows: Float[Tensor, "d_sae k width"]
    """Activations on the window starting at max(pos - context_before, 0)."""


class TopKAccumulator:
    """The k highest activations of each feature and their context windows."""

    def __init__(self, d_sae: int, k: int, window: Window, device: str = "cpu"):
        self.k = k
        self.window = window
        width = window.width
        self.values = torch.full((d_sae, k), float("-inf"), device=device)
        self.index = torch.full((d_sae, k), NO_TOKEN, dtype=torch.int64, device=device)
        self.windows = torch.zeros(d_sae, k, width, device=device)

    def _select(self, rows: Tensor, new_values: Tensor, new_index: Tensor):
        """(dst rows, dst columns, src rows, src columns) of the new entries that get in."""
        dst, src = best_of_union(-self.values[rows], -new_values, self.index[rows], new_index)
        return rows[dst[:, 0]], dst[:, 1], src[:, 0], src[:, 1]

    @torch.no_grad()
    def update(self, acts: Float[Tensor, "tok d_sae"], batch: TokenBatch) -> None:
        active = batch.active
        threshold = self.values.min(1).values
        cand = torch.nonzero(active.values > threshold[active.feat]).squeeze(1)
        if cand.numel() == 0:
            return
        # Order by (feature, act desc, token asc); entries arrive with token ascending.
        descending = (1 << 31) - 1 - float_order(active.values[cand])
        cand = cand[sort_by_group(active.feat[cand], descending)]
        feat = active.feat[cand]
        rank = rank_within_group(feat)
        keep = rank < self.k
        cand, feat, rank = cand[keep], feat[keep], rank[keep]
        rows, row_of = torch.unique_consecutive(feat, return_inverse=True)
        device = feat.device
        new_values = torch.full((rows.numel(), self.k), float("-inf"), device=device)
        new_index = torch.full((rows.numel(), self.k), NO_TOKEN, dtype=torch.int64, device=device)
        slot = torch.full((rows.numel(), self.k), -1, dtype=torch.int64, device=device)
        new_values[row_of, rank] = active.values[cand]
        new_index[row_of, rank] = active.tok[cand] + batch.token_offset
        slot[row_of, rank] = cand
        f, c, src_row, src_col = self._select(rows, new_values, new_index)
        won = slot[src_row, src_col]
        self.values[f, c] = active.values[won]
        self.index[f, c] = active.tok[won] + batch.token_offset
        self.windows[f, c] = gather_windows(
            acts, active.tok[won], active.feat[won], batch.seq_len, self.window
        )

    def merge(self, other: TopKAccumulator) -> None:
        rows = torch.arange(self.values.shape[0], device=self.values.device)
        f, c, src_row, src_col = self._select(rows, other.values, other.index)
        self.values[f, c] = other.values[src_row, src_col]
        self.index[f, c] = other.index[src_row, src_col]
        self.windows[f, c] = other.windows[src_row, src_col]

    def finalize(self) -> TopK:
        """Rows sorted by (act desc, index asc)."""
        values, index = self.values.cpu(), self.index.cpu()
        by_index = torch.sort(index, dim=1, stable=True).indices
        order = by_index.gather(
            1, torch.sort(values.gather(1, by_index), dim=1, descending=True, stable=True).indices
        )
        line = torch.arange(values.shape[0])[:, None]
        index = index.gather(1, order)
        return TopK(
            values=values.gather(1, order),
            index=torch.where(index == NO_TOKEN, -1, index),
            windows=self.windows.cpu()[line, order],
        )

    def state_dict(self) -> dict[str, Tensor | int | float | str]:
        return {
            "k": self.k,
            "context_before": self.window.before,
            "context_after": self.window.after,
            "values": self.values,
            "index": self.index,
            "windows": self.windows,
        }

    @classmethod
    def from_state_dict(cls, state: dict, device: str = "cpu") -> TopKAccumulator:
        d_sae = state["values"].shape[0]
        window = Window(state["context_before"], state["context_after"])
        acc = cls(d_sae, state["k"], window, device)
        for name in ("values", "index", "windows"):
            setattr(acc, name, state[name].to(device))
        return acc
