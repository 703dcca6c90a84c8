"""`saesite toy`: train the toy models, SAEs on their hidden layers, and write the site.

    1. every toy model of ``default_models`` (all instances batched), best replica per level
    2. per bottleneck instance, two SAEs from the same start on the same inputs: one with
       Anthropic resampling (its latents get feature pages) and one without (for comparison)
    3. the double-descent sweep: one 2-D model per dataset size T (``toy.double_descent``)
    4. records: site.json's ``toy`` entry and one feature record per latent
    5. ``render.write_site`` (the toy pages come from ``saesite.site.toy_page``)

Nothing is written until every record exists. Deterministic for a seed: every instance, SAE and
sample draws from its own generator keyed by (seed, model, level, replica, purpose).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from saesite.config import RenderConfig, ToyConfig
from saesite.records.build import density_histogram
from saesite.records.rounding import rounded
from saesite.records.schema import site_record
from saesite.threads import one_thread
from saesite.toy.data import instance_generator, sample_features, stable_seed
from saesite.toy.double_descent import double_descent_entry
from saesite.toy.model import (
    ToyModelConfig,
    ToyTrainConfig,
    TrainedToy,
    default_models,
    feature_dimensionality,
    select_best,
    train_toy_model,
)
from saesite.toy.sae import (
    LATENT_PAGE_STATS,
    MATCH_COSINE,
    RECOVERED_COSINE,
    REPRESENTED_NORM,
    RESAMPLE_EVERY,
    RESAMPLE_UNTIL,
    RESAMPLE_WINDOW,
    ToySaeConfig,
    fit_toy_sae,
    latent_records,
    recovery_table,
)

log = logging.getLogger(__name__)

TITLE = "Toy models of superposition"
DIGITS = 4
"""Significant digits of the weights and cosines stored in site.json."""


def _r(values) -> list:
    """Nested lists of floats rounded to DIGITS significant digits."""
    return rounded(values, DIGITS)


def instance_entry(trained: TrainedToy, level: int) -> dict:
    """One instance's plain summary: its weights, loss and feature dimensionalities."""
    cfg = trained.cfg
    W = trained.model.W[level].detach().cpu().double()
    norms = W.norm(dim=0)
    entry = {
        "model": cfg.name,
        "kind": cfg.kind,
        "level": level,
        "feature_probability": trained.feature_probability[level],
        "n_features": cfg.n_features,
        "n_hidden": cfg.n_hidden,
        "loss": float(trained.loss[level]),
        "W": _r(W),
        "b": _r(trained.model.b_final[level].detach().cpu()),
        "feature_norms": _r(norms),
        "represented": [bool(n >= REPRESENTED_NORM) for n in norms.tolist()],
        "dimensionality": _r(feature_dimensionality(W[None])[0]),
        "dimensions_per_feature": float(cfg.n_hidden / max(W.pow(2).sum().item(), 1e-12)),
    }
    if cfg.kind == "computation":
        entry["W_out"] = _r(trained.model.W_out[level].detach().cpu())
    return entry


def _frames(training_log: dict) -> list[dict]:
    """Decoder snapshots (2-D SAEs), each flagged when a resampling happened since the last."""
    events = [e["step"] for e in training_log.get("resample_events", []) if e["n_resampled"]]
    frames, previous = [], -1
    for snap in training_log.get("decoder_snapshots", []):
        step = snap["step"]
        frames.append(
            {
                "step": step,
                "W_dec": _r(snap["W_dec"]),
                "resampled": any(previous < s <= step for s in events),
            }
        )
        previous = step
    return frames


def sae_entry(
    trained: TrainedToy, level: int, cfg: ToyConfig, first_index: int
) -> tuple[dict, list[dict]]:
    """Two SAEs on one bottleneck instance; its ``toy`` fields and its latents' records."""
    from saesite.train.sae import reconstruction_metrics

    model_cfg = trained.cfg
    key = trained.keys[level]
    W = trained.model.W[level].detach().cpu()
    p = trained.feature_probability[level]
    sae_cfg = ToySaeConfig(
        d_sae=model_cfg.n_features,
        l1=cfg.sae_l1,
        steps=cfg.sae_steps,
        batch_size=cfg.batch_size,
        seed=stable_seed(*key, "sae") % 2**31,
        device=cfg.device,
    )
    runs = {}
    for resample in ("anthropic", "none"):
        sae, training_log = fit_toy_sae(
            W,
            model_cfg.data,
            p,
            instance_generator(*key, "sae"),
            replace(sae_cfg, resample=resample),
        )
        runs[resample] = (sae.cpu(), training_log)
    sae, training_log = runs["anthropic"]
    table = recovery_table(sae.W_dec, W)
    table_none = recovery_table(runs["none"][0].W_dec, W)
    x = sample_features(model_cfg.data, p, cfg.n_samples, instance_generator(*key, "pages"))
    metrics = reconstruction_metrics(sae, x @ W.T)
    prefix = f"{model_cfg.name} #{level}"
    labels = [
        f"{prefix} · ≈ f{row['feature']} (cos {row['cosine']:.2f})"
        if row["feature"] is not None
        else f"{prefix} · no match"
        for row in table["latents"]
    ]
    records = latent_records(
        sae,
        x,
        W,
        first_index=first_index,
        labels=labels,
        cfg=replace(LATENT_PAGE_STATS, seed=stable_seed(*key, "quantiles") % 2**31),
    )
    fields = {
        "recovery": [row["cosine"] for row in table["features"]],
        "recovery_no_resample": [row["cosine"] for row in table_none["features"]],
        "sae": {
            "d_sae": sae.cfg.d_sae,
            "first_index": first_index,
            "latents": [{**row, "index": first_index + row["latent"]} for row in table["latents"]],
            "features": [
                {**row, "index": first_index + row["latent"]} for row in table["features"]
            ],
            "no_resample": {
                "latents": table_none["latents"],
                "features": table_none["features"],
                "dead": sum(d == 0 for d in runs["none"][1]["final_density"]),
            },
            "dead": sum(d == 0 for d in training_log["final_density"]),
            "resample_events": training_log["resample_events"],
            "frames": _frames(training_log),
            "steps": cfg.sae_steps,
            "l0": float(metrics["l0"]),
            "mse": float(metrics["mse"]),
            "explained_variance": float(metrics["explained_variance"]),
        },
    }
    return fields, records


def build_toy_site(
    cfg: ToyConfig,
    replace_folder: str | None = None,
    *,
    models: list[ToyModelConfig] | None = None,
) -> Path:
    """``saesite toy``: the whole pipeline (``models``: default ``default_models``). Returns the
    site folder.

    Runs torch on one CPU thread: every tensor here is tiny, and intra-op threads only add
    synchronisation (measured 20x slower per SAE step with 2 threads on a busy 2-core machine).
    """
    from saesite.site.writer import check_output_folder

    check_output_folder(cfg.out, replace_folder=replace_folder)
    with one_thread():
        return _build(cfg, replace_folder, models or default_models(cfg.seeds_per_level))


def _build(cfg: ToyConfig, replace_folder: str | None, models: list[ToyModelConfig]) -> Path:
    from saesite.site.intake import feature_paths, folder_width
    from saesite.site.render import write_site

    started = time.perf_counter()
    train = ToyTrainConfig(
        steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, device=cfg.device
    )
    trained = [select_best(train_toy_model(m, train)) for m in tqdm(models, desc="toy models")]
    log.info("trained %d toy models in %.1f s", len(trained), time.perf_counter() - started)

    instances: list[dict] = []
    features: list[dict] = []
    jobs = [(t, level) for t in trained for level in range(len(t.loss))]
    for t, level in tqdm(jobs, desc="toy SAEs", unit="instance"):
        entry = instance_entry(t, level)
        if t.cfg.kind == "bottleneck":
            fields, records = sae_entry(t, level, cfg, first_index=len(features))
            entry.update(fields)
            features.extend(records)
        instances.append(entry)

    double_descent = None
    if cfg.double_descent.sizes:
        double_descent = double_descent_entry(cfg.double_descent, cfg.seed, cfg.device)

    render = RenderConfig(out=cfg.out, replace_folder=replace_folder, title=TITLE)
    width = folder_width(len(features), render.features_per_folder)
    pages = [feature_paths(f["index"], render.features_per_folder, width)[0] for f in features]
    density = np.array([f["density"] for f in features])
    dead = np.array([f["dead"] for f in features], dtype=bool)
    site = site_record(
        model="toy models of superposition",
        hook="hidden layer h = W x",
        d_in=None,
        d_sae=len(features),
        sae={
            "architecture": "standard",
            "l1": cfg.sae_l1,
            "steps": cfg.sae_steps,
            "batch_size": cfg.batch_size,
            "resample": "anthropic",
            "resample_every": RESAMPLE_EVERY,
            "resample_window": RESAMPLE_WINDOW,
            "resample_until": int(RESAMPLE_UNTIL * cfg.sae_steps),
        },
        n_tokens=cfg.n_samples,
        n_seq=cfg.n_samples,
        seq_len=1,
        config=asdict(cfg),
        metrics={
            "dead_count": int(dead.sum()),
            "dense_count": int(sum(f["dense"] for f in features)),
        },
        density_histogram=density_histogram(density, dead),
        features=[
            {"index": f["index"], "html": html} for f, html in zip(features, pages, strict=True)
        ],
        toy={
            "models": [_model_entry(t) for t in trained],
            "instances": instances,
            "thresholds": {
                "recovered_cosine": RECOVERED_COSINE,
                "match_cosine": MATCH_COSINE,
                "represented_norm": REPRESENTED_NORM,
            },
        },
    )
    if double_descent is not None:
        site["toy"]["double_descent"] = double_descent
    out = write_site(site, features, render)
    log.info(
        "wrote %s (%d toy instances, %d SAE latents) in %.1f s",
        out,
        len(instances),
        len(features),
        time.perf_counter() - started,
    )
    return out


def _model_entry(trained: TrainedToy) -> dict:
    cfg = trained.cfg
    return {
        "name": cfg.name,
        "title": cfg.title,
        "kind": cfg.kind,
        "n_features": cfg.n_features,
        "n_hidden": cfg.n_hidden,
        "importance": _r(cfg.importance),
        "feature_probability": list(cfg.feature_probability),
        "n_correlated_pairs": cfg.n_correlated_pairs,
        "n_anticorrelated_pairs": cfg.n_anticorrelated_pairs,
        "seeds_per_level": cfg.seeds_per_level,
    }
