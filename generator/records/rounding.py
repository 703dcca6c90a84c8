"""Numbers in records, rounded to significant digits: short JSON, no false precision.

``round_significant(x, d)`` is the double nearest the ``d``-significant-digit decimal of ``x``
(0, inf and NaN stay as they are), so JSON writers print it short (``0.1235``, not
``0.12349999``). Records use 4 digits (pages show 3), example activations 7, training logs 6,
search rows 3. numpy only: the torch-free site uses it too.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

EXTREME_POWERS = 290
"""Scales by 10**k with |k| above this may overflow a double (subnormal or huge values)."""


def _from_decimal(x: float, digits: int) -> float:
    """The double nearest ``x``'s ``digits``-digit decimal; ``x`` itself where that decimal is
    beyond the largest double (1.797…e308 to 3 digits is 1.80e308)."""
    value = float(f"{x:.{digits}g}")
    return value if math.isfinite(value) else x


def round_significant(values: Any, digits: int = 4) -> np.ndarray:
    """Each value rounded to ``digits`` significant digits, as the double nearest that decimal."""
    x = np.asarray(values, dtype=np.float64)
    out = np.zeros_like(x)
    nonzero = np.isfinite(x) & (x != 0)
    v = x[nonzero]
    scale = digits - 1 - np.floor(np.log10(np.abs(v))).astype(np.int64)
    up = scale >= 0
    r = np.empty_like(v)
    with np.errstate(over="ignore", invalid="ignore"):  # the extremes are mended below
        p_up = 10.0 ** scale[up]
        r[up] = np.round(v[up] * p_up) / p_up
        p_down = 10.0 ** (-scale[~up])
        r[~up] = np.round(v[~up] / p_down) * p_down
    # beyond 10**±EXTREME_POWERS the power of ten overflows (subnormals gave NaN): those few
    # values are read back from their decimal, which is the definition
    extreme = np.abs(scale) > EXTREME_POWERS
    if extreme.any():
        r[extreme] = [_from_decimal(t, digits) for t in v[extreme].tolist()]
    out[nonzero] = r
    out[~np.isfinite(x)] = x[~np.isfinite(x)]
    return out


EXACT_POWERS = 22
"""10.0 ** k is exact for |k| <= 22: there ``round_scalar`` and ``round_significant`` do the
same float arithmetic."""


def round_scalar(x: float, digits: int = 4) -> float:
    """``round_significant`` of one number, without numpy where the power of ten it scales by
    is exact (Python's ``round`` is numpy's half-to-even): a feature's search row and record
    round a few scalars each, and numpy's per-call cost was a tenth of taking a record."""
    if x == 0 or not math.isfinite(x):
        return float(x)
    scale = digits - 1 - math.floor(math.log10(abs(x)))
    if not -EXACT_POWERS <= scale <= EXACT_POWERS:
        return float(round_significant(x, digits))
    if scale >= 0:
        p = 10.0**scale
        return round(x * p) / p
    p = 10.0**-scale
    return round(x / p) * p


def rounded(values: Any, digits: int = 4) -> Any:
    """A number, array, tensor or nested list rounded (``round_significant``), as a Python
    float or nested lists of floats. A tensor is read as float32, the precision statistics are
    shown at (a float64 one is rounded to float32 first; pass ``.tolist()`` to avoid that)."""
    if isinstance(values, float | int):
        return round_scalar(values, digits)
    if hasattr(values, "detach"):  # a torch tensor (any dtype, any device)
        values = values.detach().cpu().float().numpy()
    return round_significant(values, digits).tolist()
