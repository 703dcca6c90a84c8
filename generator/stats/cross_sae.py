"""How the features of two SAEs correspond, read off their decoders alone (ARENA's comparison).

For SAEs A and B on one hook (or hooks of one width, e.g. adjacent layers' residual streams):

    cos(f, g) = Ŵ_dec^A[f] · Ŵ_dec^B[g]            (unit decoder rows)
    neighbours(f)   = the k largest cos(f, ·) over B's features, with their cosines
    best(f)         = max_g cos(f, g)               matched when best(f) >= a threshold
    splits(f)       = {g in B : argmax_f' cos(f', g) = f and cos(f, g) >= threshold}

``splits`` is feature splitting seen from the narrower SAE A: the features of the wider SAE B
whose closest feature in A is f. Everything runs over chunks of A's rows, so memory is
``chunk × d_sae(B)`` floats, never ``d_sae(A) × d_sae(B)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

MATCH_THRESHOLDS = (0.9, 0.7)
"""Shares of features with a match at least this close, as the comparison page reports them."""
HISTOGRAM_EDGES = 41
"""Edges of the max-cosine histogram: 40 bins of width 0.05 over [-1, 1]."""


def unit_rows(W_dec: Float[Tensor, "d_sae d_in"]) -> Float[Tensor, "d_sae d_in"]:
    """Decoder rows scaled to unit norm (a zero row stays zero)."""
    W = W_dec.detach().float()
    return W / W.norm(dim=1, keepdim=True).clamp_min(1e-12)


@dataclass(frozen=True, kw_only=True)
class CrossNeighbours:
    """For each feature of A, its ``k`` closest features of B and the best one."""

    indices: Int[Tensor, "d_sae_a k"]
    cosines: Float[Tensor, "d_sae_a k"]
    best_index: Int[Tensor, " d_sae_a"]
    best_cosine: Float[Tensor, " d_sae_a"]


@torch.no_grad()
def cross_neighbours(
    W_dec_a: Float[Tensor, "d_sae_a d_in"],
    W_dec_b: Float[Tensor, "d_sae_b d_in"],
    k: int,
    chunk_size: int = 1024,
) -> CrossNeighbours:
    """The ``k`` largest decoder cosines of each A feature with B's features (ties: lower index)."""
    if W_dec_a.shape[1] != W_dec_b.shape[1]:
        raise ValueError(
            f"decoders have widths {W_dec_a.shape[1]} and {W_dec_b.shape[1]}; expected one d_in"
        )
    a, b = unit_rows(W_dec_a), unit_rows(W_dec_b)
    k = min(k, b.shape[0])
    indices, cosines = [], []
    for start in range(0, a.shape[0], chunk_size):
        top = (a[start : start + chunk_size] @ b.T).topk(k, dim=1, sorted=True)
        indices.append(top.indices)
        cosines.append(top.values)
    index, cosine = torch.cat(indices), torch.cat(cosines)
    return CrossNeighbours(
        indices=index, cosines=cosine, best_index=index[:, 0], best_cosine=cosine[:, 0]
    )


@torch.no_grad()
def best_match(
    W_dec_a: Float[Tensor, "d_sae_a d_in"],
    W_dec_b: Float[Tensor, "d_sae_b d_in"],
    chunk_size: int = 1024,
) -> tuple[Int[Tensor, " d_sae_a"], Float[Tensor, " d_sae_a"]]:
    """For each A feature, B's closest feature and its cosine."""
    found = cross_neighbours(W_dec_a, W_dec_b, 1, chunk_size)
    return found.best_index, found.best_cosine


def match_summary(best_cosine: Float[Tensor, " d_sae"], unmatched_below: float = 0.7) -> dict:
    """The comparison page's numbers: histogram of best cosines, shares above the thresholds,
    and the unmatched features (best cosine below ``unmatched_below``), lowest first."""
    edges = torch.linspace(-1.0, 1.0, HISTOGRAM_EDGES, dtype=torch.float64)
    values = best_cosine.double().clamp(-1.0, 1.0)
    # bins are [e_i, e_{i+1}), the last one closed so that a cosine of exactly 1 is counted
    bins = (torch.bucketize(values, edges, right=True) - 1).clamp(0, HISTOGRAM_EDGES - 2)
    counts = torch.bincount(bins, minlength=HISTOGRAM_EDGES - 1)
    n = max(values.numel(), 1)
    unmatched = torch.nonzero(values < unmatched_below).flatten()
    order = values[unmatched].argsort(stable=True)
    return {
        "edges": [round(e, 6) for e in edges.tolist()],
        "counts": counts.tolist(),
        "share_above": {str(t): float((values >= t).sum().item()) / n for t in MATCH_THRESHOLDS},
        "unmatched": unmatched[order].tolist(),
    }


@torch.no_grad()
def split_children(
    W_dec_narrow: Float[Tensor, "d_narrow d_in"],
    W_dec_wide: Float[Tensor, "d_wide d_in"],
    threshold: float = 0.5,
    chunk_size: int = 1024,
) -> list[list[tuple[int, float]]]:
    """For each narrow feature, ``(wide feature, cosine)`` of the wide features it splits into:
    those whose closest narrow feature it is, at cosine >= ``threshold``, closest first."""
    parent, cosine = best_match(W_dec_wide, W_dec_narrow, chunk_size)
    children: list[list[tuple[float, int]]] = [[] for _ in range(W_dec_narrow.shape[0])]
    for child, (p, c) in enumerate(zip(parent.tolist(), cosine.tolist(), strict=True)):
        if c >= threshold:
            children[p].append((-c, child))
    return [[(child, -c) for c, child in sorted(group)] for group in children]


def splits(
    W_dec_narrow: Float[Tensor, "d_narrow d_in"],
    W_dec_wide: Float[Tensor, "d_wide d_in"],
    threshold: float = 0.5,
    chunk_size: int = 1024,
) -> list[list[int]]:
    """For each narrow feature, the wide features it splits into (``split_children`` without
    the cosines)."""
    found = split_children(W_dec_narrow, W_dec_wide, threshold, chunk_size)
    return [[child for child, _ in group] for group in found]
