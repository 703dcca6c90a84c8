"""Several SAEs in one site: the pipeline's stages for a list of SAEs on one model and dataset.

    load_many(config, sources)              -> [SaeBuild]   the model and tokens once, each SAE
    compute_many(builds, stats, weights)    -> [FeatureStats]  ONE pass (stats/multi_pass.py)
    write_many(builds, stats)               -> [Records]    each SAE's, as a build of it alone
    cross_records(...)                      -> CrossRecords links and comparisons (decoders)
    render_many(...)                        -> Path         site/multi_site.py

``saesite build --sae A --sae B …`` (``build_many``) and ``saesite.build(model, [sae, …],
tokens)`` run them. Every SAE's records are those a single-SAE build of it writes (the same
statistics, the same record code); the site puts each SAE's pages under ``sae/<id>/``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from saesite.config import BuildConfig, StatsConfig, WeightStatsConfig
from saesite.errors import SaesiteError
from saesite.lm.data import check_readable, load_tokens
from saesite.lm.model import load_model
from saesite.lm.skeleton import check_hook_before_weights, skeleton_config
from saesite.pipeline import (
    Loaded,
    bounded_batch,
    build_inputs,
    check_sae_fits,
    complete,
    load_objects,
    preflight_out,
    read_training_log,
    write_records,
)
from saesite.preflight import check_device, check_stats_sizes
from saesite.records.build import Records
from saesite.records.cross import CrossRecords, SaeDecoder, cross_records
from saesite.sae.arena import detect_arena_format
from saesite.sae.defaults import resolve_data, resolve_hook, resolve_model
from saesite.sae.source import load_saes
from saesite.stats.feature_stats import FeatureStats

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class SaeBuild:
    """One SAE of a multi-SAE build: its id (its folder ``sae/<id>/``), what ``load`` would
    give a build of it alone, and that build's config."""

    id: str
    loaded: Loaded
    config: BuildConfig


def slug(text: str) -> str:
    """A folder name from an SAE's path or hook: letters, digits, ``.``, ``_``, ``-``."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-") or "sae"
    return name[:80]


def unique_ids(names: Sequence[str]) -> list[str]:
    """``names`` made unique by ``-2``, ``-3``, … suffixes, in order."""
    ids: list[str] = []
    for name in names:
        candidate, n = name, 1
        while candidate in ids:
            n += 1
            candidate = f"{name}-{n}"
        ids.append(candidate)
    return ids


def check_labels_of(config: BuildConfig, ids: Sequence[str], saes: Sequence[Any]) -> None:
    """The labels file of a site of several SAEs (by SAE id, ``site/labels.py``) against their
    ids and widths, before the pass."""
    if config.render.labels:
        from saesite.site.labels import check_sae_labels

        widths = {sae_id: sae.cfg.d_sae for sae_id, sae in zip(ids, saes, strict=True)}
        check_sae_labels(config.render.labels, widths)


def load_many(config: BuildConfig, sources: Sequence[tuple[str, int | None]]) -> list[SaeBuild]:
    """Stage 1 for several SAEs: each ``(path, instance)`` (instance None: every instance of
    an ARENA n_instances file); the model named by ``config.model`` or the first SAE, and the
    tokens, loaded once; every SAE checked against its hook."""
    device = config.stats.device
    saes, names, configs = [], [], []
    for path, instance in sources:
        found = load_saes(path, device, instance)
        arena = detect_arena_format(path) is not None
        for k, sae in enumerate(found):
            inst = instance if instance is not None else (k if arena else None)
            saes.append(sae)
            base = slug(Path(str(path)).name or str(path))
            names.append(base if inst is None else f"{base}-i{inst}")
            configs.append(replace(config, sae=str(path), instance=inst))
    if not saes:
        raise SaesiteError("no SAE given; expected --sae PATH (one or more)")
    ids = unique_ids(names)
    check_labels_of(config, ids, saes)
    first = saes[0]
    model_name = resolve_model(config.model, first, True)
    model_kwargs = first.cfg.extra_metadata.get("model_from_pretrained_kwargs")
    hooks = [resolve_hook(config.hook, sae) for sae in saes]
    # every hook and width from the model's config, before its weights load (as ``load``)
    skeleton = skeleton_config(model_name, model_kwargs)
    if skeleton is not None:
        for sae, hook in zip(saes, hooks, strict=True):
            check_hook_before_weights(skeleton, hook, sae.cfg.d_in)
    check_readable(config.data)
    loaded_model = load_model(model_name, device, config.dtype, model_kwargs)
    model = loaded_model.model
    for sae, hook in zip(saes, hooks, strict=True):
        check_sae_fits(model, sae, hook)
    data = resolve_data(config.data, first, model.cfg.n_ctx)
    tokens = load_tokens(data, loaded_model.tokenizer, model.cfg.d_vocab, model.cfg.n_ctx)
    builds = []
    for sae_id, sae, hook, cfg in zip(ids, saes, hooks, configs, strict=True):
        sae_dir = Path(cfg.sae) if cfg.sae else None
        training = read_training_log(sae_dir) if sae_dir and sae_dir.is_dir() else None
        loaded = Loaded(
            model=model,
            tokenizer=loaded_model.tokenizer,
            model_name=loaded_model.name,
            sae=sae,
            hook=hook,
            tokens=tokens,
            data=data,
            training=training,
        )
        builds.append(SaeBuild(id=sae_id, loaded=loaded, config=cfg))
        log.info("SAE %s: %s, %d -> %d features", sae_id, hook, sae.cfg.d_in, sae.cfg.d_sae)
    log.info("model %s, %d SAEs, %d x %d tokens", loaded_model.name, len(builds), *tokens.shape)
    return builds


def build_objects(
    model: HookedTransformer,
    saes: Sequence[Any] | Mapping[str, Any],
    tokens: Any,
    config: BuildConfig,
    *,
    tokenizer: Any = None,
    model_name: str | None = None,
) -> Path:
    """``saesite.build(model, [sae, …] or {name: sae, …}, tokens)``: one site of several SAEs
    in memory; ids from the names, else from each SAE's hook and width."""
    names = list(saes) if isinstance(saes, Mapping) else None
    objects = list(saes.values()) if isinstance(saes, Mapping) else list(saes)
    if not objects:
        raise SaesiteError("no SAE given; expected a list or dict of SAEs")
    loaded = [
        load_objects(
            model, sae, tokens, hook=config.hook, tokenizer=tokenizer, model_name=model_name
        )
        for sae in objects
    ]
    if names is None:
        names = [f"{item.hook}-{item.sae.cfg.d_sae}" for item in loaded]
    ids = unique_ids([slug(n) for n in names])
    check_labels_of(config, ids, [item.sae for item in loaded])
    builds = [
        SaeBuild(id=sae_id, loaded=item, config=replace(config, hook=item.hook))
        for sae_id, item in zip(ids, loaded, strict=True)
    ]
    preflight_out(config)
    stats = compute_many(builds, config.stats, config.weights)
    return render_many(builds, write_many(builds, stats), cross_of(builds), config)


def compute_many(
    builds: Sequence[SaeBuild], stats: StatsConfig, weights: WeightStatsConfig
) -> list[FeatureStats]:
    """Stage 2 for several SAEs: one streaming pass of the model for all of them (each SAE
    reads its hook), then each SAE's weight statistics. Memory follows the single-SAE rule for
    one SAE as wide as all of them together."""
    from saesite.stats.multi_pass import run_multi_pass

    started = time.perf_counter()
    first = builds[0].loaded
    tokens = torch.as_tensor(first.tokens, dtype=torch.int64)
    total = sum(build.loaded.sae.cfg.d_sae for build in builds)
    check_stats_sizes(stats, *tokens.shape, total)
    bounded = bounded_batch(stats, tokens.shape[1], total)
    if bounded.batch_size != stats.batch_size:
        log.info(
            "%d SAEs, %d features in all: batches of %d sequences (the budget of one SAE of "
            "that width)",
            len(builds),
            total,
            bounded.batch_size,
        )
    result = run_multi_pass(
        first.model,
        [build.loaded.sae for build in builds],
        [build.loaded.hook for build in builds],
        tokens,
        bounded,
        special_ids=first.tokenizer.special_ids(),
    )
    for build, stats_of_sae in zip(builds, result, strict=True):
        complete(build.loaded, stats_of_sae, bounded, weights)
    log.info(
        "statistics of %d SAEs (one pass and weights) in %.1f s",
        len(builds),
        time.perf_counter() - started,
    )
    return result


def write_many(builds: Sequence[SaeBuild], stats: Sequence[FeatureStats]) -> list[Records]:
    """Stage 3: each SAE's records, exactly those of a build of it alone."""
    return [
        write_records(result, build.loaded, build.config)
        for build, result in zip(builds, stats, strict=True)
    ]


def cross_of(builds: Sequence[SaeBuild]) -> CrossRecords:
    """Cross-SAE links and comparisons, from the decoders."""
    return cross_records(
        [SaeDecoder(hook=build.loaded.hook, W_dec=build.loaded.sae.W_dec) for build in builds]
    )


def render_many(
    builds: Sequence[SaeBuild],
    records: Sequence[Records],
    cross: CrossRecords,
    config: BuildConfig,
    *,
    inputs: Sequence[str | Path] = (),
) -> Path:
    """Stage 4: one site with every SAE's pages, the switcher, links and comparisons."""
    from saesite.site.multi_site import SaeSite, write_multi_site

    sites = [
        SaeSite(id=build.id, site=rec.site, features=rec.features)
        for build, rec in zip(builds, records, strict=True)
    ]
    return write_multi_site(sites, cross, config.render, inputs=inputs)


def build_many(config: BuildConfig, sources: Sequence[tuple[str, int | None]]) -> Path:
    """``saesite build --sae A --sae B …``: one site for several SAEs. Returns its folder."""
    started = time.perf_counter()
    check_device(config.stats.device)
    preflight_out(config)
    builds = load_many(config, sources)
    stats = compute_many(builds, config.stats, config.weights)
    records = write_many(builds, stats)
    cross = cross_of(builds)
    inputs = [*build_inputs(config), *(path for path, _ in sources)]
    out = render_many(builds, records, cross, config, inputs=inputs)
    log.info("wrote %s (%d SAEs) in %.1f s", out, len(builds), time.perf_counter() - started)
    return out
