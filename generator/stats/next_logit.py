"""Each shown example's direct effect on the logit of the token that came next.

For an example of feature f at (seq, pos), with ``t = token[seq, pos + 1]``,
    next_logit = LN(d_f) · W_U[:, t]
where ``LN(d_f)`` is the feature's output direction through the final normalisation's linear
part, exactly as the logit-effects section computes it (``stats/weights.py``): the entry of
``effects_f`` for the token that actually followed. NaN at a sequence's last position (nothing
follows), in unused slots, and for hooks with no direct path to the unembedding.

Only the examples a page shows are computed (top-k and the interval samples): the weight
statistics read these entries off the logit product they compute anyway
(``weight_stats(read=...)``), so they cost one gather per chunk of features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor


@dataclass(frozen=True)
class NextLogit:
    """Per shown example, the feature's direct effect on the next token's logit (NaN: none)."""

    top: Float[Tensor, "d_sae k"]
    intervals: Float[Tensor, "d_sae n_intervals s"]


@dataclass(frozen=True)
class NextTokens:
    """The token after each shown example (top-k, then the interval samples, per feature)."""

    ids: Int[Tensor, "d_sae n"]
    """Token id that followed (0 where none did: read but not used)."""
    has_next: Bool[Tensor, "d_sae n"]
    """False in unused slots and at a sequence's last position."""
    k: int
    interval_shape: tuple[int, ...]

    def effects(self, read: Float[Tensor, "d_sae n"] | None) -> NextLogit:
        """The ``NextLogit`` of logit effects read at ``ids`` (None: the hook has none)."""
        if read is None:
            read = torch.full(self.ids.shape, float("nan"))
        read = torch.where(self.has_next, read.float().cpu(), float("nan"))
        k = self.k
        return NextLogit(top=read[:, :k], intervals=read[:, k:].reshape(self.interval_shape))


def next_tokens(
    token_ids: Int[Tensor, "n_seq seq_len"],
    seq_start: int,
    top_index: Int[Tensor, "d_sae k"],
    interval_index: Int[Tensor, "d_sae n_intervals s"],
) -> NextTokens:
    """Where the examples at global token indices ``top_index`` and ``interval_index`` (−1:
    unused) are followed by a token of ``token_ids`` (sequences ``seq_start``… of the data),
    and which."""
    d_sae = interval_index.shape[0]
    index = torch.cat([top_index, interval_index.reshape(d_sae, -1)], dim=1)
    seq_len = token_ids.shape[1]
    flat = token_ids.reshape(-1).cpu()
    first = seq_start * seq_len
    pos = index % seq_len
    has_next = (index >= first) & (index < first + flat.numel()) & (pos + 1 < seq_len)
    following = torch.where(has_next, index - first + 1, 0).clamp(max=max(flat.numel() - 1, 0))
    return NextTokens(
        ids=flat[following],
        has_next=has_next,
        k=top_index.shape[1],
        interval_shape=tuple(interval_index.shape),
    )
