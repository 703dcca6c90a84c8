"""One batch of the streaming pass: its token ids, where it sits in the dataset, its non-zeros.

The pass extracts the non-zero activations of a batch once (``SparseActs``) and hands the same
sparse list to every accumulator; per-feature reductions that several accumulators need (the
batch maximum) are computed once and cached.

Token indexing: a batch holds whole sequences ``seq_start .. seq_start + batch - 1``; row ``t``
of ``acts`` is position ``t % seq_len`` of sequence ``seq_start + t // seq_len``, and its global
token index is ``seq_start * seq_len + t`` (dataset order).

Feature shards (``stats/feature_range.py``): a pass over features ``start .. stop - 1`` hands
the accumulators ``active`` restricted to them, renumbered from 0, with ``feature_start`` saying
where they begin (sampling keys hash the global feature) and ``all_active`` holding every
feature's non-zeros (co-firing pairs a shard's features with all others).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from jaxtyping import Float, Int
from torch import Tensor

from saesite.stats.keys import feature_salts, sample_keys


@dataclass
class SparseActs:
    """The non-zero entries of a [tok, d_sae] activation matrix, in row-major order."""

    values: Float[Tensor, " nnz"]
    tok: Int[Tensor, " nnz"]
    """Row of the entry in the batch's flattened [batch·pos] activations."""
    feat: Int[Tensor, " nnz"]
    d_sae: int
    n_tok: int = 0
    _feature_max: Tensor | None = field(default=None, repr=False)
    _row_ptr: Tensor | None = field(default=None, repr=False)

    @classmethod
    def from_dense(cls, acts: Float[Tensor, "tok d_sae"]) -> SparseActs:
        """Entries with ``acts > 0`` (SAE activations are non-negative)."""
        flat = acts.reshape(-1)
        idx = torch.nonzero(flat > 0).squeeze(1)
        d_sae = acts.shape[-1]
        return cls(
            values=flat[idx], tok=idx // d_sae, feat=idx % d_sae, d_sae=d_sae, n_tok=acts.shape[0]
        )

    def feature_max(self) -> Float[Tensor, " d_sae"]:
        """Per-feature maximum over the batch (0 where the feature did not fire)."""
        if self._feature_max is None:
            out = torch.zeros(self.d_sae, dtype=self.values.dtype, device=self.values.device)
            self._feature_max = out.scatter_reduce_(0, self.feat, self.values, "amax")
        return self._feature_max

    def restrict(self, start: int, stop: int) -> SparseActs:
        """The entries of features ``start .. stop - 1``, renumbered from 0 (order kept)."""
        keep = torch.nonzero((self.feat >= start) & (self.feat < stop)).squeeze(1)
        return SparseActs(
            values=self.values[keep],
            tok=self.tok[keep],
            feat=self.feat[keep] - start,
            d_sae=stop - start,
            n_tok=self.n_tok,
        )

    def row_ptr(self) -> Int[Tensor, " n_tok_plus_1"]:
        """Entries of row t are ``row_ptr[t] : row_ptr[t + 1]`` (CSR row pointers)."""
        if self._row_ptr is None:
            counts = torch.bincount(self.tok, minlength=self.n_tok)
            self._row_ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        return self._row_ptr


@dataclass
class TokenBatch:
    """Whole sequences of the dataset and the sparse activations computed on them."""

    token_ids: Int[Tensor, "batch pos"]
    seq_start: int
    """Dataset index of the batch's first sequence."""
    active: SparseActs
    feature_start: int = 0
    """Global index of ``active``'s feature 0 (non-zero in a feature shard)."""
    all_active: SparseActs | None = None
    """Every feature's non-zeros, where ``active`` holds a feature shard's; else None."""
    _keys: dict[int, Tensor] = field(default_factory=dict, repr=False)

    @classmethod
    def from_acts(
        cls, token_ids: Int[Tensor, "batch pos"], seq_start: int, acts: Float[Tensor, "tok d_sae"]
    ) -> TokenBatch:
        return cls(token_ids=token_ids, seq_start=seq_start, active=SparseActs.from_dense(acts))

    @property
    def every_feature(self) -> SparseActs:
        """The non-zeros of all the SAE's features (global numbering)."""
        return self.active if self.all_active is None else self.all_active

    @property
    def seq_len(self) -> int:
        return self.token_ids.shape[1]

    @property
    def n_tokens(self) -> int:
        return self.token_ids.numel()

    @property
    def token_offset(self) -> int:
        """Global index of the batch's first token."""
        return self.seq_start * self.seq_len

    def sample_keys(self, seed: int) -> Int[Tensor, " nnz"]:
        """The sampling key of every non-zero (``stats/keys.py``); cached, so the samplers that
        share a seed hash each entry once."""
        keys = self._keys.get(seed)
        if keys is None:
            active = self.active
            start = self.feature_start
            salts = feature_salts(seed, start + active.d_sae, str(active.feat.device))
            keys = self._keys[seed] = sample_keys(
                salts[start:], active.feat, active.tok + self.token_offset
            )
        return keys
