"""Statistics-pass speed: the floor, the pass (with and without CE loss), and the whole build.

    .venv/bin/python benchmarks/bench_pass.py --d-sae 2048 --n-tokens 32768
    .venv/bin/python benchmarks/bench_pass.py --d-sae 16384 --n-tokens 131072

One run, one random model / SAE / token set:
  (a) floor: the model forward up to the hook (stop_at_layer) + the SAE encoder matmul, alone;
  (b) run_pass, without and with the CE-loss metrics;
  (c) the whole build, ``generator.pipeline.build_site`` (model and SAE read from disk, every
      page and JSON file written), with and without the CE losses (SAEDashboard computes none).
Imports and model construction are timed apart ("start-up"). Peak RSS is the process's.
The SAE's encoder biases are set per feature so that each fires on ~``--l0 / d_sae`` of tokens.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

T0 = time.perf_counter()
import numpy as np  # noqa: E402
import torch  # noqa: E402

MODEL = dict(
    n_layers=1,
    d_model=128,
    n_heads=4,
    d_head=32,
    d_mlp=512,
    n_ctx=128,
    d_vocab=4096,
    act_fn="gelu",
    normalization_type="LN",
)
HOOK = "blocks.0.mlp.hook_post"
SAE_DASHBOARD_S = 71.6
"""SAEDashboard 0.7.2 on the 2,048-feature shape here: 20.8 s compute + 50.8 s HTML
(../shared/FACTS.md); it computes no CE losses."""


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def make_inputs(d_sae: int, n_tokens: int, l0: float, seed: int = 0):
    from generator.models import build_model
    from generator.sae import SAE, SaeConfig, init_sae_

    torch.manual_seed(seed)
    model = build_model(MODEL)
    seq_len = MODEL["n_ctx"]
    tokens = torch.randint(0, MODEL["d_vocab"], (n_tokens // seq_len, seq_len))
    sae = SAE(SaeConfig(d_in=MODEL["d_mlp"], d_sae=d_sae, hook_name=HOOK, model_name="bench"))
    init_sae_(sae, torch.Generator().manual_seed(seed))
    with torch.no_grad():  # calibrate biases: feature f fires on ~l0/d_sae of tokens
        _, cache = model.run_with_cache(tokens[:16], names_filter=HOOK, stop_at_layer=1)
        pre = cache[HOOK].reshape(-1, MODEL["d_mlp"]) @ sae.W_enc
        sae.b_enc.copy_(-torch.quantile(pre, 1 - l0 / d_sae, dim=0))
    return model, sae, tokens


def floor_seconds(model, sae, tokens, batch_size: int) -> float:
    """Forward to the hook + encoder matmul (with ReLU), nothing else."""
    captured = {}

    def capture(act, hook):
        captured["x"] = act

    start = time.perf_counter(), time.process_time()
    with torch.no_grad():
        for i in range(0, tokens.shape[0], batch_size):
            model.run_with_hooks(
                tokens[i : i + batch_size], stop_at_layer=1, fwd_hooks=[(HOOK, capture)]
            )
            x = captured["x"].reshape(-1, sae.cfg.d_in)
            torch.relu_(torch.addmm(sae.b_enc, x, sae.W_enc))
    return elapsed(start)


def elapsed(start: tuple[float, float]) -> tuple[float, float]:
    """(wall, CPU) seconds since ``start``; CPU time is steadier on a shared machine."""
    return time.perf_counter() - start[0], time.process_time() - start[1]


def build_seconds(
    model, sae, tokens, cfg_kwargs, tmp_base: str | None = None
) -> tuple[tuple[float, float], str]:
    from generator.config import BuildConfig, DataConfig, RenderConfig, StatsConfig
    from generator.models import DEMO_MODEL, save_model
    from generator.pipeline import build_site
    from generator.sae import save_sae

    with tempfile.TemporaryDirectory(dir=tmp_base) as tmp:
        tmp = Path(tmp)
        save_model(model, DEMO_MODEL / "tokenizer.json", tmp / "model", dtype=torch.float32)
        save_sae(sae, tmp / "sae")
        np.save(tmp / "tokens.npy", tokens.numpy())
        config = BuildConfig(
            model=str(tmp / "model"),
            sae=str(tmp / "sae"),
            data=DataConfig(dataset=str(tmp / "tokens.npy")),
            stats=StatsConfig(**cfg_kwargs),
            render=RenderConfig(out=str(tmp / "site")),
        )
        os.sync()  # start with no other build's pages waiting to be written back
        start = time.perf_counter(), time.process_time()
        site = build_site(config)
        seconds = elapsed(start)
        n_files = sum(1 for p in Path(site).rglob("*") if p.is_file())
        size = sum(p.stat().st_size for p in Path(site).rglob("*") if p.is_file())
        return seconds, f"build_site: {n_files} files, {size / 2**20:.1f} MiB"


class Report:
    """Rows of wall and CPU seconds with their ratio to the floor."""

    def __init__(self, n_tokens: int, floor: float, floor_cpu: float):
        self.n, self.floor, self.floor_cpu = n_tokens, floor, floor_cpu

    def row(self, label: str, wall: float, cpu: float, ratio: str) -> None:
        speed = self.n / wall / 1e3
        print(
            f"{label:37s} {wall:6.2f} s {speed:8.1f} {ratio:>3s} {wall / self.floor:5.2f} | "
            f"{cpu:6.2f} s {cpu / self.floor_cpu:5.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-sae", type=int, default=2048)
    parser.add_argument("--n-tokens", type=int, default=32768)
    parser.add_argument("--l0", type=float, default=40.0, help="target mean features per token")
    parser.add_argument("--batch-size", type=int, default=32, help="sequences per batch")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument(
        "--tmp", help="folder to build the sites in (default: the system's; /dev/shm: no disk)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="report the fastest of N runs")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformer_lens  # noqa: F401

    from generator.config import StatsConfig
    from generator.stats.pass_ import run_pass

    imported = time.perf_counter()
    model, sae, tokens = make_inputs(args.d_sae, args.n_tokens, args.l0)
    ready = time.perf_counter()
    n = tokens.numel()
    print(
        f"shape: d_sae {args.d_sae}, {n} tokens ({tokens.shape[0]} x {tokens.shape[1]}), "
        f"{torch.get_num_threads()} threads"
    )
    print(f"start-up: imports {imported - T0:.2f} s, model + SAE + tokens {ready - imported:.2f} s")
    floor_seconds(model, sae, tokens[: args.batch_size], args.batch_size)  # warm-up
    cfg = dict(batch_size=args.batch_size)
    floors, passes = [], {False: [], True: []}
    for _ in range(args.repeat):  # interleaved, the minimum of each: the machine is shared
        floors.append(floor_seconds(model, sae, tokens, args.batch_size))
        for ce in (False, True):
            start = time.perf_counter(), time.process_time()
            result = run_pass(model, sae, tokens, HOOK, StatsConfig(**cfg, ce_loss=ce))
            passes[ce].append(elapsed(start))
    a, a_cpu = min(w for w, _ in floors), min(c for _, c in floors)
    report = Report(n, a, a_cpu)
    print("                                       wall    k tok/s  ratio |    CPU  ratio")
    report.row("(a) floor (forward to hook + encode)", a, a_cpu, "")
    for ce in (False, True):
        label = "(b) run_pass, with CE loss" if ce else "(b) run_pass, without CE loss"
        wall, cpu = min(w for w, _ in passes[ce]), min(c for _, c in passes[ce])
        report.row(label, wall, cpu, "b/a")
    m = result.metrics
    print(
        f"    l0 {m['l0']:.1f}, dead {m['dead_count']}, explained variance "
        f"{m['explained_variance']:.3f}, CE recovered {m['ce_loss_recovered']}"
    )
    if not args.skip_build:
        for ce in (True, False):
            # writing thousands of files is the noisiest part (page-cache writeback): report
            # the fastest of --repeat builds, and the slowest beside it
            runs = [
                build_seconds(model, sae, tokens, {**cfg, "ce_loss": ce}, args.tmp)
                for _ in range(args.repeat)
            ]
            (c, c_cpu), what = min(runs, key=lambda run: run[0][0])
            slowest = max(wall for (wall, _), _ in runs)
            label = "(c) whole build" + ("" if ce else ", without CE loss")
            report.row(label, c, c_cpu, "c/a")
            what += f"; slowest of {len(runs)}: {slowest:.2f} s"
            if (args.d_sae, n) == (2048, 32768):  # the shape SAEDashboard was timed on
                what += (
                    f"; {SAE_DASHBOARD_S / c:.1f}x faster than SAEDashboard ({SAE_DASHBOARD_S} s)"
                    f" ({SAE_DASHBOARD_S / slowest:.1f}x for the slowest)"
                )
            print(f"    {what}")
    print(f"peak RSS: {peak_rss_gib():.2f} GiB")


if __name__ == "__main__":
    main()
