"""Vectorised per-group selection: rank within sorted groups, keep the s smallest keys per group."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int, Shaped
from torch import Tensor


def rank_within_group(group: Int[Tensor, " n"]) -> Int[Tensor, " n"]:
    """Position of each element among the elements of its group (``group`` sorted ascending)."""
    n = group.numel()
    if n == 0:
        return group
    first = torch.ones(n, dtype=torch.bool, device=group.device)
    first[1:] = group[1:] != group[:-1]
    start = torch.cummax(torch.where(first, torch.arange(n, device=group.device), 0), 0).values
    return torch.arange(n, device=group.device) - start


def float_order(values: Float[Tensor, " n"]) -> Int[Tensor, " n"]:
    """An int64 with the same order as non-negative float32 values (their IEEE bits)."""
    return values.float().contiguous().view(torch.int32).long()


def sort_by_group(group: Int[Tensor, " n"], order_key: Int[Tensor, " n"]) -> Int[Tensor, " n"]:
    """Indices ordering by (group, order_key), ties in input order; order_key in [0, 2^31)."""
    return torch.sort(group * (1 << 31) + order_key, stable=True).indices


def smallest_per_group(
    group: Int[Tensor, " n"], key: Int[Tensor, " n"], s: int
) -> tuple[Int[Tensor, " m"], Int[Tensor, " m"]]:
    """(indices, rank) of the ``s`` smallest keys (int64, any range) of each group.

    Ordered by (group, key); equal keys keep their input order. Two stable sorts.
    """
    order = torch.sort(key, stable=True).indices
    order = order[torch.sort(group[order], stable=True).indices]
    rank = rank_within_group(group[order])
    keep = rank < s
    return order[keep], rank[keep]


def best_of_union(
    old_key: Shaped[Tensor, "n m"],
    new_key: Shaped[Tensor, "n m2"],
    old_tie: Tensor | None = None,
    new_tie: Tensor | None = None,
) -> tuple[Int[Tensor, "r 2"], Int[Tensor, "r 2"]]:
    """Row-wise, keep the m smallest keys of old ∪ new; say which new items replace which slots.

    Order: key ascending, then tie ascending (if given), then old before new. Returns ``(dst,
    src)``: the (row, column) of each old slot that is given up and the (row, column) of the new
    item that takes it, paired in order (both lists are row-major, with equal counts per row).
    Only these pairs need writing, so reservoirs stay unsorted and payloads are copied once.
    """
    m = old_key.shape[1]
    key = torch.cat([old_key, new_key], 1)
    if old_tie is None:
        order = torch.sort(key, dim=1, stable=True).indices
    else:
        by_tie = torch.sort(torch.cat([old_tie, new_tie], 1), dim=1, stable=True).indices
        order = by_tie.gather(1, torch.sort(key.gather(1, by_tie), dim=1, stable=True).indices)
    chosen = torch.zeros_like(key, dtype=torch.bool).scatter_(1, order[:, :m], True)
    return torch.nonzero(~chosen[:, :m]), torch.nonzero(chosen[:, m:])
