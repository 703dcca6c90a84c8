"""Page contexts for the toy-model pages, from site.json's ``toy`` entry alone (no torch).

``pages(site)`` returns ``(relative path, template, context)`` for

    toy/index.html          the models, dimensionality against sparsity, the recovery summary
    toy/<model>.html        per instance: the geometry (or the neuron plots)
    toy/<model>-sae.html    per bottleneck instance: recovery tables and decoder frames
    toy/double-descent.html the loss against dataset size and the hidden vectors (if swept)

Every number is formatted and every plot drawn here, so the templates only loop and print.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from markupsafe import Markup

from saesite.site.double_descent_page import double_descent_context
from saesite.site.toy_geometry import decoder_frame_svg, dimensionality_svg, feature_scatter_svg
from saesite.site.toy_plots import (
    gram_heatmap_svg,
    neuron_weights_svg,
    norm_bars_svg,
    stacked_exposures_svg,
)
from saesite.site.toy_svg import fmt

MAX_FRAMES = 26
"""Decoder frames kept per SAE (every other snapshot, plus every frame with a resampling)."""
KIND_TEXT = {
    "bottleneck": "h = W x,  x′ = ReLU(Wᵀh + b)",
    "neuron": "h = ReLU(W x),  x′ = ReLU(Wᵀh + b)",
    "computation": "h = ReLU(W x),  x′ = ReLU(W_out h + b),  target |x|",
}


def _p_text(p: float) -> str:
    return f"p = {fmt(p)} (sparsity {fmt(1 - p)})"


def _feature_hrefs(site: Mapping) -> dict[int, str]:
    """Each latent's page, relative to the site root."""
    return {int(entry["index"]): str(entry["html"]) for entry in site.get("features") or []}


def latent_instances(site: Mapping) -> dict[int, str]:
    """Each SAE latent's instance on its model's SAE page (``toy/<model>-sae.html#i<level>``),
    by feature index: a latent's page links its label there."""
    toy = site.get("toy") or {}
    return {
        int(row["index"]): f"toy/{inst['model']}-sae.html#i{inst['level']}"
        for inst in toy.get("instances") or []
        if "sae" in inst
        for row in inst["sae"]["latents"]
    }


def _model_instances(toy: Mapping, name: str) -> list[Mapping]:
    return [inst for inst in toy["instances"] if inst["model"] == name]


def _recovered(rows: Sequence[Mapping], threshold: float) -> tuple[int, int]:
    """(represented features recovered at ``threshold``, represented features)."""
    represented = [row for row in rows if row["represented"]]
    return sum(row["cosine"] >= threshold for row in represented), len(represented)


def _summary_row(model: Mapping, inst: Mapping, threshold: float) -> dict:
    sae = inst["sae"]
    got, of = _recovered(sae["features"], threshold)
    got_none, _ = _recovered(sae["no_resample"]["features"], threshold)
    return {
        "model": model["title"],
        "href": f"{model['name']}-sae.html#i{inst['level']}",
        "p": fmt(inst["feature_probability"]),
        "represented": str(of),
        "recovered": f"{got} / {of}",
        "recovered_no_resample": f"{got_none} / {of}",
        "all_recovered": got == of,
        "dead": str(sae["dead"]),
        "dead_no_resample": str(sae["no_resample"]["dead"]),
    }


def index_context(site: Mapping) -> dict:
    toy = site["toy"]
    threshold = toy["thresholds"]["recovered_cosine"]
    models, dims, rows = [], [], []
    for model in toy["models"]:
        instances = _model_instances(toy, model["name"])
        bottleneck = model["kind"] == "bottleneck"
        models.append(
            {
                "title": model["title"],
                "href": f"{model['name']}.html",
                "has_sae": bottleneck,
                "sae_href": f"{model['name']}-sae.html",
                "shape": f"{model['n_features']} features → {model['n_hidden']} "
                f"{'dimensions' if bottleneck else 'neurons'}",
                "equation": KIND_TEXT[model["kind"]],
                "levels": ", ".join(fmt(inst["feature_probability"]) for inst in instances),
            }
        )
        if bottleneck:
            dims.append(
                {
                    "title": model["title"],
                    "svg": dimensionality_svg(
                        [inst["feature_probability"] for inst in instances],
                        [inst["dimensionality"] for inst in instances],
                        [inst["dimensions_per_feature"] for inst in instances],
                    ),
                }
            )
            rows.extend(_summary_row(model, inst, threshold) for inst in instances)
    return {
        "title": "Toy models of superposition",
        "models": models,
        "dimensionality": dims,
        "recovery_rows": rows,
        "threshold": fmt(threshold),
        "represented_norm": fmt(toy["thresholds"]["represented_norm"]),
        "has_double_descent": "double_descent" in toy,
    }


def _instance_context(model: Mapping, inst: Mapping) -> dict:
    W = inst["W"]
    two_d = model["kind"] == "bottleneck" and model["n_hidden"] == 2
    neurons = model["kind"] != "bottleneck"
    dims = ", ".join(f"f{f} {d:.2f}" for f, d in enumerate(inst["dimensionality"]))
    represented = sum(inst["represented"])
    return {
        "anchor": f"i{inst['level']}",
        "heading": f"Instance {inst['level']}: {_p_text(inst['feature_probability'])}",
        "loss": fmt(inst["loss"]),
        "represented": f"{represented} of {model['n_features']}",
        "dimensions_per_feature": fmt(inst["dimensions_per_feature"]),
        "dimensionality": dims,
        "has_scatter": two_d,
        "scatter": feature_scatter_svg(W, model["importance"]) if two_d else Markup(""),
        "has_bars": not neurons and not two_d,
        "bars": norm_bars_svg(W) if not neurons and not two_d else Markup(""),
        "has_gram": not neurons,
        "gram": gram_heatmap_svg(W) if not neurons else Markup(""),
        "has_neurons": neurons,
        "neuron_weights": neuron_weights_svg(W) if neurons else Markup(""),
        "exposures": stacked_exposures_svg(W, model["importance"]) if neurons else Markup(""),
        "has_sae": "sae" in inst,
        "sae_href": f"{model['name']}-sae.html#i{inst['level']}",
    }


def model_context(site: Mapping, model: Mapping) -> dict:
    toy = site["toy"]
    instances = _model_instances(toy, model["name"])
    pairs = []
    if model["n_correlated_pairs"]:
        pairs.append(f"{model['n_correlated_pairs']} correlated pair(s) (always on together)")
    if model["n_anticorrelated_pairs"]:
        pairs.append(
            f"{model['n_anticorrelated_pairs']} anti-correlated pair(s) (never on together)"
        )
    return {
        "title": model["title"],
        "equation": KIND_TEXT[model["kind"]],
        "shape": f"{model['n_features']} features, {model['n_hidden']} hidden",
        "importance": ", ".join(fmt(v) for v in model["importance"]),
        "has_pairs": bool(pairs),
        "pairs": "; ".join(pairs),
        "is_bottleneck": model["kind"] == "bottleneck",
        "is_computation": model["kind"] == "computation",
        "sae_href": f"{model['name']}-sae.html",
        "instances": [_instance_context(model, inst) for inst in instances],
    }


def _table_rows(hrefs: Mapping[int, str], sae: Mapping) -> tuple[list[dict], list[dict]]:
    none_by_feature = {row["feature"]: row for row in sae["no_resample"]["features"]}
    features = []
    for row in sae["features"]:
        other = none_by_feature[row["feature"]]
        features.append(
            {
                "feature": f"f{row['feature']}",
                "represented": row["represented"],
                "latent": f"#{row['index']}",
                "href": hrefs.get(row["index"], "index.html"),
                "cosine": f"{row['cosine']:.3f}",
                # a feature the model does not represent cannot be recovered: no ✓ however close
                "recovered": row["represented"] and row["recovered"],
                "cosine_no_resample": f"{other['cosine']:.3f}",
                "recovered_no_resample": row["represented"] and other["recovered"],
            }
        )
    latents = [
        {
            "latent": f"#{row['index']}",
            "href": hrefs.get(row["index"], "index.html"),
            "has_match": row["feature"] is not None,
            "match": f"f{row['feature']}" if row["feature"] is not None else "none",
            "cosine": f"{row['cosine']:.3f}",
        }
        for row in sae["latents"]
    ]
    return features, latents


def _frame_contexts(inst: Mapping) -> list[dict]:
    sae = inst["sae"]
    frames = sae["frames"]
    if not frames or inst["n_hidden"] != 2:
        return []
    keep = [
        i
        for i, frame in enumerate(frames)
        if i % 2 == 0 or frame["resampled"] or i == len(frames) - 1
    ]
    keep = keep[-MAX_FRAMES:] if len(keep) > MAX_FRAMES else keep
    features = [list(col) for col in zip(*inst["W"])]
    events = [e["step"] for e in sae["resample_events"] if e["n_resampled"]]
    names = [f"#{row['index']}" for row in sae["latents"]]
    out = []
    for number, i in enumerate(keep):
        frame = frames[i]
        out.append(
            {
                "number": number,
                "step": str(frame["step"]),
                "resampled": frame["resampled"],
                "last": number == len(keep) - 1,
                "svg": decoder_frame_svg(
                    features,
                    frame["W_dec"],
                    step=frame["step"],
                    total_steps=sae["steps"],
                    resample_steps=events,
                    resampled=frame["resampled"],
                    names=names,
                    size=220,
                ),
            }
        )
    return out


def sae_context(site: Mapping, model: Mapping) -> dict:
    toy = site["toy"]
    threshold = toy["thresholds"]["recovered_cosine"]
    hrefs = _feature_hrefs(site)
    instances = []
    for inst in _model_instances(toy, model["name"]):
        sae = inst["sae"]
        features, latents = _table_rows(hrefs, sae)
        got, of = _recovered(sae["features"], threshold)
        got_none, _ = _recovered(sae["no_resample"]["features"], threshold)
        frames = _frame_contexts(inst)
        events = [e for e in sae["resample_events"] if e["n_resampled"]]
        instances.append(
            {
                "anchor": f"i{inst['level']}",
                "heading": f"Instance {inst['level']}: {_p_text(inst['feature_probability'])}",
                "model_href": f"{model['name']}.html#i{inst['level']}",
                "summary": f"{got} of {of} represented features recovered (cos ≥ {fmt(threshold)}) "
                f"with resampling, {got_none} without.",
                "metrics": f"L0 {fmt(sae['l0'])} · MSE {fmt(sae['mse'])} · explained variance "
                f"{fmt(sae['explained_variance'])} · dead latents {sae['dead']} "
                f"(without resampling: {sae['no_resample']['dead']})",
                "resampling": ", ".join(f"step {e['step']}: {e['n_resampled']}" for e in events)
                or "none needed",
                "features": features,
                "latents": latents,
                "has_frames": bool(frames),
                "frames": frames,
                "last_frame": str(max(len(frames) - 1, 0)),
            }
        )
    return {
        "title": f"SAEs on “{model['title']}”",
        "model_href": f"{model['name']}.html",
        "match_cosine": fmt(toy["thresholds"]["match_cosine"]),
        "threshold": fmt(threshold),
        "instances": instances,
    }


def pages(site: Mapping) -> list[tuple[str, str, dict]]:
    """Every toy page: (path relative to the site root, template name, context)."""
    out = [("toy/index.html", "toy_index.html", index_context(site))]
    if "double_descent" in site["toy"]:
        context = double_descent_context(site)
        out.append(("toy/double-descent.html", "toy_double_descent.html", context))
    for model in site["toy"]["models"]:
        out.append((f"toy/{model['name']}.html", "toy_model.html", model_context(site, model)))
        if model["kind"] == "bottleneck":
            out.append((f"toy/{model['name']}-sae.html", "toy_sae.html", sae_context(site, model)))
    return out
