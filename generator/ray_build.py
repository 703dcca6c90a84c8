"""``saesite build --ray [ADDRESS]``: the token shards as Ray tasks, merged into one site.

Each task loads the model, SAE and tokens from the build config (the paths must be readable on
every node: a shared file system or the same container image), computes one shard's state
(``shards.compute_shard``) and returns it in the state file format (``stats/state.py``: a JSON
header and safetensors bytes, no pickle of saesite objects). The driver gathers the states as
they finish (one progress bar: shards done / total), merges them in the tree fixed by shard
position, each pair as soon as both halves are back (``shards.TreeMerger``), so the finishing
order does not matter and memory holds only the unmerged frontier; then it computes the weight
statistics and the records here; the feature pages are Ray tasks over ranges of whole folders
(``ray_pages.RayPages``), whose files the driver writes into the build's temporary folder.
With ``n_feature_shards`` M > 1 each token shard is also split over M feature ranges (tasks of
one token shard × one feature range; ``stats/feature_range.py``): a task's accumulators are
those of its features only, the token shards of each range merge in their tree, and the ranges
are joined in feature order (``shards.GridMerger``).

Faults: a task whose worker dies (killed process, lost node) is run again by Ray, up to
``max_retries`` times; a shard's state, and a range's pages, do not depend on the attempt. A
shard or a page range that still fails ends the build with one line naming it, before the new
site is swapped in (the previous site stays as it was).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from saesite.config import BuildConfig, RenderConfig
from saesite.errors import SaesiteError
from saesite.pipeline import preflight_out
from saesite.ray_pages import RayPages
from saesite.shards import (
    GridMerger,
    config_from_dict,
    feature_range_of,
    load_inputs,
    write_from_state,
)
from saesite.stats.pass_ import shard_range
from saesite.stats.state import unpack_stats

log = logging.getLogger(__name__)

MAX_RETRIES = 3
"""Attempts after the first for a task whose worker died."""
LOCAL = "local"


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SaesiteError(
            "--ray needs the Ray package, which is not installed; expected "
            "`pip install 'saesite[ray]'`"
        ) from None
    return ray


def connect(address: str | None) -> bool:
    """Join the cluster at ``address`` (or start a local instance on 127.0.0.1). True if this
    call started or joined it (and so should shut it down)."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    if address in (None, LOCAL):
        ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)
    return True


def _shard_task(
    build: dict, shard: int, n_shards: int, feature_shard: tuple[int, int] | None = None
) -> tuple[dict, bytes]:
    """Body of the Ray task: one shard's state as (header, safetensors bytes)."""
    from saesite.shards import compute_shard
    from saesite.stats.state import pack_stats

    config = config_from_dict(build, RenderConfig())
    inputs = load_inputs(config)
    state = compute_shard(inputs, shard, n_shards, feature_shard)
    return pack_stats(state, inputs.provenance, build)


def default_shards(ray: Any) -> int:
    """One shard per CPU of the cluster (at least one)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def ray_build(
    config: BuildConfig,
    address: str | None = None,
    n_shards: int | None = None,
    max_retries: int = MAX_RETRIES,
    num_cpus_per_task: float = 1,
    n_feature_shards: int = 1,
) -> Path:
    """Build ``config``'s site with its token shards (× feature shards) computed as Ray tasks."""
    started = time.perf_counter()
    ray = require_ray()
    preflight_out(config)
    started_ray = connect(address)
    pending: dict = {}
    try:
        n_shards = n_shards or default_shards(ray)
        build = config.to_dict()
        task = ray.remote(max_retries=max_retries, num_cpus=num_cpus_per_task)(_shard_task)
        # Submitted first: the workers start and load their inputs while the driver loads its
        # own (it needs them for the provenance check and the pages), not after.
        pending = {
            task.options(name=f"saesite-shard-{shard}-features-{j}").remote(
                build, shard, n_shards, (j, n_feature_shards) if n_feature_shards > 1 else None
            ): (shard, j)
            for shard in range(n_shards)
            for j in range(n_feature_shards)
        }
        inputs = load_inputs(config)
        ranges = [
            feature_range_of(inputs, (j, n_feature_shards) if n_feature_shards > 1 else None)
            for j in range(n_feature_shards)
        ]
        merger = GridMerger(n_shards, ranges)
        with tqdm(total=len(pending), desc="shards", unit="shard", disable=None) as bar:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                shard, j = pending.pop(done[0])
                try:
                    header, blob = ray.get(done[0])
                except ray.exceptions.RayError as err:
                    first, stop = shard_range(
                        inputs.loaded.tokens.shape[0], inputs.stats.batch_size, shard, n_shards
                    )
                    lines = str(err).strip().splitlines()
                    cause = lines[-1] if lines else type(err).__name__
                    how = (
                        "raised"
                        if isinstance(err, ray.exceptions.RayTaskError)
                        else f"failed after {max_retries} retries"
                    )
                    features = ranges[j]
                    what = f"shard {shard}/{n_shards} (sequences {first}..{stop - 1}"
                    if n_feature_shards > 1:
                        what += f", features {features.start}..{features.stop - 1}"
                    raise SaesiteError(f"{what}) {how}: {cause}"[:400]) from None
                source = f"shard {shard}/{n_shards}"
                merger.add(shard, unpack_stats(header, blob, inputs.provenance, source))
                del header, blob
                bar.update(1)
        # The pages as Ray tasks over feature ranges, written here (ray_pages.py).
        pages = RayPages(ray, max_retries, num_cpus_per_task)
        out = write_from_state(config, inputs, merger.result(), pages=pages)
    except BaseException:
        for ref in pending:  # on a cluster that outlives this build, stop what is left
            ray.cancel(ref, force=True)
        raise
    finally:
        if started_ray:
            ray.shutdown()
    log.info(
        "wrote %s (%d token × %d feature shards on Ray) in %.1f s",
        out,
        n_shards,
        n_feature_shards,
        time.perf_counter() - started,
    )
    return out
