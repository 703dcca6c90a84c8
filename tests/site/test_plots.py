import math
import re

import pytest
from markupsafe import Markup

from saesite.site.plots import (
    coord,
    coords,
    format_tick,
    histogram_svg,
    line_chart_svg,
    nice_ticks,
)


def _path_d(svg: str, css_class: str) -> str:
    match = re.search(rf'<path class="{css_class}"[^>]* d="([^"]*)"', svg)
    assert match, f"no path of class {css_class}"
    return match.group(1)


def _tick_labels(svg: str) -> list[str]:
    return re.findall(r"<text x=\"[\d.]+\" y=\"[\d.]+\">([^<]*)</text>", svg)


def test_coords_formats_every_value_as_coord_does():
    # values around the rounding and sign edges of one decimal, consecutive negative zeros,
    # non-finite values and ints: one % call must give what coord gives one by one
    edgy = [-0.0, -0.0, -0.04, -0.05, -0.06, 0.05, 0.15, 0.25, 0.95, 9.95, 99.95, 1e20, -1e20]
    edgy += [math.nan, math.inf, -math.inf, 5, -3, 0, 10, 100.0, 45.95, 462.04999]
    spread = [k / 20 - 50 for k in range(2000)] + [k * 0.1 for k in range(-500, 5000, 7)]
    values = edgy + spread
    assert coords(values) == [coord(v) for v in values]
    assert coords([]) == []


def test_histogram_svg_is_markup_and_deterministic():
    edges = [0.0, 0.25, 0.5, 0.75, 1.0]
    a = histogram_svg(edges, [5, 3, 0, 1], x_label="activation")
    b = histogram_svg(edges, [5, 3, 0, 1], x_label="activation")
    assert isinstance(a, Markup)
    assert a == b
    assert a.startswith("<svg") and a.endswith("</svg>")


def test_histogram_step_heights_are_proportional_to_counts():
    svg = histogram_svg([0, 1, 2, 3], [10, 5, 0], x_label="x", height=160)
    d = _path_d(svg, "plot-bars")
    # M x bottom, V top0 H x1, V top1 H x2, V bottom H x3, V bottom z
    tops = [float(v) for v in re.findall(r"V([\d.]+)", d)]
    bottom = float(re.match(r"M[\d.]+ ([\d.]+)", d).group(1))
    assert (bottom - tops[0]) == pytest.approx(2 * (bottom - tops[1]), abs=0.2)
    assert tops[2] == bottom


def test_histogram_labels_axes_and_escapes_label_text():
    svg = histogram_svg([0, 1, 2], [1, 2], x_label="<b>x</b> & y", y_label="n")
    assert "<b>x</b>" not in svg
    assert "&lt;b&gt;x&lt;/b&gt; &amp; y" in svg
    assert ">n</text>" in svg


def test_histogram_refuses_edges_that_do_not_bound_the_counts():
    with pytest.raises(ValueError, match="one more edge than counts"):
        histogram_svg([0, 1], [1, 2], x_label="x")


def test_log_y_histogram_ticks_at_powers_of_ten_and_skips_empty_bins():
    svg = histogram_svg([0, 1, 2, 3], [1000, 0, 10], x_label="x", log_y=True)
    labels = _tick_labels(svg)
    assert "1000" in labels and "10" in labels
    assert all(re.fullmatch(r"[\d.]+", label) for label in labels)


def test_empty_histogram_is_an_empty_plot_not_an_error():
    svg = histogram_svg([0.0], [], x_label="x")
    assert "plot-bars" not in svg


def test_line_chart_draws_one_path_per_series_with_a_legend():
    xs = list(range(10))
    svg = line_chart_svg(
        xs, {"mse": [1 / (1 + x) for x in xs], "l1": [0.5] * 10}, x_label="step", y_label="loss"
    )
    assert svg.count('class="plot-line plot-s0"') == 2  # line + legend swatch
    assert svg.count('class="plot-line plot-s1"') == 2
    assert ">mse</text>" in svg and ">l1</text>" in svg


def test_line_chart_breaks_the_line_at_missing_values_and_draws_markers():
    xs = [0, 1, 2, 3, 4]
    svg = line_chart_svg(
        xs,
        {"loss": [1.0, 2.0, math.nan, 3.0, 4.0]},
        x_label="step",
        y_label="loss",
        markers=[2, 99],
    )
    d = _path_d(svg, "plot-line plot-s0")
    assert d.count("M") == 2
    marker = _path_d(svg, "plot-marker")
    assert marker.count("M") == 1  # the marker outside the x range is dropped
    assert 'stroke-dasharray="3 3"' in svg


def test_line_chart_with_log_y_drops_non_positive_values():
    svg = line_chart_svg([0, 1, 2], {"l": [0.0, 10.0, 100.0]}, x_label="x", y_label="y", log_y=True)
    d = _path_d(svg, "plot-line plot-s0")
    assert len(re.findall(r"[\d.]+ [\d.]+", d)) == 2


def test_line_chart_decimates_long_series_but_keeps_spikes():
    xs = list(range(20000))
    ys = [1.0] * 20000
    ys[12345] = 50.0
    svg = line_chart_svg(xs, {"l": ys}, x_label="x", y_label="y")
    d = _path_d(svg, "plot-line plot-s0")
    points = [tuple(map(float, p.split())) for p in re.findall(r"[\d.]+ [\d.]+", d)]
    assert len(points) < 2000
    ys_px = sorted(y for _, y in points)
    assert ys_px[-1] - ys_px[0] > 80  # the one spike survives, far above the flat line


def test_nice_ticks_cover_the_range_with_round_steps():
    ticks = nice_ticks(0.0, 7.3)
    assert ticks[0] == 0 and ticks[-1] <= 7.3
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:])}
    assert len(steps) == 1
    step = steps.pop()
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in (1, 2, 5)


@pytest.mark.parametrize(
    ("value", "step", "expected"),
    [
        (0.0, 0.0, "0"),
        (0.25, 0.25, "0.25"),
        (1000.0, 0.0, "1000"),
        (12000.0, 0.0, "12k"),
        (2.5e6, 0.0, "2.5M"),
        (0.5, 0.5, "0.5"),
        (3.0, 1.0, "3"),
    ],
)
def test_format_tick_is_short_and_readable(value, step, expected):
    assert format_tick(value, step) == expected


def test_edges_rounded_to_four_digits_are_sent_as_lo_and_hi_and_uneven_ones_in_full():
    from saesite.records.rounding import rounded

    # a logit histogram's edges: an even split of [min, max], stored to 4 significant digits
    even = rounded([-0.88253 + k * (0.76311 + 0.88253) / 32 for k in range(33)])
    assert len({len(str(e)) for e in even}) > 1  # -0.008261 next to 0.1974: not one grid
    svg = histogram_svg(even, [1] * 32, x_label="effect on logit")
    assert 'data-edges="-0.8825,0.7631"' in svg
    uneven = histogram_svg([0, 1, 3, 7], [1, 2, 3], x_label="x")
    assert 'data-edges="0,1,3,7"' in uneven


def test_quantile_bands_are_one_path_of_rectangles():
    svg = histogram_svg([0, 1, 2, 3, 4], [1, 2, 3, 4], x_label="x", bands=[(0, 1), (1, 2), (2, 3)])
    assert svg.count('class="plot-band"') == 1
    assert len(re.findall(r"M[\d.]+ [\d.]+h[\d.]+V[\d.]+h-[\d.]+z", svg)) == 2  # 1st and 3rd
