"""Inline SVG plots drawn at build time: no library, no network, no JavaScript.

Both functions return ``markupsafe.Markup`` ready to drop into a template, and are
deterministic: the same numbers give the same bytes (coordinates rounded to 0.1 px, ticks
formatted by ``format_tick``). Colours come from the site stylesheet through classes
(``plot``, ``plot-bars``, ``plot-axis``, ``plot-grid``, ``plot-s0`` … ``plot-s5``,
``plot-marker``); the presentation attributes written here are only the fallback, except for
what every feature page draws (a histogram's axes, grid, text and bars), which is styled by
the stylesheet alone: a page carries two histograms, and the bytes count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

MARGIN_LEFT = 46
MARGIN_RIGHT = 18  # room for half of the last x tick label ("2000")
MARGIN_TOP = 8
MARGIN_BOTTOM = 32
N_SERIES_CLASSES = 6
EDGE_DIGITS_TOLERANCE = 5e-4
"""Relative error of a value rounded to 4 significant digits, at most."""


def coord(value: float) -> str:
    """A coordinate with at most one decimal, without a trailing ``.0``."""
    text = f"{value:.1f}"
    if text.endswith(".0"):
        text = text[:-2]
    return "0" if text == "-0" else text


def coords(values: Sequence[float]) -> list[str]:
    """``coord`` of each value, formatted by one ``%`` call: a feature page has two histograms
    of ~100 coordinates each. ``%.1f`` writes what ``f"{v:.1f}"`` writes, and with one decimal
    a ``.0`` before the separator is always the number's own trailing ``.0``."""
    if not values:
        return []
    text = ("%.1f\n" * len(values)) % tuple(values)
    out = text.replace(".0\n", "\n")[:-1].split("\n")
    return ["0" if t == "-0" else t for t in out] if "-0" in out else out


def format_tick(value: float, step: float = 0.0) -> str:
    """A short, readable tick label: ``0``, ``0.25``, ``1.5k``, ``2M``, ``1e-05``."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    magnitude = abs(value)
    if magnitude >= 1e4:
        for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if magnitude >= div:
                return f"{value / div:.3g}{suffix}"
    if magnitude < 1e-3:
        return f"{value:.0e}" if step == 0 else f"{value:.1e}".replace(".0e", "e")
    if step:
        decimals = max(0, -math.floor(math.log10(step) + 1e-9))
        if step * 10**decimals % 1 > 1e-6 and decimals < 6:
            decimals += 1
        text = f"{value:.{decimals}f}"
        return text
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3g}"


def nice_ticks(lo: float, hi: float, max_ticks: int = 6) -> list[float]:
    """Ticks at 1, 2 or 5 times a power of ten covering ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, max_ticks - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw - 1e-12)
    first = math.ceil(lo / step - 1e-9)
    ticks = []
    k = first
    while k * step <= hi + step * 1e-9:
        ticks.append(round(k * step, 12))
        k += 1
    return ticks


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten within ``[lo, hi]`` (log10 units), thinned to at most six."""
    first, last = math.ceil(lo - 1e-9), math.floor(hi + 1e-9)
    exps = list(range(first, last + 1))
    stride = max(1, math.ceil(len(exps) / 6))
    return [float(e) for e in exps[::stride]]


class _Frame:
    """Maps data coordinates to pixels inside the plot area."""

    def __init__(
        self, width: int, height: int, x_range: tuple[float, float], y_range: tuple[float, float]
    ):
        self.width, self.height = width, height
        self.left, self.right = MARGIN_LEFT, width - MARGIN_RIGHT
        self.top, self.bottom = MARGIN_TOP, height - MARGIN_BOTTOM
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range
        if self.x1 <= self.x0:
            self.x1 = self.x0 + 1.0
        if self.y1 <= self.y0:
            self.y1 = self.y0 + 1.0

    def x(self, value: float) -> float:
        return self.left + (value - self.x0) / (self.x1 - self.x0) * (self.right - self.left)

    def y(self, value: float) -> float:
        return self.bottom - (value - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top)


def _open(width: int, height: int, label: str, data: str = "") -> list[str]:
    return [
        f'<svg class="plot" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        f' role="img"{data}>',
        f"<title>{escape(label)}</title>",
    ]


def _bin_data(frame: _Frame, edges: list[float], counts: list[int], unit: str) -> str:
    """What ``static/histogram.js`` needs to name each bar on hover and keyboard focus:
    ``data-px`` the plot area's x span, ``data-edges`` "lo,hi" for equal bins (else every
    edge), ``data-counts``, ``data-unit``; focusable with ``tabindex``. Bins count as equal
    when every edge is the even split of ``[lo, hi]`` up to the records' 4 significant digits
    of the edges and of ``lo`` and ``hi`` (``records/rounding.py``; the logit histogram's
    edges), which tooltips show 3 of."""
    n = len(counts)
    first = edges[0]
    step = (edges[-1] - first) / n
    scale = max(abs(first), abs(edges[-1]))
    step_tolerance = 1e-6 * abs(step)
    uniform = True
    for k, edge in enumerate(edges):
        off = abs(edge - (first + k * step))
        if not (off <= step_tolerance or off <= EDGE_DIGITS_TOLERANCE * (abs(edge) + scale)):
            uniform = False
            break
    shown = (first, edges[-1]) if uniform else edges
    values = ",".join(f"{v:.6g}" for v in shown)
    return (
        f' tabindex="0" data-px="{coord(frame.left)},{coord(frame.right)}"'
        f' data-edges="{values}" data-counts="{",".join(map(str, counts))}"'
        f' data-unit="{escape(unit)}"'
    )


def _axes(
    frame: _Frame,
    x_ticks: list[tuple[float, str]],
    y_ticks: list[tuple[float, str]],
    x_label: str,
    y_label: str,
) -> list[str]:
    """Axis lines, light grid lines, tick labels and the two axis titles."""
    n_x, n_y = len(x_ticks), len(y_ticks)
    # every coordinate at once (``coords``): the frame's, then the x ticks', then the y ticks'
    # and their labels'
    fixed = coords(
        [
            frame.left,
            frame.right,
            frame.top,
            frame.bottom,
            frame.bottom + 14,
            frame.left - 4,
            (frame.left + frame.right) / 2,
            frame.height - 3,
            (frame.top + frame.bottom) / 2,
            *[x for x, _ in x_ticks],
            *[y for y, _ in y_ticks],
            *[y + 3.5 for y, _ in y_ticks],
        ]
    )
    left, right, top, bottom, x_text_y, y_text_x, mid_x, label_y, mid_y = fixed[:9]
    xs, ys, y_text_ys = fixed[9 : 9 + n_x], fixed[9 + n_x : 9 + n_x + n_y], fixed[9 + n_x + n_y :]
    grid = "".join([f"M{left} {y}H{right}" for y in ys])
    parts = []
    if grid:
        parts.append(f'<path class="plot-grid" d="{grid}"/>')
    ticks = "".join([f"M{x} {bottom}v4" for x in xs])
    parts.append(f'<path class="plot-axis" d="M{left} {top}V{bottom}H{right}{ticks}"/>')
    # tick labels are format_tick's: digits, sign, point, exponent, a unit letter; no escaping
    x_texts = "".join(
        [f'<text x="{x}" y="{x_text_y}">{t}</text>' for x, (_, t) in zip(xs, x_ticks)]
    )
    y_texts = "".join(
        [f'<text x="{y_text_x}" y="{y}">{t}</text>' for y, (_, t) in zip(y_text_ys, y_ticks)]
    )
    texts = [f'<g text-anchor="middle">{x_texts}</g>', f'<g text-anchor="end">{y_texts}</g>']
    texts.append(f'<text class="plot-label" x="{mid_x}" y="{label_y}">{escape(x_label)}</text>')
    texts.append(
        f'<text class="plot-label" x="11" y="{mid_y}"'
        f' transform="rotate(-90 11 {mid_y})">{escape(y_label)}</text>'
    )
    parts.append(f'<g class="plot-text">{"".join(texts)}</g>')
    return parts


def _y_axis(
    values: list[float], log_y: bool, start_at_zero: bool
) -> tuple[tuple[float, float], list[tuple[float, str]]]:
    """The y range (in plotted units: log10 when ``log_y``) and its labelled ticks."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return (0.0, 1.0), [(0.0, "0"), (1.0, "1")]
    lo, hi = min(finite), max(finite)
    if log_y:
        lo = min(lo, 0.0) if start_at_zero else math.floor(lo)
        hi = max(math.ceil(hi - 1e-9), lo + 1.0)
        ticks = _log_ticks(lo, hi)
        return (lo, hi), [(t, format_tick(10**t)) for t in ticks]
    if start_at_zero:
        lo = min(lo, 0.0)
    if hi == lo:
        hi = lo + 1.0
    ticks = nice_ticks(lo, hi, 5)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 0.0
    if step and ticks[-1] < hi - step * 1e-9:
        ticks.append(round(ticks[-1] + step, 12))  # the axis ends on a labelled tick
    return (lo, max(hi, ticks[-1])), [(t, format_tick(t, step)) for t in ticks]


def _x_ticks(frame: _Frame, lo: float, hi: float, max_ticks: int) -> list[tuple[float, str]]:
    ticks = [t for t in nice_ticks(lo, hi, max_ticks) if lo - 1e-12 <= t <= hi + 1e-12]
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 0.0
    return [(frame.x(t), format_tick(t, step)) for t in ticks]


def histogram_svg(
    edges: Sequence[float],
    counts: Sequence[int],
    *,
    x_label: str,
    y_label: str = "count",
    width: int = 480,
    height: int = 160,
    log_y: bool = False,
    bands: Sequence[tuple[float, float]] = (),
) -> Markup:
    """Bars for ``counts[i]`` over ``[edges[i], edges[i+1])``, drawn as one step ``<path>``.

    With ``log_y`` the bar height is ``log10(count)`` and empty bins draw nothing. ``bands``:
    ``(lo, hi)`` ranges shaded behind the bars, every other one (the quantile intervals).
    """
    edges, counts = list(edges), list(counts)
    if len(edges) != len(counts) + 1:
        raise ValueError(
            f"histogram has {len(edges)} edges for {len(counts)} counts; "
            "expected one more edge than counts"
        )
    total = sum(counts)
    label = f"Histogram of {x_label}: {total} in {len(counts)} bins"
    if not counts:
        return Markup("".join(_open(width, height, label) + ["</svg>"]))
    heights = [math.log10(c) if (log_y and c > 0) else float(c) for c in counts]
    if log_y:
        (y_lo, y_hi), y_ticks = _y_axis(heights + [0.0], True, True)
    else:
        (y_lo, y_hi), y_ticks = _y_axis(heights, False, True)
    frame = _Frame(width, height, (edges[0], edges[-1]), (y_lo, y_hi))
    # one step outline over all bins: half the bytes of a rectangle per bar; bins of equal
    # height share one step. Pixel arithmetic as in _Frame.x/y, inlined, and every coordinate
    # formatted at once (``coords``): a page has two of these.
    x0, x_span, x_px = frame.x0, frame.x1 - frame.x0, frame.right - frame.left
    y0, y_span, y_px = frame.y0, frame.y1 - frame.y0, frame.bottom - frame.top
    floor = frame.bottom
    if log_y:
        tops = [
            floor - (max(h, 0.05) - y0) / y_span * y_px if c > 0 else floor
            for c, h in zip(counts, heights)
        ]
    else:
        tops = [
            floor - (h - y0) / y_span * y_px if c > 0 else floor for c, h in zip(counts, heights)
        ]
    tops = coords(tops + [floor])
    bottom = tops.pop()
    steps: list[list] = []  # [top, or "" to stay level; index of the right edge]
    previous = bottom
    for right, top in enumerate(tops, 1):
        if top == previous and steps:
            steps[-1][1] = right  # extend the previous step
        else:
            steps.append(["" if top == previous else top, right])
        previous = top
    left = frame.left
    xs = coords(
        [left + (edges[0] - x0) / x_span * x_px]
        + [left + (edges[right] - x0) / x_span * x_px for _, right in steps]
    )
    path = "".join([(f"V{top}H" if top else "H") + x for (top, _), x in zip(steps, xs[1:])])
    bars = f"M{xs[0]} {bottom}{path}V{bottom}z" if any(c > 0 for c in counts) else ""
    parts = _open(width, height, label, _bin_data(frame, edges, counts, y_label))
    parts += _axes(
        frame,
        _x_ticks(frame, edges[0], edges[-1], 7),
        [(frame.y(v), t) for v, t in y_ticks],
        x_label,
        y_label,
    )
    clipped = [(n, max(lo, edges[0]), min(hi, edges[-1])) for n, (lo, hi) in enumerate(bands)]
    shaded_px = [(frame.x(lo), frame.x(hi)) for n, lo, hi in clipped if n % 2 == 0 and hi > lo]
    # one path of rectangles: a third of the bytes of a <rect> each
    band = coords([frame.top, *[v for lo, hi in shaded_px for v in (lo, hi - lo)]])
    shaded = "".join([f"M{x} {band[0]}h{w}V{bottom}h-{w}z" for x, w in zip(band[1::2], band[2::2])])
    if shaded:
        parts.append(f'<path class="plot-band" d="{shaded}"/>')
    if bars:
        parts.append(f'<path class="plot-bars" d="{bars}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _decimate(points: list[tuple[float, float]], columns: int) -> list[tuple[float, float]]:
    """At most two points (min and max y, in x order) per pixel column, so spikes survive."""
    if len(points) <= 2 * columns:
        return points
    out: list[tuple[float, float]] = []
    x_lo, x_hi = points[0][0], points[-1][0]
    span = (x_hi - x_lo) or 1.0
    bucket: list[tuple[float, float]] = []
    current = None
    for point in points:
        column = int((point[0] - x_lo) / span * (columns - 1))
        if column != current and bucket:
            lo = min(bucket, key=lambda p: p[1])
            hi = max(bucket, key=lambda p: p[1])
            out.extend(sorted({lo, hi}))
            bucket = []
        current = column
        bucket.append(point)
    if bucket:
        lo = min(bucket, key=lambda p: p[1])
        hi = max(bucket, key=lambda p: p[1])
        out.extend(sorted({lo, hi}))
    return out


def line_chart_svg(
    xs: Sequence[float],
    series: dict[str, Sequence[float]],
    *,
    x_label: str,
    y_label: str,
    markers: Sequence[float] = (),
    width: int = 480,
    height: int = 160,
    log_y: bool = False,
) -> Markup:
    """One polyline per series over shared ``xs``; ``markers`` are dashed vertical lines.

    Missing values (None, NaN, and non-positive values when ``log_y``) break the line. Several
    series get a legend in the top right, in insertion order.
    """
    xs = [float(x) for x in xs]
    plotted: dict[str, list[float | None]] = {}
    for name, values in series.items():
        if len(values) != len(xs):
            raise ValueError(f"series {name!r} has {len(values)} values for {len(xs)} x values")
        row: list[float | None] = []
        for v in values:
            ok = v is not None and math.isfinite(v) and (v > 0 or not log_y)
            row.append((math.log10(v) if log_y else float(v)) if ok else None)
        plotted[name] = row
    label = f"{y_label} against {x_label}"
    finite_y = [v for row in plotted.values() for v in row if v is not None]
    if not xs or not finite_y:
        return Markup("".join(_open(width, height, label) + ["</svg>"]))
    (y_lo, y_hi), y_ticks = _y_axis(finite_y, log_y, False)
    if not log_y and y_lo > 0 and y_lo < 0.25 * y_hi:
        (y_lo, y_hi), y_ticks = _y_axis(finite_y, False, True)
    if not log_y:
        y_lo = min(y_lo, y_ticks[0][0])
    frame = _Frame(width, height, (min(xs), max(xs)), (y_lo, y_hi))
    parts = _open(width, height, label)
    parts += _axes(
        frame,
        _x_ticks(frame, min(xs), max(xs), 6),
        [(frame.y(v), t) for v, t in y_ticks if y_lo - 1e-12 <= v <= y_hi + 1e-12],
        x_label,
        y_label,
    )
    marks = "".join(
        f"M{coord(frame.x(m))} {coord(frame.top)}V{coord(frame.bottom)}"
        for m in markers
        if min(xs) <= m <= max(xs)
    )
    if marks:
        parts.append(
            f'<path class="plot-marker" d="{marks}" stroke="#999" stroke-dasharray="3 3"'
            f' fill="none"/>'
        )
    columns = max(1, int(frame.right - frame.left))
    for number, (name, row) in enumerate(plotted.items()):
        segments: list[list[tuple[float, float]]] = [[]]
        for x, y in zip(xs, row):
            if y is None:
                if segments[-1]:
                    segments.append([])
                continue
            segments[-1].append((x, y))
        d = []
        for segment in segments:
            pts = _decimate(segment, columns)
            if not pts:
                continue
            coords = " ".join(f"{coord(frame.x(x))} {coord(frame.y(y))}" for x, y in pts)
            d.append(f"M{coords}" if len(pts) > 1 else f"M{coords}h0.1")
        css = f"plot-s{number % N_SERIES_CLASSES}"
        parts.append(
            f'<path class="plot-line {css}" d="{"".join(d)}" fill="none" stroke="#4a7fd6"'
            f' stroke-width="1.5"><title>{escape(name)}</title></path>'
        )
    if len(plotted) > 1:
        legend = []
        for number, name in enumerate(plotted):
            y = frame.top + 10 + 12 * number
            css = f"plot-s{number % N_SERIES_CLASSES}"
            legend.append(
                f'<path class="plot-line {css}" d="M{coord(frame.right - 110)} {coord(y - 3)}h14"'
                f' stroke="#4a7fd6" stroke-width="2"/><text x="{coord(frame.right - 92)}"'
                f' y="{coord(y)}">{escape(name)}</text>'
            )
        parts.append(
            f'<g class="plot-legend" font-size="10" fill="currentColor">{"".join(legend)}</g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
