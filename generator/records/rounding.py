"""Numbers in records, rounded to significant digits: short JSON, no false precision.

``round_significant(x, d)`` is the double nearest the ``d``-significant-digit decimal of ``x``
(0, inf and NaN stay as they are), so JSON writers print it short (``0.1235``, not
``0.12349999``). Records use 4 digits (pages show 3), example activations 7, training logs 6,
search rows 3. numpy only: the torch-free site uses it too.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def round_significant(values: Any, digits: int = 4) -> np.ndarray:
    """Each value rounded to ``digits`` significant digits, as the double nearest that decimal."""
    x = np.asarray(values, dtype=np.float64)
    out = np.zeros_like(x)
    nonzero = np.isfinite(x) & (x != 0)
    v = x[nonzero]
    scale = digits - 1 - np.floor(np.log10(np.abs(v))).astype(np.int64)
    up = scale >= 0
    r = np.empty_like(v)
    p_up = 10.0 ** scale[up]
    r[up] = np.round(v[up] * p_up) / p_up
    p_down = 10.0 ** (-scale[~up])
    r[~up] = np.round(v[~up] / p_down) * p_down
    out[nonzero] = r
    out[~np.isfinite(x)] = x[~np.isfinite(x)]
    return out


def rounded(values: Any, digits: int = 4) -> Any:
    """A number, array, tensor or nested list rounded (``round_significant``), as a Python
    float or nested lists of floats. A tensor is read as float32, the precision statistics are
    shown at (a float64 one is rounded to float32 first; pass ``.tolist()`` to avoid that)."""
    if hasattr(values, "detach"):  # a torch tensor (any dtype, any device)
        values = values.detach().cpu().float().numpy()
    return round_significant(values, digits).tolist()
