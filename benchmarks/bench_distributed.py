"""Sharded builds: Ray's overhead against one process, and state size and merge time by d_sae.

    .venv/bin/python benchmarks/bench_distributed.py overhead --d-sae 16384 --n-tokens 131072
    .venv/bin/python benchmarks/bench_distributed.py states --d-sae 2048 16384 65536
    .venv/bin/python benchmarks/bench_distributed.py pages --site SITE

overhead: in one run, on the random model / SAE / tokens of ``bench_pass.py``, the one-process
  build (``build_site``) and a 2-shard local Ray build (``ray_build``, Ray's start-up and
  shut-down included), in alternating order; wall time of each, their ratio, and whether the two
  sites are byte-identical. The machine's 1-minute load average is printed before each build
  (other processes share its cores).
states: per d_sae, two token shards' states computed (the pass's time per shard), packed in the
  state file format (``stats/state.py``), then unpacked and merged: bytes per shard state, pack /
  unpack time, the time of the merge itself (the tree merge of the accumulators, which the
  driver does), and of each accumulator's part of it.
pages: a built site's pages re-rendered (``saesite render``'s path) by 1 and 2 local processes
  and by Ray tasks on a local 2-CPU instance (started beforehand, not timed): the renderer's own
  timings of the records-and-JSON step (on the driver) and of the feature pages.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pass import make_inputs, peak_rss_gib, save_inputs  # noqa: E402


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def config_for(folder: Path, out: Path, ce_loss: bool):
    from saesite.config import BuildConfig, DataConfig, RenderConfig, StatsConfig

    return BuildConfig(
        model=str(folder / "model"),
        sae=str(folder / "sae"),
        data=DataConfig(dataset=str(folder / "tokens.npy")),
        stats=StatsConfig(ce_loss=ce_loss),
        render=RenderConfig(out=str(out)),
    )


def overhead(args: argparse.Namespace) -> None:
    from saesite.pipeline import build_site
    from saesite.ray_build import ray_build

    folder = Path(tempfile.mkdtemp(prefix="bench-dist-", dir=args.tmp))
    save_inputs(*make_inputs(args.d_sae, args.n_tokens, 40.0), folder)
    print(f"{args.d_sae} features, {args.n_tokens} tokens, CE loss {not args.no_ce_loss}")
    times: dict[str, list[float]] = {"one": [], "ray": []}
    sites = {}
    for run in range(args.repeat):
        order = ("one", "ray") if run % 2 == 0 else ("ray", "one")
        for kind in order:
            out = folder / f"{kind}-{run}" / "site"
            config = config_for(folder, out, not args.no_ce_loss)
            load = os.getloadavg()[0]
            start = time.perf_counter()
            if kind == "one":
                build_site(config)
            else:
                ray_build(config, address=None, n_shards=2)
            wall = time.perf_counter() - start
            times[kind].append(wall)
            sites[kind] = out
            print(f"  run {run} {kind:>3}: {wall:6.1f} s  (load average before: {load:.1f})")
    one, ray = min(times["one"]), min(times["ray"])
    same = tree_digest(sites["one"]) == tree_digest(sites["ray"])
    print(f"fastest: one process {one:.1f} s, Ray 2 shards {ray:.1f} s, ratio {ray / one:.2f}")
    print(f"byte-identical sites: {same}; peak RSS of this process {peak_rss_gib():.2f} GiB")


def states(args: argparse.Namespace) -> None:
    from saesite.config import BuildConfig, StatsConfig
    from saesite.pipeline import bounded_batch
    from saesite.shards import merge_tree
    from saesite.stats.pass_ import run_pass, shard_range
    from saesite.stats.state import pack_stats, provenance, unpack_stats

    print(f"load average before: {os.getloadavg()[0]:.1f}")
    print("d_sae   tokens  state/shard   pass    pack    unpack  merge   (2 shards; per shard)")
    for d_sae in args.d_sae:
        model, sae, tokens = make_inputs(d_sae, args.n_tokens, 40.0)
        cfg = bounded_batch(StatsConfig(ce_loss=False), tokens.shape[1], d_sae)
        build = BuildConfig(stats=cfg).to_dict()
        prov = provenance("bench", "blocks.0.mlp.hook_post", sae, tokens, build)
        packed, pack_s, pass_s = [], 0.0, 0.0
        for shard in range(2):
            first, stop = shard_range(tokens.shape[0], cfg.batch_size, shard, 2)
            start = time.perf_counter()
            state = run_pass(model, sae, tokens[first:stop], "blocks.0.mlp.hook_post", cfg, first)
            pass_s += time.perf_counter() - start
            start = time.perf_counter()
            packed.append(pack_stats(state, prov, build))
            pack_s += time.perf_counter() - start
            del state
        start = time.perf_counter()
        loaded = [unpack_stats(h, b, prov, "bench") for h, b in packed]
        unpack_s = time.perf_counter() - start
        parts = merge_parts(loaded)
        start = time.perf_counter()
        merge_tree(loaded)
        merge_s = time.perf_counter() - start
        size = sum(len(b) for _, b in packed) / 2
        print(
            f"{d_sae:>6} {args.n_tokens:>8} {size / 2**20:9.1f} MiB {pass_s / 2:6.1f} s "
            f"{pack_s / 2:6.2f} s {unpack_s / 2:6.2f} s {merge_s:6.2f} s   "
            f"(load {os.getloadavg()[0]:.1f})"
        )
        print("        merge by part: " + ", ".join(f"{k} {v:.2f} s" for k, v in parts.items()))
        del packed, loaded, model, sae
    print(f"peak RSS {peak_rss_gib():.2f} GiB")


def merge_parts(states: list) -> dict[str, float]:
    """Seconds each accumulator's merge takes, on copies of two states (the state's own
    merge then runs on the originals)."""
    import copy

    mine, theirs = copy.deepcopy(states[0]), states[1]
    seconds = {}
    pairs = [(type(a).__name__, a, b) for a, b in zip(mine.per_feature, theirs.per_feature)]
    pairs += [("reconstruction", mine.reconstruction, theirs.reconstruction)]
    pairs += [("losses", mine.losses, theirs.losses)]
    for name, a, b in pairs:
        start = time.perf_counter()
        a.merge(b)
        seconds[name.removesuffix("Accumulator")] = time.perf_counter() - start
    return seconds


class Timings(logging.Handler):
    """The renderer's own timings (its debug log): records and JSON, then feature pages."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def seconds(self, words: str) -> float:
        found = [re.search(r"in ([0-9.]+) s", line) for line in self.lines if words in line]
        return float(found[-1].group(1)) if found and found[-1] else float("nan")


def pages(args: argparse.Namespace) -> None:
    """Re-render a built site's pages: local processes (1 and 2) against Ray tasks."""
    import ray

    from saesite.ray_pages import RayPages
    from saesite.site.feature_pages import LocalPages
    from saesite.site.render import rerender_site

    source = Path(args.site)
    n = len(json.loads((source / "site.json").read_bytes())["features"])
    folder = Path(tempfile.mkdtemp(prefix="bench-pages-", dir=args.tmp))
    timings = Timings()
    logging.getLogger("saesite.site.render").addHandler(timings)
    logging.getLogger("saesite.site.render").setLevel(logging.DEBUG)
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    runners = {
        "local, 1 process": LocalPages(workers=1),
        "local, 2 processes": LocalPages(workers=2),
        "Ray, 2 CPUs": RayPages(ray, max_retries=3),
    }
    print(f"{n} features; load average before: {os.getloadavg()[0]:.1f}")
    print("runner               records+JSON   pages   ms/feature (pages)")
    digests = []
    for run in range(args.repeat):
        for name, runner in runners.items():
            out = folder / f"{run}-{name.split(',')[0]}"
            shutil.copytree(source, out)
            start = time.perf_counter()
            rerender_site(out, pages=runner)
            wall = time.perf_counter() - start
            intake, paged = timings.seconds("feature records and JSON"), timings.seconds("pages in")
            print(
                f"{name:<20} {intake:8.1f} s {paged:8.1f} s {1000 * paged / n:8.2f}"
                f"   (whole render {wall:.1f} s, load {os.getloadavg()[0]:.1f})"
            )
            digests.append(tree_digest(out))
            shutil.rmtree(out)
    ray.shutdown()
    print(f"byte-identical sites: {all(d == digests[0] for d in digests)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    o = sub.add_parser("overhead")
    o.add_argument("--d-sae", type=int, default=16384)
    o.add_argument("--n-tokens", type=int, default=131072)
    o.add_argument("--repeat", type=int, default=2)
    o.add_argument("--no-ce-loss", action="store_true")
    o.add_argument("--tmp", default=None, help="folder for inputs and sites (e.g. /dev/shm)")
    s = sub.add_parser("states")
    s.add_argument("--d-sae", type=int, nargs="+", default=[2048, 16384, 65536])
    s.add_argument("--n-tokens", type=int, default=16384)
    p = sub.add_parser("pages")
    p.add_argument("--site", required=True, help="a built site (e.g. one `overhead` wrote)")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--tmp", default=None, help="folder for the re-rendered copies")
    args = parser.parse_args()
    {"overhead": overhead, "states": states, "pages": pages}[args.what](args)


if __name__ == "__main__":
    main()
