"""Sharded builds: Ray's overhead against one process, and state size and merge time by d_sae.

    .venv/bin/python benchmarks/bench_distributed.py overhead --d-sae 16384 --n-tokens 131072
    .venv/bin/python benchmarks/bench_distributed.py states --d-sae 2048 16384 65536

overhead: in one run, on the random model / SAE / tokens of ``bench_pass.py``, the one-process
  build (``build_site``) and a 2-shard local Ray build (``ray_build``, Ray's start-up and
  shut-down included), in alternating order; wall time of each, their ratio, and whether the two
  sites are byte-identical. The machine's 1-minute load average is printed before each build
  (other processes share its cores).
states: per d_sae, two token shards' states computed, packed in the state file format
  (``stats/state.py``), then unpacked and merged: bytes per shard state, pack / unpack time, and
  the time of the merge itself (the tree merge of the accumulators, which the driver does).
"""

from __future__ import annotations

import argparse
import hashlib
import os
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

    print("d_sae   tokens  state/shard   pack    unpack  merge   (2 shards)")
    for d_sae in args.d_sae:
        model, sae, tokens = make_inputs(d_sae, args.n_tokens, 40.0)
        cfg = bounded_batch(StatsConfig(ce_loss=False), tokens.shape[1], d_sae)
        build = BuildConfig(stats=cfg).to_dict()
        prov = provenance("bench", "blocks.0.mlp.hook_post", sae, tokens, build)
        packed, pack_s = [], 0.0
        for shard in range(2):
            first, stop = shard_range(tokens.shape[0], cfg.batch_size, shard, 2)
            state = run_pass(model, sae, tokens[first:stop], "blocks.0.mlp.hook_post", cfg, first)
            start = time.perf_counter()
            packed.append(pack_stats(state, prov, build))
            pack_s += time.perf_counter() - start
            del state
        start = time.perf_counter()
        loaded = [unpack_stats(h, b, prov, "bench") for h, b in packed]
        unpack_s = time.perf_counter() - start
        start = time.perf_counter()
        merge_tree(loaded)
        merge_s = time.perf_counter() - start
        size = sum(len(b) for _, b in packed) / 2
        print(
            f"{d_sae:>6} {args.n_tokens:>8} {size / 2**20:9.1f} MiB "
            f"{pack_s / 2:6.2f} s {unpack_s / 2:6.2f} s {merge_s:6.2f} s"
        )
        del packed, loaded, model, sae
    print(f"peak RSS {peak_rss_gib():.2f} GiB")


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
    args = parser.parse_args()
    if args.what == "overhead":
        overhead(args)
    else:
        states(args)


if __name__ == "__main__":
    main()
