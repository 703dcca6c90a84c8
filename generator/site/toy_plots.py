"""Inline SVG for the toy-model pages: matrices and bars (WᵀW, feature norms, neuron weights,
exposures), drawn at build time from plain lists (no torch); the geometry is in toy_geometry.

Every function returns ``markupsafe.Markup`` and is deterministic: coordinates are rounded to
0.1 px and values in ``<title>`` tooltips to three significant digits. Data colours are written
as attributes (they encode values); text and axes use ``currentColor`` so dark mode works.
Matrices are lists of rows: ``W`` is ``[n_hidden][n_features]`` as in ``h = W x``.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from saesite.site.plots import coord
from saesite.site.toy_svg import (
    Matrix,
    columns,
    diverging,
    euclidean_norm,
    fmt,
    importance_colours,
    sequential,
    svg_open,
    svg_text,
)


def heatmap_svg(
    matrix: Matrix,
    *,
    row_names: Sequence[str],
    col_names: Sequence[str],
    label: str,
    cell: float = 0.0,
    limit: float | None = None,
    value_name: str = "value",
) -> Markup:
    """A diverging heat-map, one ``<rect>`` per cell with its value in a ``<title>``."""
    n_rows, n_cols = len(matrix), len(matrix[0]) if matrix else 0
    cell = cell or max(6.0, min(18.0, 260.0 / max(n_rows, n_cols, 1)))
    values = [v for row in matrix for v in row]
    limit = limit if limit is not None else max([abs(v) for v in values] + [1e-9])
    left, top = 30.0, 26.0
    width = max(left + n_cols * cell + 8, 200.0)  # room for the colour legend
    height = top + n_rows * cell + 22
    parts = svg_open(width, height, label)
    every = 1 if cell >= 14 else 5  # labels need about 14 px each
    for j, name in enumerate(col_names):
        if j % every == 0:
            parts.append(svg_text(left + (j + 0.5) * cell, top - 5, name, size=8))
    for i, name in enumerate(row_names):
        if cell >= 9 or i % 5 == 0:
            parts.append(svg_text(left - 3, top + (i + 0.5) * cell + 3, name, anchor="end", size=8))
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            tip = f"{row_names[i]}, {col_names[j]}: {value_name} {fmt(value)}"
            parts.append(
                f'<rect x="{coord(left + j * cell)}" y="{coord(top + i * cell)}"'
                f' width="{coord(cell)}" height="{coord(cell)}" fill="{diverging(value, limit)}">'
                f"<title>{escape(tip)}</title></rect>"
            )
    parts.append(
        svg_text(
            left,
            height - 6,
            f"blue −{fmt(limit)} · white 0 · red +{fmt(limit)}",
            anchor="start",
            size=8,
        )
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def gram(W: Matrix) -> list[list[float]]:
    """WᵀW: entry (i, j) is W_i · W_j, the interference between features i and j."""
    cols = columns(W)
    return [[sum(a * b for a, b in zip(ci, cj)) for cj in cols] for ci in cols]


def gram_heatmap_svg(W: Matrix) -> Markup:
    """The WᵀW heat-map (diverging colours, each value in a tooltip)."""
    names = [f"f{f}" for f in range(len(W[0]) if W else 0)]
    return heatmap_svg(
        gram(W), row_names=names, col_names=names, label="WᵀW: W_i · W_j", value_name="W_i·W_j"
    )


def polysemanticity(W: Matrix) -> list[float]:
    """Σ_{j≠i} (Ŵ_i · W_j)²: 0 when feature i has a dimension to itself."""
    cols = columns(W)
    out = []
    for i, ci in enumerate(cols):
        norm = euclidean_norm(ci)
        if norm < 1e-9:
            out.append(0.0)
            continue
        out.append(
            sum(
                (sum(a * b for a, b in zip(ci, cj)) / norm) ** 2
                for j, cj in enumerate(cols)
                if j != i
            )
        )
    return out


def norm_bars_svg(W: Matrix, *, width: int = 240) -> Markup:
    """‖W_i‖ per feature as horizontal bars coloured by polysemanticity (dark: own dimension)."""
    cols = columns(W)
    norms = [euclidean_norm(c) for c in cols]
    poly = polysemanticity(W)
    bar_h = max(6.0, min(14.0, 280.0 / max(len(cols), 1)))
    left, top = 30.0, 8.0
    top_value = max(norms + [1.0])
    span = width - left - 10
    height = top + len(cols) * bar_h + 34
    parts = svg_open(width, height, "Feature norms ‖W_i‖, coloured by interference")
    for f, (norm, p) in enumerate(zip(norms, poly)):
        y = top + f * bar_h
        tip = f"f{f}: ‖W_i‖ {fmt(norm)}, interference Σ_j≠i (Ŵ_i·W_j)² {fmt(p)}"
        parts.append(
            f'<rect x="{coord(left)}" y="{coord(y + 1)}"'
            f' width="{coord(max(norm / top_value * span, 0.5))}"'
            f' height="{coord(bar_h - 2)}" fill="{sequential(min(p, 1.0))}"><title>{escape(tip)}'
            "</title></rect>"
        )
        if len(cols) <= 24 or f % 5 == 0:
            parts.append(svg_text(left - 3, y + bar_h / 2 + 3, f"f{f}", anchor="end", size=8))
    one = left + span / top_value
    parts.append(
        f'<path d="M{coord(one)} {coord(top)}V{coord(top + len(cols) * bar_h)}"'
        ' stroke="currentColor" stroke-opacity="0.4" stroke-dasharray="2 2"/>'
    )
    axis_y = top + len(cols) * bar_h
    parts.append(svg_text(one, axis_y + 11, "‖W_i‖ = 1", anchor="end", size=8))
    parts.append(
        svg_text(
            left, height - 6, "colour: interference, dark = own dimension", anchor="start", size=8
        )
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def neuron_weights_svg(W: Matrix) -> Markup:
    """Neuron-by-feature input weights W[n, f] as a diverging heat-map."""
    n_features = len(W[0]) if W else 0
    return heatmap_svg(
        W,
        row_names=[f"n{n}" for n in range(len(W))],
        col_names=[f"f{f}" for f in range(n_features)],
        label="Neuron weights W[neuron, feature]",
        value_name="weight",
    )


def stacked_exposures_svg(W: Matrix, importance: Sequence[float], *, height: int = 200) -> Markup:
    """Per neuron, its weights on each feature stacked: positive up, negative down."""
    n_neurons = len(W)
    colours = importance_colours(importance)
    col_w = max(10.0, min(28.0, 360.0 / max(n_neurons, 1)))
    left, top, bottom = 34.0, 8.0, 26.0
    width = left + n_neurons * col_w + 10
    up = [sum(v for v in row if v > 0) for row in W]
    down = [sum(-v for v in row if v < 0) for row in W]
    limit = max(up + down + [1e-9])
    half = (height - top - bottom) / 2
    zero = top + half
    scale = half / limit
    parts = svg_open(width, height, "Stacked feature weights per neuron")
    for n, row in enumerate(W):
        x = left + n * col_w + 1.5
        pos, neg = zero, zero
        for f, value in enumerate(row):
            h = abs(value) * scale
            if h < 0.05:
                continue
            y = pos - h if value > 0 else neg
            if value > 0:
                pos -= h
            else:
                neg += h
            tip = f"neuron {n}, f{f}: weight {fmt(value)}"
            parts.append(
                f'<rect x="{coord(x)}" y="{coord(y)}" width="{coord(col_w - 3)}"'
                f' height="{coord(h)}" fill="{colours[f]}" stroke="currentColor"'
                ' stroke-width="0.3"><title>'
                f"{escape(tip)}</title></rect>"
            )
        if n_neurons <= 24 or n % 5 == 0:
            parts.append(svg_text(x + (col_w - 3) / 2, height - bottom + 12, f"n{n}", size=8))
    parts.append(
        f'<path d="M{coord(left)} {coord(zero)}H{coord(width - 6)}" stroke="currentColor"'
        ' stroke-opacity="0.5"/>'
    )
    parts.append(svg_text(left - 3, top + 8, f"+{fmt(limit)}", anchor="end", size=8))
    parts.append(svg_text(left - 3, height - bottom, f"−{fmt(limit)}", anchor="end", size=8))
    parts.append(svg_text(left, height - 4, "colour: feature importance", anchor="start", size=8))
    parts.append("</svg>")
    return Markup("".join(parts))
