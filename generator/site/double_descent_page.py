"""The double-descent page (``toy/double-descent.html``) from site.json's ``toy.double_descent``.

Two kinds of plot, both inline SVG drawn here: test and training loss against the dataset size T
(log-log), and 2-D hidden vectors (training points ``h = W x``, or feature directions
``W[:, f]``) as lines from the origin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

from saesite.site.plots import coord
from saesite.site.toy_svg import euclidean_norm, fmt, svg_open, svg_text

TEST_COLOUR, TRAIN_COLOUR = "#e15759", "#4e79a7"
DECADES_BELOW_TEST = 3
"""The loss axis reaches this many decades below the lowest test loss; lower losses sit on it."""
ROLE_TEXT = {
    "small": "Small T: memorising",
    "peak": "The test-loss peak",
    "large": "Large T: generalising",
}
ROLE_CAPTION = {
    "small": "The training points' hidden vectors spread out to directions of their own, a "
    "polygon of data points: the model stores the points in superposition. The feature "
    "directions are short and scattered; nothing about them generalises.",
    "peak": "Too many points to give each a direction, too few for the features to win: the "
    "model crams points into the plane and the feature directions are a compromise. Test loss "
    "is at its worst.",
    "large": "The features take the directions: a few long feature vectors spread out evenly "
    "(a polygon of features), the rest near zero. The training points are no longer arranged; "
    "each is the sum of its features' directions.",
}


def _log_axis(values: Sequence[float], lo_pad: float = 0.0) -> tuple[float, float]:
    logs = [math.log10(v) for v in values if v > 0]
    lo, hi = (min(logs), max(logs)) if logs else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    pad = (hi - lo) * 0.06 + lo_pad
    return lo - pad, hi + pad


def loss_curve_svg(
    sweep: Sequence[Mapping], marked: Sequence[int], *, width: int = 520, height: int = 280
) -> Markup:
    """Test and training loss against T (log-log); every replica's test loss as a faint dot."""
    left, right, top, bottom = 52.0, 12.0, 12.0, 36.0
    plot_w, plot_h = width - left - right, height - top - bottom
    sizes = [row["size"] for row in sweep]
    losses = [v for row in sweep for v in [row["train_loss"], *row["replica_test_losses"]]]
    x_lo, x_hi = _log_axis(sizes)
    y_lo, y_hi = _log_axis([v for v in losses if v > 0] or [1.0])
    # a memorised training loss can be 1e-10: drawn at the floor, it would flatten the test curve
    tests = [v for row in sweep for v in row["replica_test_losses"] if v > 0]
    if tests:
        y_lo = max(y_lo, math.floor(math.log10(min(tests))) - DECADES_BELOW_TEST)

    def px(size: float) -> float:
        return left + (math.log10(size) - x_lo) / (x_hi - x_lo) * plot_w

    def py(loss: float) -> float:
        value = math.log10(max(loss, 10.0**y_lo))
        return top + plot_h - (value - y_lo) / (y_hi - y_lo) * plot_h

    parts = svg_open(width, height, "Test and training loss against dataset size T")
    parts.append(
        f'<path d="M{coord(left)} {coord(top)}V{coord(top + plot_h)}H{coord(left + plot_w)}"'
        ' stroke="currentColor" stroke-opacity="0.6" fill="none"/>'
    )
    for size in marked:
        parts.append(
            f'<path d="M{coord(px(size))} {coord(top)}V{coord(top + plot_h)}" stroke="currentColor"'
            ' stroke-opacity="0.3" stroke-dasharray="3 3" fill="none"/>'
        )
    for e in range(math.ceil(x_lo), math.floor(x_hi) + 1):
        parts.append(svg_text(px(10.0**e), top + plot_h + 13, fmt(10.0**e), size=9))
    for e in range(math.ceil(y_lo), math.floor(y_hi) + 1):
        parts.append(svg_text(left - 4, py(10.0**e) + 3, f"1e{e}", anchor="end", size=9))
    parts.append(svg_text(left + plot_w / 2, height - 4, "training points T (log)", size=9))
    mid = coord(top + plot_h / 2)
    parts.append(
        svg_text(
            12, top + plot_h / 2, "loss (log)", size=9, extra=f' transform="rotate(-90 12 {mid})"'
        )
    )
    for row in sweep:
        for value in row["replica_test_losses"]:
            parts.append(
                f'<circle cx="{coord(px(row["size"]))}" cy="{coord(py(value))}" r="2"'
                f' fill="{TEST_COLOUR}" fill-opacity="0.3"/>'
            )
    for key, colour, name in (
        ("train_loss", TRAIN_COLOUR, "training loss"),
        ("test_loss", TEST_COLOUR, "test loss"),
    ):
        line = " ".join(f"{coord(px(row['size']))} {coord(py(row[key]))}" for row in sweep)
        parts.append(f'<path d="M{line}" stroke="{colour}" stroke-width="1.8" fill="none"/>')
        for row in sweep:
            tip = f"T = {row['size']}: {name} {fmt(row[key])}"
            parts.append(
                f'<circle cx="{coord(px(row["size"]))}" cy="{coord(py(row[key]))}" r="3.5"'
                f' fill="{colour}"><title>{escape(tip)}</title></circle>'
            )
    legend_x = left + plot_w - 4
    parts.append(svg_text(legend_x, top + 10, "test loss", anchor="end", size=9))
    parts.append(f'<path d="M{coord(legend_x - 70)} {coord(top + 7)}h14" stroke="{TEST_COLOUR}"/>')
    parts.append(svg_text(legend_x, top + 22, "training loss", anchor="end", size=9))
    parts.append(
        f'<path d="M{coord(legend_x - 84)} {coord(top + 19)}h14" stroke="{TRAIN_COLOUR}"/>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def vectors_svg(
    vectors: Sequence[Sequence[float]], label: str, colour: str, *, size: int = 240
) -> Markup:
    """2-D vectors as lines from the origin, scaled to the longest; each with a tooltip."""
    longest = max([1e-9] + [euclidean_norm(v) for v in vectors])
    centre = size / 2
    scale = (size / 2 - 10) / longest
    parts = svg_open(size, size, label)
    parts.append(
        f'<path d="M{coord(centre)} 4V{coord(size - 4)}M4 {coord(centre)}H{coord(size - 4)}"'
        ' stroke="currentColor" stroke-opacity="0.2" fill="none"/>'
    )
    for number, (x, y) in enumerate(vectors):
        px, py = centre + x * scale, centre - y * scale
        tip = f"{label.split(':')[0]} {number}: ({fmt(x)}, {fmt(y)})"
        parts.append(
            f'<g><title>{escape(tip)}</title><path d="M{coord(centre)} {coord(centre)}L{coord(px)}'
            f' {coord(py)}" stroke="{colour}" stroke-opacity="0.55" stroke-width="1.2"/>'
            f'<circle cx="{coord(px)}" cy="{coord(py)}" r="2.2" fill="{colour}"/></g>'
        )
    parts.append(svg_text(size - 4, size - 4, f"longest {fmt(longest)}", anchor="end", size=8))
    parts.append("</svg>")
    return Markup("".join(parts))


def double_descent_context(site: Mapping) -> dict:
    """The page's context: the curve, the snapshots and the sweep table."""
    dd = site["toy"]["double_descent"]
    snapshots = []
    for snap in dd["snapshots"]:
        features = [list(column) for column in zip(*snap["W"])]
        shown = len(snap["hidden"])
        points_note = f"{shown} of {snap['n_points']}" if shown < snap["n_points"] else str(shown)
        snapshots.append(
            {
                "role": snap["role"],
                "heading": f"{ROLE_TEXT[snap['role']]} (T = {snap['size']})",
                "caption": ROLE_CAPTION[snap["role"]],
                "test_loss": fmt(snap["test_loss"]),
                "points": vectors_svg(snap["hidden"], "training point: h = W x", TEST_COLOUR),
                "points_note": points_note,
                "features": vectors_svg(features, "feature: W[:, f]", TRAIN_COLOUR),
            }
        )
    rows = [
        {
            "size": str(row["size"]),
            "train": fmt(row["train_loss"]),
            "test": fmt(row["test_loss"]),
            "replicas": ", ".join(fmt(v) for v in row["replica_test_losses"]),
            "peak": row["size"] == dd["peak_size"],
        }
        for row in dd["sweep"]
    ]
    return {
        "title": "Superposition, memorisation and double descent",
        "n_features": str(dd["n_features"]),
        "p": fmt(dd["feature_probability"]),
        "steps": str(dd["steps"]),
        "lr": fmt(dd["lr"]),
        "weight_decay": fmt(dd["weight_decay"]),
        "replicas": str(dd["replicas"]),
        "n_test": str(dd["n_test"]),
        "seed": str(dd["seed"]),
        "peak_size": str(dd["peak_size"]),
        "curve": loss_curve_svg(dd["sweep"], [snap["size"] for snap in dd["snapshots"]]),
        "snapshots": snapshots,
        "rows": rows,
    }
