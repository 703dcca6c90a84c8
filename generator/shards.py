"""Builds split over token shards: one shard's state, and the merge of states into a site.

    saesite build … --shard 3/16 --state-out DIR    shard 3 of 0..15: its sequences' state
    saesite build … --shard 3/16 --feature-shard 1/4 --state-out DIR
                                                    … of the second quarter of the features
    saesite merge DIR… --out site                   every shard's state -> records -> site

A shard is a contiguous run of whole batches of the one-process pass (``shard_range``), so
every batch, and every activation, is the one a single process computes; the accumulators merge
exactly (``stats/keys.py``, ``stats/reduction.py``), in a tree fixed by shard position, so the
site's bytes equal the one-process build's whatever the number of shards or the order they
finish in. ``saesite merge`` loads the model, SAE and tokens again from the build config stored
in the states (the same paths must be readable where it runs) and checks they are the ones the
states were computed from. The weight statistics are computed once, at the merge
(``pipeline.complete``); then the usual stages write the records and the site.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from saesite.config import BuildConfig, DataConfig, RenderConfig, StatsConfig, WeightStatsConfig
from saesite.errors import SaesiteError
from saesite.pipeline import (
    Loaded,
    bounded_batch,
    build_inputs,
    complete,
    load_build,
    preflight_out,
    render,
    write_records,
)
from saesite.stats.feature_range import FeatureRange, feature_ranges, join_feature_stats
from saesite.stats.feature_stats import FeatureStats
from saesite.stats.pass_ import run_pass, shard_range
from saesite.stats.state import check_provenance, load_stats, provenance, read_header, save_stats

if TYPE_CHECKING:
    from saesite.site.feature_pages import PageRunner

log = logging.getLogger(__name__)


def parse_shard(text: str, option: str = "--shard") -> tuple[int, int]:
    """``"3/16"`` -> (3, 16): shard 3 of shards 0..15."""
    index, _, count = text.partition("/")
    try:
        shard, n_shards = int(index), int(count)
    except ValueError:
        shard, n_shards = -1, 0
    if n_shards < 1 or not 0 <= shard < n_shards:
        raise SaesiteError(f"{option} {text!r}; expected I/N with 0 <= I < N, e.g. 3/16")
    return shard, n_shards


@dataclass(frozen=True, kw_only=True)
class Inputs:
    """What ``pipeline.load`` gave, the pass's stats config, and their provenance."""

    loaded: Loaded
    stats: StatsConfig
    """The build's stats config with the batch size bounded for d_sae (the same everywhere)."""
    provenance: dict[str, Any]


def load_inputs(config: BuildConfig) -> Inputs:
    """Stage 1 of ``config`` (as ``saesite build`` runs it), and what the states record."""
    loaded = load_build(config)
    tokens = loaded.tokens
    stats = bounded_batch(config.stats, tokens.shape[1], loaded.sae.cfg.d_sae)
    build = config.to_dict()
    build["data"] = asdict(loaded.data)
    build["stats"] = {**build["stats"], "batch_size": stats.batch_size}
    prov = provenance(loaded.model_name, loaded.hook, loaded.sae, tokens, build)
    return Inputs(loaded=loaded, stats=stats, provenance=prov)


def feature_range_of(inputs: Inputs, feature_shard: tuple[int, int] | None) -> FeatureRange:
    """The features of feature shard ``(J, M)`` (all of them for None)."""
    d_sae = inputs.loaded.sae.cfg.d_sae
    if feature_shard is None:
        return FeatureRange.every(d_sae)
    index, count = feature_shard
    if count > d_sae:
        raise SaesiteError(
            f"--feature-shard {index}/{count}: the SAE has {d_sae} features; expected at most "
            f"{d_sae} feature shards"
        )
    return feature_ranges(d_sae, count)[index]


def compute_shard(
    inputs: Inputs, shard: int, n_shards: int, feature_shard: tuple[int, int] | None = None
) -> FeatureStats:
    """The pass over shard ``shard`` of ``n_shards`` (sequences from ``shard_range``), for the
    features of ``feature_shard`` (J, M), or all."""
    loaded = inputs.loaded
    tokens = torch.as_tensor(loaded.tokens, dtype=torch.int64)
    first, stop = shard_range(tokens.shape[0], inputs.stats.batch_size, shard, n_shards)
    features = feature_range_of(inputs, feature_shard)
    return run_pass(
        loaded.model,
        loaded.sae,
        tokens[first:stop],
        loaded.hook,
        inputs.stats,
        first,
        features,
        special_ids=loaded.tokenizer.special_ids(),
    )


def build_shard(
    config: BuildConfig,
    shard: int,
    n_shards: int,
    state_out: str | Path,
    feature_shard: tuple[int, int] | None = None,
) -> Path:
    """``saesite build --shard I/N [--feature-shard J/M] --state-out DIR``: one shard's state,
    written to DIR."""
    started = time.perf_counter()
    inputs = load_inputs(config)
    state = compute_shard(inputs, shard, n_shards, feature_shard)
    out = save_stats(state, state_out, inputs.provenance, config.to_dict())
    log.info(
        "shard %d/%d, features %d..%d: sequences %d..%d -> %s in %.1f s",
        shard,
        n_shards,
        state.features.start,
        state.features.stop - 1,
        state.seq_start,
        state.seq_start + state.n_seq - 1,
        out,
        time.perf_counter() - started,
    )
    return out


class TreeMerger:
    """Merges shard states in a binary tree fixed by shard index, each pair as soon as both
    halves have arrived: the tree does not depend on the finishing order, and memory holds the
    unmerged frontier only (often a few states, not all of them)."""

    def __init__(self, n_shards: int):
        self.sizes = [n_shards]
        while self.sizes[-1] > 1:
            self.sizes.append(-(-self.sizes[-1] // 2))
        self.waiting: dict[tuple[int, int], FeatureStats] = {}

    def add(self, index: int, state: FeatureStats, level: int = 0) -> None:
        while level + 1 < len(self.sizes):
            sibling = index ^ 1
            if sibling >= self.sizes[level]:  # the last node of an odd level moves up alone
                index, level = index // 2, level + 1
                continue
            other = self.waiting.pop((level, sibling), None)
            if other is None:
                self.waiting[(level, index)] = state
                return
            left, right = (other, state) if sibling < index else (state, other)
            left.merge(right)
            state, index, level = left, index // 2, level + 1
        self.waiting[(level, index)] = state

    def result(self) -> FeatureStats:
        top = len(self.sizes) - 1
        if list(self.waiting) != [(top, 0)]:
            raise ValueError(f"{len(self.waiting)} parts left unmerged; expected every shard")
        return self.waiting[(top, 0)]


def merge_tree(states: list[FeatureStats]) -> FeatureStats:
    """Merge shard states pairwise, in a tree fixed by their position in the dataset."""
    if not states:
        raise SaesiteError("no states to merge; expected at least one --state-out folder")
    merger = TreeMerger(len(states))
    for index, state in enumerate(sorted(states, key=lambda s: s.seq_start)):
        merger.add(index, state)
    return merger.result()


class GridMerger:
    """``TreeMerger`` per feature range; the ranges joined in feature order at the end."""

    def __init__(self, n_shards: int, ranges: list[FeatureRange]):
        self.mergers = {r: TreeMerger(n_shards) for r in ranges}

    def add(self, index: int, state: FeatureStats) -> None:
        self.mergers[state.features].add(index, state)

    def result(self) -> FeatureStats:
        parts = [merger.result() for merger in self.mergers.values()]
        return parts[0] if len(parts) == 1 else join_feature_stats(parts)


def check_coverage(ranges: list[tuple[int, int, str]], n_seq: int) -> None:
    """Refuse states that leave out, or repeat, some of the dataset's sequences."""
    cursor = 0
    for first, stop, source in sorted(ranges):
        if first != cursor:
            what = "overlaps the previous state" if first < cursor else f"leaves out {cursor}"
            raise SaesiteError(
                f"{source}: sequences {first}..{stop - 1} {what}; expected shards covering "
                f"0..{n_seq - 1} once"
            )
        cursor = stop
    if cursor != n_seq:
        raise SaesiteError(
            f"states cover sequences 0..{cursor - 1} of {n_seq}; expected every shard's state"
        )


def check_feature_tiling(spans: list[tuple[int, int, int]]) -> None:
    """Refuse feature shards that leave out, or repeat, some of the SAE's features."""
    cursor, d_sae = 0, spans[0][2]
    for first, stop, width in sorted(spans):
        if width != d_sae or first != cursor:
            raise SaesiteError(
                f"states of features {first}..{stop - 1} do not follow feature {cursor - 1}; "
                f"expected feature shards covering 0..{d_sae - 1} once"
            )
        cursor = stop
    if cursor != d_sae:
        raise SaesiteError(
            f"states cover features 0..{cursor - 1} of {d_sae}; expected every feature shard"
        )


def config_from_dict(build: dict, render: RenderConfig) -> BuildConfig:
    """The BuildConfig stored in a state (``BuildConfig.to_dict``), with this command's render
    settings."""
    nested = {"data": DataConfig, "stats": StatsConfig, "weights": WeightStatsConfig}
    values = {
        f.name: nested[f.name](**build[f.name]) if f.name in nested else build[f.name]
        for f in fields(BuildConfig)
        if f.name != "render" and f.name in build
    }
    return BuildConfig(**values, render=render)


def write_from_state(
    config: BuildConfig, inputs: Inputs, state: FeatureStats, pages: PageRunner | None = None
) -> Path:
    """Stages 2 (its end), 3 and 4 on merged statistics: weights, records, site (the feature
    pages by ``pages``: default local processes)."""
    complete(inputs.loaded, state, inputs.stats, config.weights)
    records = write_records(state, inputs.loaded, config)
    return render(records, config.render, inputs=build_inputs(config), pages=pages)


def merge_states(dirs: list[str | Path], render_cfg: RenderConfig) -> Path:
    """``saesite merge DIR… --out site``: every shard's state -> one site."""
    started = time.perf_counter()
    headers = [read_header(d) for d in dirs]
    first = headers[0]
    for directory, header in zip(dirs[1:], headers[1:], strict=True):
        check_provenance(header["provenance"], first["provenance"], str(directory))
        if header["build"] != first["build"]:
            raise SaesiteError(
                f"{directory}: state written for a different build config; expected the one "
                f"of {dirs[0]}"
            )
    n_seq = first["provenance"]["tokens"]["n_seq"]
    by_features: dict[tuple[int, int, int], list[tuple[int, int, str]]] = {}
    for directory, header in zip(dirs, headers):
        span = header["range"]
        key = (span["first_feature"], span["stop_feature"], span["d_sae"])
        by_features.setdefault(key, []).append(
            (span["first_seq"], span["stop_seq"], str(directory))
        )
    check_feature_tiling(list(by_features))
    for ranges in by_features.values():
        check_coverage(ranges, n_seq)
    config = config_from_dict(first["build"], render_cfg)
    preflight_out(config)
    inputs = load_inputs(config)
    states = [load_stats(d, inputs.provenance, inputs.stats.device)[0] for d in dirs]
    merge_started = time.perf_counter()
    groups: dict[FeatureRange, list[FeatureStats]] = {}
    for one in states:
        groups.setdefault(one.features, []).append(one)
    parts = [merge_tree(group) for group in groups.values()]
    state = parts[0] if len(parts) == 1 else join_feature_stats(parts)
    log.info("merged %d states in %.2f s", len(states), time.perf_counter() - merge_started)
    out = write_from_state(config, inputs, state)
    log.info("wrote %s in %.1f s", out, time.perf_counter() - started)
    return out
