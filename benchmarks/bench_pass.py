"""Statistics-pass speed: the floor, the pass (with and without CE loss), and the whole build.

    .venv/bin/python benchmarks/bench_pass.py --d-sae 2048 --n-tokens 32768
    .venv/bin/python benchmarks/bench_pass.py --d-sae 16384 --n-tokens 131072

One run, one random model / SAE / token set:
  (a) floor: the model forward up to the hook (stop_at_layer) + the SAE encoder matmul, alone;
  (b) run_pass, without and with the CE-loss metrics;
  (c) the whole build, ``saesite.pipeline.build_site`` (model and SAE read from disk, every
      page and JSON file written), with and without the CE losses (SAEDashboard computes none).
Imports and model construction are timed apart ("start-up"). CPU time counts the build's worker
processes too; peak RSS is the main process's. After each build the same files are written again,
bytes known, into a fresh folder beside it: the disk's floor for that build at that moment.
The SAE's encoder biases are set per feature so that each fires on ~``--l0 / d_sae`` of tokens.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import tempfile
import time
from pathlib import Path

T0 = time.perf_counter()
import numpy as np  # noqa: E402
import torch  # noqa: E402

from saesite.config import TrainModelConfig  # noqa: E402
from saesite.train.model import model_config  # noqa: E402

MODEL = model_config(TrainModelConfig(out=""), d_vocab=4096)
"""The demo model's shape (saesite train-model's defaults), randomly initialised."""
HOOK = "blocks.0.mlp.hook_post"
SAE_DASHBOARD_S = 71.6
"""SAEDashboard 0.7.2 on the 2,048-feature shape here: 20.8 s compute + 50.8 s HTML
(../shared/FACTS.md); it computes no CE losses."""


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def make_inputs(d_sae: int, n_tokens: int, l0: float, seed: int = 0):
    from saesite.lm.model import build_model
    from saesite.sae.model import SAE, SaeConfig, init_sae_

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


def save_inputs(model, sae, tokens, folder: Path) -> None:
    from saesite.lm.model import DEMO_MODEL, save_model
    from saesite.sae.model import save_sae

    save_model(model, DEMO_MODEL / "tokenizer.json", folder / "model", dtype=torch.float32)
    save_sae(sae, folder / "sae")
    np.save(folder / "tokens.npy", tokens.numpy())


def build_seconds(folder: Path, run: str, cfg_kwargs) -> tuple[tuple[float, float], str, list]:
    """``((wall, CPU of this process and its workers), summary, stage log)`` of one build into
    ``folder/run``, followed by the write floor: the same files, bytes known, written by one
    process into a fresh folder beside it (what the disk costs at that moment, no rendering).

    Nothing is deleted until the benchmark ends: on this machine's ext4 (no journal), creating
    files near thousands of files deleted a minute before costs up to 40 times more kernel time
    (benchmarks/README.md), which would make each run slow down the next.
    """
    from saesite.config import BuildConfig, DataConfig, RenderConfig, StatsConfig
    from saesite.pipeline import build_site

    config = BuildConfig(
        model=str(folder / "model"),
        sae=str(folder / "sae"),
        data=DataConfig(dataset=str(folder / "tokens.npy")),
        stats=StatsConfig(**cfg_kwargs),
        render=RenderConfig(out=str(folder / run / "site")),
    )
    os.sync()  # start with no other build's pages waiting to be written back
    with StageLog() as stages:
        start = time.perf_counter(), os.times()
        site = build_site(config)
        wall, cpu = time.perf_counter() - start[0], cpu_seconds(start[1], os.times())
    files = [(p.relative_to(site), p.read_bytes()) for p in sorted(site.rglob("*")) if p.is_file()]
    floor = write_floor(files, folder / run / "write-floor")
    size = sum(len(data) for _, data in files)
    what = (
        f"{len(files)} files, {size / 2**20:.1f} MiB in {folder.parent}; "
        f"the same files written alone: {floor:.2f} s"
    )
    return (wall, cpu), what, stages.lines


def cpu_seconds(before: os.times_result, after: os.times_result) -> float:
    """CPU seconds of this process and of its finished children (record and page workers)."""
    fields = ("user", "system", "children_user", "children_system")
    return sum(getattr(after, f) - getattr(before, f) for f in fields)


def write_floor(files: list[tuple[Path, bytes]], out: Path) -> float:
    os.sync()
    start = time.perf_counter()
    for rel, data in files:
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return time.perf_counter() - start


class StageLog(logging.Handler):
    """Collects the build's own log of how long each stage took."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if " in " in message or " by " in message:
            self.lines.append(message)

    def __enter__(self) -> StageLog:
        self.logger = logging.getLogger("saesite")
        self.level = self.logger.level
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level)


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

    from saesite.config import StatsConfig
    from saesite.stats.pass_ import run_pass

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
            result = run_pass(model, sae, tokens, HOOK, StatsConfig(**cfg, ce_loss=ce)).finalize()
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
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            builds(Path(tmp), model, sae, tokens, cfg, args, report)
    print(f"peak RSS: {peak_rss_gib():.2f} GiB")


def builds(folder: Path, model, sae, tokens, cfg: dict, args, report: Report) -> None:
    """(c): ``--repeat`` builds with the CE losses and as many without."""
    save_inputs(model, sae, tokens, folder)
    n = tokens.numel()
    for ce in (True, False):
        # writing thousands of files is the noisiest part: report the fastest of --repeat
        # builds, and the slowest beside it
        runs = [
            build_seconds(folder, f"{'ce' if ce else 'no-ce'}-{k}", {**cfg, "ce_loss": ce})
            for k in range(args.repeat)
        ]
        (c, c_cpu), what, stages = min(runs, key=lambda run: run[0][0])
        slowest = max(wall for (wall, _), _, _ in runs)
        label = "(c) whole build" + ("" if ce else ", without CE loss")
        report.row(label, c, c_cpu, "c/a")
        what += f"; slowest of {len(runs)}: {slowest:.2f} s"
        if (args.d_sae, n) == (2048, 32768):  # the shape SAEDashboard was timed on
            what += (
                f"; {SAE_DASHBOARD_S / c:.1f}x faster than SAEDashboard ({SAE_DASHBOARD_S} s)"
                f" ({SAE_DASHBOARD_S / slowest:.1f}x for the slowest)"
            )
        print(f"    {what}")
        for line in stages:
            print(f"      {line}")


if __name__ == "__main__":
    main()
