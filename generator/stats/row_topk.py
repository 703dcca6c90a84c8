"""The k largest (or smallest) values of each row of a wide matrix, with one vectorised pass.

``torch.topk`` on the CPU selects over every value of a row with scalar code: at 50,257 logits
it costs a third of the matrix product that made the row. ``row_topk`` splits the row's columns
into ``groups = m // GROUP_SIZE`` strided groups (group j holds columns j, j + groups, ...),
takes each group's max with one vectorised ``amax`` over a [GROUP_SIZE, groups] view, and runs
``topk`` only over the members of the k groups with the largest maxima (plus the few columns
left over). Exact: a value outside those groups is at most the k-th largest group max, which is
at most the k-th largest value, so the values equal ``torch.topk``'s; among equal values the
indices may be others (still distinct, still in the row). Deterministic.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

GROUP_SIZE = 32
"""Values per group: the final ``topk`` runs over k · GROUP_SIZE candidates per row."""


def row_topk(
    x: Float[Tensor, "n m"], k: int, largest: bool = True
) -> tuple[Float[Tensor, "n k"], Int[Tensor, "n k"]]:
    """``x.topk(k, dim=1, largest=largest)`` as (values, indices), sorted, for k <= m."""
    n, m = x.shape
    groups = m // GROUP_SIZE
    if groups < 4 * k or x.stride(1) != 1:  # narrow rows: the plain selection is as cheap
        top = x.topk(k, dim=1, largest=largest)
        return top.values, top.indices
    main = groups * GROUP_SIZE
    members = x[:, :main].view(n, GROUP_SIZE, groups)  # [r, i, j] = x[r, i · groups + j]
    extreme = members.amax(1) if largest else members.amin(1)
    chosen = extreme.topk(k, dim=1, largest=largest).indices
    offsets = torch.arange(0, main, groups, device=x.device)
    ids = (chosen[:, None, :] + offsets[None, :, None]).reshape(n, -1)
    if main < m:
        rest = torch.arange(main, m, device=x.device).expand(n, -1)
        ids = torch.cat([ids, rest], dim=1)
    top = x.gather(1, ids).topk(k, dim=1, largest=largest)
    return top.values, ids.gather(1, top.indices)
