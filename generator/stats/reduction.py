"""Float sums in an order fixed by token position, so sharded passes reduce like one pass.

Floating-point addition is not associative: ``(a + b) + c`` and ``a + (b + c)`` may differ in
the last bit, and a site's JSON prints floats to the last bit. So every float statistic that
sums over batches (firing sums, reconstruction error, loss sums) adds its per-batch values along
one binary tree fixed by position, whatever the split into shards:

    leaves       one value per batch, at the batch's first sequence index p; the batch's other
                 sequences are positions with no leaf
    node (L, i)  covers positions [i · 2^L, (i + 1) · 2^L);
                 value = combine(left child, right child), or the one child that has leaves
    result       the nodes left at the end, folded left to right

A pass over positions [a, b) keeps the maximal nodes inside [a, b) that it has completed (a
stack of at most ~2·log2(b) nodes, each one value); two adjacent ranges join by pushing the
right one's nodes onto the left one's stack, which combines exactly the siblings one pass would
have combined. Ranges that are not adjacent yet wait in a sorted list of runs until the shard
between them arrives. The result is therefore a function of the (position, value) leaves alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

Combine = Callable[[Tensor, Tensor], Tensor]


def add(left: Tensor, right: Tensor) -> Tensor:
    return left + right


@dataclass
class _Run:
    """Nodes covering positions [start, cursor), left to right; None for a node with no leaves."""

    start: int
    cursor: int
    nodes: list[tuple[int, int, Tensor | None]] = field(default_factory=list)
    """(level, index, value)."""


class TreeReduction:
    """Reduces per-batch values with ``combine`` along the binary tree of their positions."""

    def __init__(self, combine: Combine = add):
        self.combine = combine
        self.runs: list[_Run] = []

    def _push(self, run: _Run, level: int, index: int, value: Tensor | None) -> None:
        nodes = run.nodes
        while index % 2 == 1 and nodes and nodes[-1][0] == level and nodes[-1][1] == index - 1:
            left = nodes.pop()[2]
            if left is not None and value is not None:
                value = self.combine(left, value)
            elif left is not None:
                value = left
            level, index = level + 1, index // 2
        nodes.append((level, index, value))

    def _advance(self, run: _Run, to: int) -> None:
        """Cover the positions [cursor, to), which hold no leaves, with empty nodes."""
        while run.cursor < to:
            level = 0
            while (run.cursor >> level) % 2 == 0 and run.cursor + (2 << level) <= to:
                level += 1
            self._push(run, level, run.cursor >> level, None)
            run.cursor += 1 << level

    def add(self, position: int, value: Tensor, stop: int | None = None) -> None:
        """The leaf of a batch of sequences [position, stop) (after every batch added so far).

        The positions after ``position`` hold no leaf, so consecutive batches, and shards of
        consecutive sequences, cover adjacent ranges and join.
        """
        if not self.runs:
            self.runs.append(_Run(start=position, cursor=position))
        run = self.runs[-1]
        if position < run.cursor:
            raise ValueError(f"position {position} comes before {run.cursor}; expected increasing")
        self._advance(run, position)
        self._push(run, 0, position, value)
        run.cursor = position + 1
        self._advance(run, position + 1 if stop is None else stop)

    def merge(self, other: TreeReduction) -> None:
        """Add the leaves of ``other`` (a disjoint range of positions, on either side)."""
        runs = sorted(
            [_Run(r.start, r.cursor, list(r.nodes)) for r in self.runs + other.runs],
            key=lambda r: r.start,
        )
        joined: list[_Run] = []
        for run in runs:
            if joined and run.start < joined[-1].cursor:
                raise ValueError(
                    f"token ranges overlap at position {run.start}; expected disjoint shards"
                )
            if joined and run.start == joined[-1].cursor:
                left = joined[-1]
                for level, index, value in run.nodes:
                    self._push(left, level, index, value)
                left.cursor = run.cursor
            else:
                joined.append(run)
        self.runs = joined

    def result(self) -> Tensor | None:
        """The reduction of every leaf (gaps between runs hold no leaves); None when empty."""
        total = None
        for run in self.runs:
            for _, _, value in run.nodes:
                if value is not None:
                    total = value if total is None else self.combine(total, value)
        return total

    def state_dict(self, prefix: str) -> dict[str, Tensor]:
        """Tensors ``{prefix}.runs`` [n_runs, 2], ``{prefix}.nodes`` [n, 4] (run, level, index,
        has value) and ``{prefix}.value.{j}`` for the j-th node with a value."""
        rows, out, j = [], {}, 0
        for r, run in enumerate(self.runs):
            for level, index, value in run.nodes:
                rows.append([r, level, index, value is not None])
                if value is not None:
                    out[f"{prefix}.value.{j}"] = value
                j += 1
        out[f"{prefix}.runs"] = torch.tensor(
            [[run.start, run.cursor] for run in self.runs], dtype=torch.int64
        ).reshape(-1, 2)
        out[f"{prefix}.nodes"] = torch.tensor(rows, dtype=torch.int64).reshape(-1, 4)
        return out

    def load_state_dict(self, state: dict[str, Tensor], prefix: str, device: str = "cpu") -> None:
        runs = [_Run(int(s), int(c)) for s, c in state[f"{prefix}.runs"].tolist()]
        for j, (r, level, index, has) in enumerate(state[f"{prefix}.nodes"].tolist()):
            value = state[f"{prefix}.value.{j}"].to(device) if has else None
            runs[r].nodes.append((level, index, value))
        self.runs = runs
