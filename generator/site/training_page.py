"""The training page: how the SAE was trained, from its training log (`saesite train-sae`).

Torch-free. ``site["training"]`` is the log `saesite.train.sae.fit_sae` returns (plus the
``held_out`` metrics `train_sae` adds): per-step loss, MSE, L1, L0, dead fraction and learning
rate, the resampling events and the final feature density. The page draws each curve as an
inline SVG with the resampling steps as dashed lines, and the final density histogram (log10
of the fraction of tokens each feature fired on over the last ``resample_window`` steps, dead
features counted apart).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from markupsafe import Markup

from saesite.site.page_context import config_text, fmt_int, fmt_num, fmt_pct
from saesite.site.plots import histogram_svg, line_chart_svg

DENSITY_BIN_WIDTH = 0.1
"""Width of the density histogram's bins, in log10 units."""
CHART_WIDTH, CHART_HEIGHT = 480, 180

# (log key, chart title, y label, log scale, scale factor)
CHARTS = (
    ("loss", "Loss", "loss", True, 1.0),
    ("mse", "Reconstruction error (MSE)", "MSE", True, 1.0),
    ("l0", "L0: features firing per token", "L0", False, 1.0),
    ("dead_fraction", "Dead features", "dead (%)", False, 100.0),
)


def density_histogram(density: Sequence[float]) -> tuple[list[float], list[int], int]:
    """Bins of log10 density over the live features, on fixed edges; and the dead count."""
    live = [math.log10(d) for d in density if d > 0]
    dead = len(density) - len(live)
    if not live:
        return [], [], dead
    lo = math.floor(min(live) / DENSITY_BIN_WIDTH) * DENSITY_BIN_WIDTH
    hi = max(0.0, math.ceil(max(live) / DENSITY_BIN_WIDTH) * DENSITY_BIN_WIDTH)
    n_bins = max(1, round((hi - lo) / DENSITY_BIN_WIDTH))
    edges = [round(lo + i * DENSITY_BIN_WIDTH, 6) for i in range(n_bins + 1)]
    counts = [0] * n_bins
    for value in live:
        counts[min(n_bins - 1, int((value - lo) / DENSITY_BIN_WIDTH))] += 1
    return edges, counts, dead


def _charts(
    steps: Sequence[Mapping], markers: list[float], scaled: bool
) -> tuple[list[dict], list[str]]:
    """The curves worth drawing, and one line each for those that would be flat or repeat
    another: a top-k SAE's loss is its MSE, its L0 is k at every step."""
    xs = [float(s["step"]) for s in steps]
    charts, notes = [], []
    same_as_mse = all(s.get("loss") == s.get("mse") for s in steps)
    for key, title, y_label, log_y, factor in CHARTS:
        if key == "mse" and scaled:
            title = f"{title}; inputs scaled to unit total variance, so ≈ 1 − explained variance"
        values = [s.get(key) for s in steps]
        if not any(v is not None for v in values):
            continue
        if key == "loss" and same_as_mse:
            notes.append("The loss is the MSE at every step (no sparsity penalty): one curve.")
            continue
        present = {v for v in values if v is not None}
        if len(present) == 1:
            value = present.pop()
            shown = fmt_pct(value) if key == "dead_fraction" else fmt_num(value)
            notes.append(f"{title}: {shown} at every logged step.")
            continue
        series = {y_label: [None if v is None else float(v) * factor for v in values]}
        last = next((v for v in reversed(values) if v is not None), None)
        final = fmt_pct(last) if key == "dead_fraction" else fmt_num(last)
        charts.append(
            {
                "title": title,
                "svg": line_chart_svg(
                    xs,
                    series,
                    x_label="step",
                    y_label=y_label,
                    markers=markers,
                    width=CHART_WIDTH,
                    height=CHART_HEIGHT,
                    log_y=log_y,
                ),
                "final": final,
            }
        )
    return charts, notes


def _summary(training: Mapping) -> list[tuple[str, str]]:
    config = training.get("config") or {}
    steps = training.get("steps") or []
    last = steps[-1] if steps else {}
    rows = []
    if config.get("architecture"):
        shape = (
            f"{config['architecture']} · d_in {fmt_int(config.get('d_in'))} → d_sae "
            f"{fmt_int(config.get('d_sae'))}"
        )
        if config["architecture"] == "topk" and config.get("k") is not None:
            shape += f" · k {config['k']}"
        rows.append(("SAE", shape))
    if config.get("steps") is not None and config.get("batch_size") is not None:
        tokens = int(config["steps"]) * int(config["batch_size"])
        rows.append(
            (
                "trained on",
                f"{fmt_int(tokens)} activations "
                f"({fmt_int(config['steps'])} steps × "
                f"{fmt_int(config['batch_size'])})",
            )
        )
    if last:
        rows.append(("final L0", fmt_num(last.get("l0"))))
        rows.append(("final dead fraction", fmt_pct(last.get("dead_fraction"))))
    events = training.get("resample_events") or []
    if events:
        total = sum(int(e.get("n_resampled", 0)) for e in events)
        rows.append(
            (
                "resampled",
                f"{fmt_int(total)} features in {len(events)} checks "
                f"({config.get('resample', '?')})",
            )
        )
    held = training.get("held_out") or {}
    if held.get("explained_variance") is not None:
        rows.append(("held-out explained variance", fmt_num(held["explained_variance"])))
    if held.get("l0") is not None:
        rows.append(("held-out L0", fmt_num(held["l0"])))
    return rows


def training_context(training: Mapping) -> dict:
    """The context of ``training.html``: formatted facts and inline-SVG charts."""
    steps = training.get("steps") or []
    events = training.get("resample_events") or []
    markers = [float(e["step"]) for e in events]
    edges, counts, dead = density_histogram(training.get("final_density") or [])
    config = training.get("config") or {}
    density_svg = (
        histogram_svg(
            edges,
            counts,
            x_label="log10 firing density",
            y_label="features",
            width=CHART_WIDTH,
            height=CHART_HEIGHT,
        )
        if counts
        else Markup("")
    )
    charts, notes = _charts(steps, markers, scaled=config.get("input_scale") is not None)
    return {
        "summary": _summary(training),
        "charts": charts,
        "chart_notes": notes,
        "has_charts": bool(steps),
        "has_resampling": bool(events),
        "resample_events": [
            {"step": fmt_int(e.get("step")), "n_resampled": fmt_int(e.get("n_resampled"))}
            for e in events
        ],
        "has_density": bool(counts),
        "density_svg": density_svg,
        "n_dead": fmt_int(dead),
        "n_features": fmt_int(len(training.get("final_density") or [])),
        "density_window": fmt_int(config.get("resample_window")),
        "has_config": bool(config),
        "config_text": config_text(config),
    }


def pages(site: Mapping) -> list[tuple[str, str, dict]]:
    """``[("training.html", "training.html", context)]`` when the site carries a training log."""
    training = site.get("training")
    if not training:
        return []
    return [("training.html", "training.html", training_context(training))]
