"""Building blocks of the toy pages' SVG: colour scales, numbers, ``<svg>`` and ``<text>``.

Data colours are attributes (they encode values); text uses ``currentColor`` so dark mode works.
Coordinates go through ``plots.coord`` (0.1 px, no trailing ``.0``), the same as every plot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import escape

from saesite.site.plots import coord

Matrix = Sequence[Sequence[float]]

VIRIDIS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))
DIVERGING = ((33, 102, 172), (247, 247, 247), (178, 24, 43))  # blue, white, red
CATEGORICAL = tuple("#4e79a7 #f28e2b #e15759 #76b7b2 #59a14f #edc948 #b07aa1 #ff9da7".split())


def fmt(value: float) -> str:
    """A value for tooltips and labels: three significant digits."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    return f"{value:.3g}"


def _hex(rgb: Sequence[float]) -> str:
    return "#" + "".join(f"{round(c):02x}" for c in rgb)


def _ramp(stops: Sequence[Sequence[int]], t: float) -> str:
    t = min(1.0, max(0.0, t if math.isfinite(t) else 0.0)) * (len(stops) - 1)
    i = min(int(t), len(stops) - 2)
    frac = t - i
    return _hex([a + (b - a) * frac for a, b in zip(stops[i], stops[i + 1])])


def sequential(t: float) -> str:
    """Viridis-like colour for ``t`` in [0, 1] (dark purple to yellow)."""
    return _ramp(VIRIDIS, t)


def diverging(value: float, limit: float) -> str:
    """Blue for −limit, white for 0, red for +limit."""
    t = 0.5 if limit <= 0 else 0.5 + 0.5 * value / limit
    return _ramp(DIVERGING, t)


def svg_open(width: float, height: float, label: str, css: str = "") -> list[str]:
    """The opening ``<svg>`` (class ``plot toy-plot``) and its ``<title>``."""
    return [
        f'<svg class="plot toy-plot{(" " + css) if css else ""}" viewBox="0 0 {coord(width)}'
        f' {coord(height)}" width="{coord(width)}" height="{coord(height)}" role="img"'
        f' aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
    ]


def svg_text(
    x: float, y: float, content: str, anchor: str = "middle", size: int = 10, extra: str = ""
) -> str:
    """A ``<text>`` element; ``content`` is escaped."""
    return (
        f'<text x="{coord(x)}" y="{coord(y)}" text-anchor="{anchor}" font-size="{size}"'
        f' fill="currentColor"{extra}>{escape(content)}</text>'
    )


def columns(matrix: Matrix) -> list[list[float]]:
    """The columns of a list-of-rows matrix."""
    return [list(col) for col in zip(*matrix)] if matrix else []


def euclidean_norm(vector: Sequence[float]) -> float:
    """Euclidean norm."""
    return math.sqrt(sum(v * v for v in vector))


def importance_colours(importance: Sequence[float]) -> list[str]:
    """Most important feature yellow, least important dark purple (as in the paper)."""
    lo, hi = min(importance), max(importance)
    span = hi - lo
    return [sequential(1.0 if span <= 0 else (v - lo) / span) for v in importance]
