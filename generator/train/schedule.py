"""The warm-up + cosine learning-rate schedule of the demo language model and of the
double-descent toy models (the SAE's own schedule is ``train/objective.lr_at``).

    scale(step) = (step + 1) / warmup                                  for step < warmup
                = floor + (1 - floor) · ½ (1 + cos(π (step - warmup) / (steps - warmup)))

a factor of the peak learning rate, ``step`` counted from 0.
"""

from __future__ import annotations

import math


def warmup_cosine(step: int, steps: int, warmup: int, floor: float = 0.0) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay from 1 to ``floor``."""
    warmup = max(1, warmup)
    if step < warmup:
        return (step + 1) / warmup
    cosine = 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))
    return floor + (1.0 - floor) * cosine
