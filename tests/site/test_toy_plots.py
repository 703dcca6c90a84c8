"""Toy-page SVGs: well-formed, deterministic, values in tooltips, colours that mean something."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from saesite.site.toy_geometry import decoder_frame_svg, dimensionality_svg, feature_scatter_svg
from saesite.site.toy_plots import (
    gram,
    gram_heatmap_svg,
    neuron_weights_svg,
    norm_bars_svg,
    polysemanticity,
    stacked_exposures_svg,
)

SVG = "{http://www.w3.org/2000/svg}"
W2 = [[1.0, -1.0, 0.0, 0.3], [0.0, 0.0, 0.8, -0.2]]  # (2 hidden, 4 features)
W5 = [[math.sin(h + f) for f in range(7)] for h in range(5)]


def _parse(svg) -> ET.Element:
    root = ET.fromstring(str(svg))
    assert root.tag == f"{SVG}svg"
    return root


def _all_plots() -> list:
    return [
        feature_scatter_svg(W2, [1.0, 0.9, 0.8, 0.7]),
        gram_heatmap_svg(W5),
        norm_bars_svg(W5),
        neuron_weights_svg(W5),
        stacked_exposures_svg(W5, [0.8**f for f in range(7)]),
        dimensionality_svg([1.0, 0.1, 0.01], [[1, 0.5], [0.5, 0.5], [0.4, 0.0]], [1, 0.5, 0.4]),
        decoder_frame_svg(
            [[1, 0], [0, 1]],
            [[0.6, 0.8], [-1, 0]],
            step=40,
            total_steps=100,
            resample_steps=[20, 60],
            resampled=True,
        ),
    ]


def test_every_plot_is_well_formed_svg_with_a_title():
    for svg in _all_plots():
        root = _parse(svg)
        assert root.find(f"{SVG}title").text
        assert root.get("role") == "img"


def test_plots_are_deterministic():
    assert [str(s) for s in _all_plots()] == [str(s) for s in _all_plots()]


def test_heatmap_has_one_cell_per_entry_with_its_value_on_hover():
    root = _parse(gram_heatmap_svg(W2))
    cells = root.findall(f"{SVG}rect")
    assert len(cells) == 16
    g = gram(W2)
    titles = [cell.find(f"{SVG}title").text for cell in cells]
    assert titles[1] == f"f0, f1: W_i·W_j {g[0][1]:.3g}"  # -1: an antipodal pair
    assert g[0][1] == pytest.approx(-1.0)


def test_polysemanticity_is_zero_for_orthogonal_features_and_positive_for_a_shared_dimension():
    assert polysemanticity([[1.0, 0.0], [0.0, 2.0]]) == [0.0, 0.0]
    shared = polysemanticity(W2)
    assert shared[0] == pytest.approx(1.0 + 0.09)  # f1 antipodal, f3 overlaps by 0.3
    assert shared[2] > 0


def test_scatter_draws_one_line_per_feature_from_the_origin():
    root = _parse(feature_scatter_svg(W2, [1.0, 0.9, 0.8, 0.7]))
    groups = [g for g in root.iter(f"{SVG}g") if g.find(f"{SVG}title") is not None]
    assert len(groups) == 4
    assert all(g.find(f"{SVG}path").get("d").startswith("M110 110L") for g in groups)
    assert sorted(g.find(f"{SVG}title").text[:2] for g in groups) == ["f0", "f1", "f2", "f3"]


def test_decoder_frame_marks_resampling_steps_on_its_timeline():
    svg = str(
        decoder_frame_svg(
            [[1, 0]], [[0, 1]], step=50, total_steps=100, resample_steps=[25, 75], resampled=False
        )
    )
    assert (
        "resampling steps" in svg
        and "step 50" in svg
        and "resampled" not in svg.replace("resampling", "")
    )
