"""Inline SVG of where a toy model puts its features: the features in the hidden plane, each
feature's dimensionality, and an SAE's decoder directions against the true features.

The conventions of ``toy_plots`` (Markup, deterministic, 0.1 px, ``currentColor`` for text);
``W`` is ``[n_hidden][n_features]`` as in ``h = W x``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

from saesite.site.plots import coord
from saesite.site.toy_svg import (
    CATEGORICAL,
    Matrix,
    columns,
    euclidean_norm,
    fmt,
    importance_colours,
    svg_open,
    svg_text,
)

STICKY_FRACTIONS = ((1.0, "1"), (0.75, "3/4"), (2 / 3, "2/3"), (0.5, "1/2"), (0.4, "2/5"))
"""Dimensionalities the paper found features stick to (digon 1/2, pentagon 2/5, …)."""


def feature_scatter_svg(W: Matrix, importance: Sequence[float], *, size: int = 220) -> Markup:
    """Where each feature lands in a 2-D hidden space: a line from the origin to W[:, f]."""
    cols = columns(W)
    limit = max([1.0] + [euclidean_norm(c) for c in cols]) * 1.15
    centre = size / 2
    scale = (size / 2 - 14) / limit
    colours = importance_colours(importance)
    parts = svg_open(size, size, f"{len(cols)} features in 2 hidden dimensions")
    r = coord(scale)
    parts.append(
        f'<g stroke="currentColor" stroke-opacity="0.25" fill="none">'
        f'<circle cx="{coord(centre)}" cy="{coord(centre)}" r="{r}" stroke-dasharray="2 3"/>'
        f'<path d="M{coord(centre)} 6V{coord(size - 6)}M6 {coord(centre)}H{coord(size - 6)}"/></g>'
    )
    # least important first, so the important features are drawn on top
    for f in sorted(range(len(cols)), key=lambda f: importance[f]):
        x, y = cols[f][0], cols[f][1] if len(cols[f]) > 1 else 0.0
        px, py = centre + x * scale, centre - y * scale
        tip = (
            f"f{f}: importance {fmt(importance[f])}, ‖W_f‖ {fmt(euclidean_norm(cols[f]))},"
            f" ({fmt(x)}, {fmt(y)})"
        )
        parts.append(
            f'<g><title>{escape(tip)}</title><path d="M{coord(centre)} {coord(centre)}L{coord(px)}'
            f' {coord(py)}" stroke="{colours[f]}" stroke-width="2.5"/><circle cx="{coord(px)}"'
            f' cy="{coord(py)}" r="4" fill="{colours[f]}" stroke="currentColor"'
            f' stroke-width="0.5"/></g>'
        )
        if len(cols) <= 12 and euclidean_norm(cols[f]) >= 0.1:
            dx, dy = (
                x / max(euclidean_norm(cols[f]), 1e-9),
                y / max(euclidean_norm(cols[f]), 1e-9),
            )
            parts.append(svg_text(px + 11 * dx, py - 11 * dy + 3.5, f"f{f}", size=9))
    parts.append(svg_text(size - 4, size - 4, "colour: importance", anchor="end", size=8))
    parts.append("</svg>")
    return Markup("".join(parts))


def dimensionality_svg(
    probabilities: Sequence[float],
    dimensionalities: Sequence[Sequence[float]],
    dims_per_feature: Sequence[float],
    *,
    width: int = 420,
    height: int = 240,
) -> Markup:
    """Feature dimensionality against 1/(1−S) = 1/p (log scale), one dot per feature.

    The line is the model's dimensions per feature, n_hidden / ‖W‖_F². Dashed guides mark the
    fractions features stick to (1/2: antipodal pair, 2/5: pentagon, …).
    """
    left, right, top, bottom = 38.0, 34.0, 10.0, 34.0
    xs = [math.log10(1.0 / p) for p in probabilities]
    x_lo, x_hi = min(xs + [0.0]), max(xs + [1.0])
    if x_hi - x_lo < 1e-9:
        x_hi = x_lo + 1.0
    y_hi = max([1.0] + [d for dims in dimensionalities for d in dims]) * 1.05
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * plot_w

    def py(y: float) -> float:
        return top + plot_h - y / y_hi * plot_h

    parts = svg_open(width, height, "Feature dimensionality against sparsity")
    guides = "".join(
        f"M{coord(left)} {coord(py(v))}H{coord(left + plot_w)}" for v, _ in STICKY_FRACTIONS
    )
    parts.append(
        f'<path d="{guides}" stroke="currentColor" stroke-opacity="0.25"'
        ' stroke-dasharray="3 3" fill="none"/>'
    )
    for value, name in STICKY_FRACTIONS:
        parts.append(svg_text(left + plot_w + 3, py(value) + 3, name, anchor="start", size=8))
    parts.append(
        f'<path d="M{coord(left)} {coord(top)}V{coord(top + plot_h)}H{coord(left + plot_w)}"'
        ' stroke="currentColor" stroke-opacity="0.6" fill="none"/>'
    )
    for y in (0.0, 0.5, 1.0):
        parts.append(svg_text(left - 4, py(y) + 3, fmt(y), anchor="end", size=9))
    for e in range(math.floor(x_lo), math.ceil(x_hi) + 1):
        if x_lo - 1e-9 <= e <= x_hi + 1e-9:
            parts.append(svg_text(px(e), top + plot_h + 12, fmt(10.0**e), size=9))
    parts.append(
        svg_text(left + plot_w / 2, height - 4, "1 / (1 − S) = 1 / feature probability", size=9)
    )
    parts.append(
        svg_text(
            10,
            top + plot_h / 2,
            "dimensionality",
            size=9,
            extra=f' transform="rotate(-90 10 {coord(top + plot_h / 2)})"',
        )
    )
    line = " ".join(f"{coord(px(x))} {coord(py(d))}" for x, d in zip(xs, dims_per_feature))
    if line:
        parts.append(
            f'<path d="M{line}" stroke="#4e79a7" stroke-width="1.5" fill="none">'
            "<title>dimensions per feature, n_hidden / ‖W‖_F²</title></path>"
        )
    for x, p, dims in zip(xs, probabilities, dimensionalities):
        for f, d in enumerate(dims):
            tip = f"p = {fmt(p)}, f{f}: dimensionality {fmt(d)}"
            parts.append(
                f'<circle cx="{coord(px(x))}" cy="{coord(py(d))}" r="2.5" fill="#e15759"'
                f' fill-opacity="0.6"><title>{escape(tip)}</title></circle>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def decoder_frame_svg(
    features: Matrix,
    latents: Matrix,
    *,
    step: int,
    total_steps: int,
    resample_steps: Sequence[int],
    resampled: bool,
    names: Sequence[str] = (),
    size: int = 200,
) -> Markup:
    """One frame: true features (grey) and SAE decoder directions (coloured) in 2-D.

    ``features`` is ``[n_features][2]``, drawn to scale (the longest, or norm 1, reaches the
    circle) so unrepresented features stay short; ``latents`` ``[d_sae][2]`` are unit rows. A
    timeline under the circle shows the step and the resampling steps (red ticks); a frame right
    after a resampling says so.
    """
    centre = size / 2
    radius = size / 2 - 16
    timeline = 26
    parts = svg_open(size, size + timeline, f"SAE decoder directions at step {step}", "toy-frame")
    parts.append(
        f'<circle cx="{coord(centre)}" cy="{coord(centre)}" r="{coord(radius)}" fill="none"'
        ' stroke="currentColor" stroke-opacity="0.2"/>'
    )
    longest = max([1.0] + [euclidean_norm(vec) for vec in features])
    for f, vec in enumerate(features):
        norm = euclidean_norm(vec)
        x, y = centre + vec[0] / longest * radius, centre - vec[1] / longest * radius
        parts.append(
            f'<path d="M{coord(centre)} {coord(centre)}L{coord(x)} {coord(y)}"'
            f' stroke="currentColor" stroke-opacity="0.3" stroke-width="5"><title>'
            f"true feature f{f}, ‖W_f‖"
            f" {fmt(norm)}</title></path>"
        )
        if norm / longest >= 0.1:
            parts.append(
                svg_text(
                    centre + vec[0] / norm * (radius + 9),
                    centre - vec[1] / norm * (radius + 9) + 3,
                    f"f{f}",
                    size=8,
                )
            )
    for j, vec in enumerate(latents):
        norm = max(euclidean_norm(vec), 1e-9)
        x, y = centre + vec[0] / norm * radius, centre - vec[1] / norm * radius
        colour = CATEGORICAL[j % len(CATEGORICAL)]
        name = names[j] if j < len(names) else str(j)
        parts.append(
            f"<g><title>latent {escape(name)}</title>"
            f'<path d="M{coord(centre)} {coord(centre)}L{coord(x)} {coord(y)}" stroke="{colour}"'
            f' stroke-width="1.8"/><circle cx="{coord(x)}" cy="{coord(y)}" r="3"'
            f' fill="{colour}"/></g>'
        )
    base = size + 8
    left, right = 10.0, size - 10.0
    parts.append(
        f'<path d="M{coord(left)} {coord(base)}H{coord(right)}" stroke="currentColor"'
        ' stroke-opacity="0.4"/>'
    )
    span = max(total_steps, 1)
    ticks = "".join(
        f"M{coord(left + s / span * (right - left))} {coord(base - 4)}v8" for s in resample_steps
    )
    if ticks:
        parts.append(
            f'<path d="{ticks}" stroke="#e15759" stroke-width="1.5"><title>'
            "resampling steps</title></path>"
        )
    parts.append(
        f'<circle cx="{coord(left + min(step, span) / span * (right - left))}"'
        f' cy="{coord(base)}" r="3.5" fill="currentColor"/>'
    )
    caption = f"step {step}" + (" · resampled" if resampled else "")
    parts.append(svg_text(centre, size + timeline - 3, caption, size=9))
    parts.append("</svg>")
    return Markup("".join(parts))
