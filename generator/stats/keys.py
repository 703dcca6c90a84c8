"""Random sampling keys that depend only on (seed, feature, global token): shard-invariant.

The reservoirs (``quantiles.py``, ``cofiring.py``) keep, per group, the items with the smallest
keys. If each key is a fixed function of the item — not the next draw of a generator whose state
depends on how many items came before — then "the s smallest keys" is a function of the set of
items alone, so any split of the tokens into shards, merged in any order, keeps exactly the
items one pass keeps.

    x   = token · φ + mix(feature · φ' + mix(seed))      (mod 2^64, φ and φ' odd)
    key = mix(x)                                         (an int64, uniform over its range)

``mix`` is the splitmix64 finaliser, a bijection of 64-bit integers; token ↦ x is a bijection
for a fixed feature (odd multiplier), so the keys of one feature's tokens are all distinct and
"smallest" never needs a tie-break. ``EMPTY`` (the int64 maximum) marks an unused reservoir slot;
a real item hashes to it with probability 2^-64.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from jaxtyping import Int
from torch import Tensor

from saesite.stats.grouping import best_of_union, smallest_per_group

EMPTY = torch.iinfo(torch.int64).max
"""Key of an unused reservoir slot (larger than every real key but one in 2^64)."""


def _signed(value: int) -> int:
    """A 64-bit pattern as the int64 torch stores it."""
    return value - (1 << 64) if value >= 1 << 63 else value


PHI = _signed(0x9E3779B97F4A7C15)
PHI_FEATURE = _signed(0xD1B54A32D192ED03)
M1 = _signed(0xBF58476D1CE4E5B9)
M2 = _signed(0x94D049BB133111EB)


def _xor_shift_right_(z: Tensor, bits: int) -> Tensor:
    """``z ^= z >>> bits`` (a logical shift of the int64 bit patterns), in place."""
    return z.bitwise_xor_((z >> bits).bitwise_and_((1 << (64 - bits)) - 1))


def mix_(z: Int[Tensor, " n"]) -> Int[Tensor, " n"]:
    """splitmix64's finaliser on int64 bit patterns, in place (multiplication wraps mod 2^64)."""
    _xor_shift_right_(z, 30).mul_(M1)
    _xor_shift_right_(z, 27).mul_(M2)
    return _xor_shift_right_(z, 31)


def mix(z: Int[Tensor, " n"]) -> Int[Tensor, " n"]:
    """``mix_`` on a copy."""
    return mix_(z.clone())


def mix_int(value: int) -> int:
    """``mix`` of one Python integer, as a signed int64."""
    return int(mix(torch.tensor([_signed(value % (1 << 64))], dtype=torch.int64))[0])


@lru_cache(maxsize=8)
def feature_salts(seed: int, d_sae: int, device: str = "cpu") -> Int[Tensor, " d_sae"]:
    """``mix(feature · φ' + mix(seed))`` for every feature (cached: treat as read-only)."""
    feature = torch.arange(d_sae, dtype=torch.int64, device=device)
    return mix_(feature.mul_(PHI_FEATURE).add_(mix_int(seed)))


def sample_keys(
    salts: Int[Tensor, " d_sae"], feature: Int[Tensor, " n"], token: Int[Tensor, " n"]
) -> Int[Tensor, " n"]:
    """The key of each (feature, global token index) item; distinct per feature.

    ``salts`` from ``feature_salts(seed, d_sae)``.
    """
    return mix_(token.long().mul(PHI).add_(salts[feature]))


def offer(
    keys: Int[Tensor, "n_groups size"], group: Int[Tensor, " n"], key: Int[Tensor, " n"]
) -> tuple[Int[Tensor, " won"], Int[Tensor, " won"], Int[Tensor, " won"]]:
    """Offer items to per-group reservoirs that keep the ``size`` smallest keys (in place).

    ``group`` must be sorted. Writes the winners' keys into ``keys`` and returns ``(r, c, won)``:
    the reservoir cells that changed and the index (into ``group``/``key``) of the item now in
    each, so the caller gathers payloads for the winners only.
    """
    size = keys.shape[1]
    chosen, rank = smallest_per_group(group, key, size)
    rows, row_of = torch.unique_consecutive(group[chosen], return_inverse=True)
    new_keys = torch.full((rows.numel(), size), EMPTY, dtype=torch.int64, device=key.device)
    item = torch.full((rows.numel(), size), -1, dtype=torch.int64, device=key.device)
    new_keys[row_of, rank] = key[chosen]
    item[row_of, rank] = chosen
    dst, src = best_of_union(keys[rows], new_keys)
    won = item[src[:, 0], src[:, 1]]
    r, c = rows[dst[:, 0]], dst[:, 1]
    keys[r, c] = key[won]
    return r, c, won
