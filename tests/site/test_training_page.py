"""The training page renders the training log: curves, resampling markers, density histogram."""

from __future__ import annotations

import math
import re

import pytest

from saesite.site.render import make_environment, render_page
from saesite.site.training_page import density_histogram, pages


def training_log(with_resampling: bool = True) -> dict:
    steps = [
        {
            "step": s,
            "loss": 2.0 / s,
            "mse": 1.0 / s,
            "l1": 3.0,
            "l0": 40.0 - s / 10,
            "dead_fraction": 0.3 if s < 100 else 0.02,
            "lr": 1e-3,
        }
        for s in range(25, 301, 25)
    ]
    events = [{"step": 100, "n_resampled": 57}, {"step": 200, "n_resampled": 3}]
    density = [0.0, 0.0, 0.0, 1e-5, 3e-4, 3e-4, 0.01, 0.2, 1.0]
    return {
        "config": {
            "architecture": "standard",
            "d_in": 512,
            "d_sae": 9,
            "steps": 300,
            "batch_size": 4096,
            "resample": "anthropic" if with_resampling else "none",
            "resample_window": 50,
            "l1": 5.0,
            "<script>": "</script>",
        },
        "steps": steps,
        "resample_events": events if with_resampling else [],
        "final_density": density,
        "held_out": {"explained_variance": 0.81234, "l0": 31.5, "mse": 0.1, "n_tokens": 100},
    }


def render(site: dict) -> str:
    [(rel_path, template, context)] = pages(site)
    assert rel_path == "training.html"
    return render_page(
        make_environment(),
        template,
        rel_path,
        context,
        title="Demo <SAE>",
        nav=[("index.html", "Overview"), ("training.html", "Training")],
    )


def test_site_without_a_training_log_has_no_training_page():
    assert pages({"model": "demo"}) == []


def test_training_page_shows_the_four_curves_and_the_density_histogram():
    html = render({"training": training_log()})
    assert html.count('<svg class="plot"') == 5
    for title in (
        "Loss",
        "Reconstruction error (MSE)",
        "L0: features firing per token",
        "Dead features",
    ):
        assert title in html
    assert "3 of 9 features never fired" in html
    assert "0.812" in html  # held-out explained variance, formatted in Python


def test_training_page_marks_each_resampling_step_on_every_curve():
    html = render({"training": training_log()})
    markers = re.findall(r'<path class="plot-marker" d="([^"]*)"', html)
    assert len(markers) == 4
    assert all(m.count("M") == 2 for m in markers)  # steps 100 and 200
    assert "<td>100</td><td>57</td>" in html
    assert "60 features in 2 checks" in html


def test_training_page_without_resampling_has_no_markers():
    html = render({"training": training_log(with_resampling=False)})
    assert "plot-marker" not in html
    assert "Resampling events" not in html


def test_training_page_escapes_the_logged_configuration():
    html = render({"training": training_log()})
    assert "</script>" not in html.split("<pre>")[1].split("</pre>")[0]
    assert "&lt;/script&gt;" in html
    assert "Demo &lt;SAE&gt;" in html


def test_density_histogram_bins_live_features_and_counts_dead_apart():
    density = [0.0, 1e-5, 3e-4, 3e-4, 0.01, 0.2, 1.0]
    edges, counts, dead = density_histogram(density)
    assert dead == 1
    assert sum(counts) == 6
    assert len(edges) == len(counts) + 1
    assert edges[0] <= math.log10(1e-5) and edges[-1] >= 0
    for value in (1e-5, 3e-4, 0.01, 0.2, 1.0):
        position = math.log10(value)
        bin_index = min(len(counts) - 1, int((position - edges[0]) / (edges[1] - edges[0])))
        assert counts[bin_index] >= 1


@pytest.mark.parametrize("density", [[], [0.0, 0.0]])
def test_density_histogram_of_no_live_features_is_empty(density):
    assert density_histogram(density)[:2] == ([], [])


def test_a_top_k_log_draws_loss_once_and_states_constant_l0_and_dead_fraction():
    log = training_log()
    for step in log["steps"]:
        step.update(loss=step["mse"], l0=32.0, dead_fraction=0.0)
    html = render({"training": log})
    assert html.count('<svg class="plot"') == 2  # MSE and the density histogram
    assert "The loss is the MSE at every step" in html
    assert "L0: features firing per token: 32 at every logged step." in html
    assert "Dead features: 0% at every logged step." in html
