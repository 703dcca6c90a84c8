"""GPT-2-scale (and Gemma-2-2b-like) builds against the floor, in one run.

    .venv/bin/python benchmarks/bench_scale.py                        # GPT-2 small, 24,576 feats
    .venv/bin/python benchmarks/bench_scale.py --n-layers 9 --n-tokens 4096 --d-sae 4096
    .venv/bin/python benchmarks/bench_scale.py --shape gemma --device cuda --dtype bfloat16

The model is built from a HookedTransformerConfig with random weights (no hub), the SAE is
random with encoder biases set so that each feature fires on ~``--l0 / d_sae`` of tokens, the
tokens are random. Stages, each timed alone on the same batches:
  floor        the model forward to the hook + the SAE encoder matmul (with ReLU)
  pass         ``run_pass`` without and with the CE losses (``--ce-tokens``)
  weights      ``weight_stats``, and its floor: the products it needs, chunked as it does (the
               logit product LN(W_dec (@ W_out)) @ W_U, the lower triangle of the decoder cosines
               [d_sae, d_sae] for the neighbours, the cosines with the next MLP's W_in at
               residual hooks)
  build        ``build_site`` from files on disk, with and without CE losses (``--skip-build``:
               not run), with the site's size per feature
On CUDA each time ends with a synchronisation. Peak memory: RSS (CPU) or allocated (CUDA) of
this process; ``--build-peak`` / ``--peak-only`` also run each build alone in a child process
and print its peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

SHAPES = {
    "gpt2": dict(
        n_layers=12,
        d_model=768,
        n_heads=12,
        d_head=64,
        d_mlp=3072,
        n_ctx=1024,
        d_vocab=50257,
        act_fn="gelu_new",
        normalization_type="LN",
    ),
    "gemma": dict(  # Gemma-2-2b's widths; standard attention and LN keep the model simple
        n_layers=26,
        d_model=2304,
        n_heads=8,
        d_head=256,
        d_mlp=9216,
        n_ctx=1024,
        d_vocab=256000,
        act_fn="gelu_new",
        normalization_type="RMS",
    ),
}
DEFAULTS = {"gpt2": dict(layer=7, d_sae=24576), "gemma": dict(layer=12, d_sae=65536)}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


CPU_TIMES: dict[float, float] = {}
"""Wall seconds of a timed call -> CPU seconds of this process and its children then."""


def timed(device: str, fn, *args, **kwargs):
    """(wall seconds, result); the CPU seconds go to CPU_TIMES (steadier on a busy machine)."""
    sync(device)
    start, before = time.perf_counter(), os.times()
    out = fn(*args, **kwargs)
    sync(device)
    wall, after = time.perf_counter() - start, os.times()
    fields = ("user", "system", "children_user", "children_system")
    CPU_TIMES[wall] = sum(getattr(after, f) - getattr(before, f) for f in fields)
    return wall, out


def peak_memory_gib(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def make_inputs(args):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from saesite.sae.model import SAE, SaeConfig, init_sae_

    torch.manual_seed(0)
    shape = dict(SHAPES[args.shape], n_layers=args.n_layers or SHAPES[args.shape]["n_layers"])
    dtype = getattr(torch, args.dtype)
    with torch.device(args.device):  # initialise on the device: no host copy of a large model
        cfg = HookedTransformerConfig(**shape, device=args.device, dtype=dtype)
        model = HookedTransformer(cfg).eval()
    hook = f"blocks.{args.layer}.hook_resid_pre"
    d_in = shape["d_model"]
    sae = SAE(SaeConfig(d_in=d_in, d_sae=args.d_sae, hook_name=hook, model_name=args.shape))
    init_sae_(sae, torch.Generator().manual_seed(0))
    sae.to(args.device)
    seq_len = args.seq_len
    tokens = torch.randint(0, args.token_vocab, (args.n_tokens // seq_len, seq_len))
    with torch.no_grad():  # calibrate biases: feature f fires on ~l0/d_sae of tokens
        x = model(tokens[:8].to(args.device), stop_at_layer=args.layer).reshape(-1, d_in)
        pre = x.float() @ sae.W_enc
        sae.b_enc.copy_(-torch.quantile(pre, 1 - args.l0 / args.d_sae, dim=0))
    return model, sae, tokens, hook


def floor(model, sae, tokens, layer: int, batch_size: int, device: str) -> None:
    """Forward to the hook's block input + encoder matmul with ReLU, nothing else."""
    with torch.no_grad():
        for start in range(0, tokens.shape[0], batch_size):
            batch = tokens[start : start + batch_size].to(device, non_blocking=True)
            x = model(batch, stop_at_layer=layer).reshape(-1, sae.cfg.d_in).float()
            torch.addmm(sae.b_enc, x, sae.W_enc).relu_()


def floor_chunks(model, sae):
    """The feature chunks weight_stats uses (one [chunk, d_vocab] buffer)."""
    from saesite.config import WeightStatsConfig
    from saesite.stats.weights import _chunks

    width = max(sae.cfg.d_sae, model.cfg.d_vocab)
    return _chunks(sae.cfg.d_sae, width, WeightStatsConfig().chunk_size)


def logit_product(model, sae, hook: str) -> None:
    """The product logit effects need: LN(W_dec (@ W_out)) @ W_U, chunked as weight_stats does."""
    from saesite.stats.weights import final_norm, in_residual, output_map

    W_U, W_dec = model.W_U.float(), sae.W_dec.float()
    to_resid = None if in_residual(hook) else output_map(model, hook).float()
    chunks = floor_chunks(model, sae)
    buffer = W_U.new_empty(chunks[0].stop - chunks[0].start, W_U.shape[1])
    with torch.no_grad():
        for rows in chunks:
            w = W_dec[rows] if to_resid is None else W_dec[rows] @ to_resid
            torch.matmul(final_norm(model, w), W_U, out=buffer[: w.shape[0]])


def cosine_products(model, sae, hook: str) -> None:
    """The other products, chunked as weight_stats does: the decoder cosines the neighbours need
    (the symmetric [d_sae, d_sae] matrix's lower triangle: chunk [s, e) times rows before e)
    and, at residual hooks, the cosines with the next MLP's W_in."""
    import torch.nn.functional as F

    from saesite.stats.weights import next_mlp_inputs

    unit = F.normalize(sae.W_dec.float(), dim=1)
    W_in = next_mlp_inputs(model, hook)
    W_in = None if W_in is None else F.normalize(W_in.float(), dim=0)
    with torch.no_grad():
        for rows in floor_chunks(model, sae):
            unit[rows] @ unit[: rows.stop].T
            if W_in is not None:
                unit[rows] @ W_in


def time_weights(model, sae, hook: str, device: str) -> dict:
    """weight_stats and its floor (the products it needs), timed in the same run."""
    from saesite.config import WeightStatsConfig
    from saesite.stats.weights import weight_stats

    logits, _ = timed(device, logit_product, model, sae, hook)
    cosines, _ = timed(device, cosine_products, model, sae, hook)
    wall, _ = timed(device, weight_stats, model, sae, hook, WeightStatsConfig())
    cpu = {key: CPU_TIMES[value] for key, value in (("l", logits), ("c", cosines), ("w", wall))}
    floor_wall = logits + cosines
    CPU_TIMES[floor_wall] = cpu["l"] + cpu["c"]
    return {
        "weights_logits": logits,
        "weights_floor": floor_wall,
        "weights": wall,
        "weights_vs_floor": cpu["w"] / (cpu["l"] + cpu["c"]),
        "weights_vs_logits": cpu["w"] / cpu["l"],
    }


def finalized_pass(model, sae, tokens, hook: str, cfg):
    from saesite.stats.pass_ import run_pass

    return run_pass(model, sae, tokens, hook, cfg).finalize()


def budget(args) -> dict:
    """``ce_tokens`` where saesite has it (so the same script times older commits too)."""
    from saesite.config import StatsConfig

    fields = StatsConfig.__dataclass_fields__
    return {"ce_tokens": args.ce_tokens} if "ce_tokens" in fields else {}


def site_size(site: Path) -> tuple[int, int]:
    files = [p for p in site.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def build_config(folder: Path, run: str, args, ce: bool):
    from saesite.config import BuildConfig, DataConfig, RenderConfig, StatsConfig

    return BuildConfig(
        model=str(folder / "model"),
        sae=str(folder / "sae"),
        data=DataConfig(dataset=str(folder / "tokens.npy")),
        stats=StatsConfig(
            batch_size=args.batch_size,
            ce_loss=ce,
            device=args.device,
            **budget(args),
        ),
        render=RenderConfig(out=str(folder / run)),
    )


def build(folder: Path, run: str, args, ce: bool) -> tuple[float, int, int]:
    from saesite.pipeline import build_site

    wall, site = timed(args.device, build_site, build_config(folder, run, args, ce))
    return wall, *site_size(site)


CHILD_BUILD = """
import json, pickle, resource, sys
from saesite.pipeline import build_site
build_site(pickle.loads(open(sys.argv[1], "rb").read()))
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({
    "vm_hwm_kib": int(status["VmHWM"].split()[0]),
    "workers_max_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
}))
"""


def build_peak(folder: Path, run: str, args, ce: bool) -> dict:
    """Peak RSS of ``build_site`` alone: run in a fresh child process, its VmHWM (GiB), and the
    largest RSS of its forked record/page workers (shared pages counted in both)."""
    config = folder / f"{run}.pkl"
    config.write_bytes(pickle.dumps(build_config(folder, run, args, ce)))
    done = subprocess.run(
        [sys.executable, "-c", CHILD_BUILD, str(config)],
        check=True,
        capture_output=True,
        text=True,
    )
    peak = json.loads(done.stdout.strip().splitlines()[-1])
    return {"build": peak["vm_hwm_kib"] / 2**20, "workers": peak["workers_max_kib"] / 2**20}


def save_inputs(model, sae, tokens, folder: Path) -> None:
    from saesite.lm.model import DEMO_MODEL, save_model
    from saesite.sae.model import save_sae

    save_model(model, DEMO_MODEL / "tokenizer.json", folder / "model", dtype=torch.float32)
    save_sae(sae, folder / "sae")
    np.save(folder / "tokens.npy", tokens.numpy())


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="gpt2")
    parser.add_argument("--n-layers", type=int, help="fewer layers than the shape's (quick runs)")
    parser.add_argument("--layer", type=int, help="hook blocks.LAYER.hook_resid_pre")
    parser.add_argument("--d-sae", type=int)
    parser.add_argument("--n-tokens", type=int, default=32768)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--ce-tokens", type=int, default=4096)
    parser.add_argument("--l0", type=float, default=40.0)
    parser.add_argument("--token-vocab", type=int, default=4096, help="ids drawn below this")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--threads", type=int, help="torch threads (default: saesite's choice)")
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--skip-weights", action="store_true")
    parser.add_argument(
        "--build-peak",
        action="store_true",
        help="also run build_site alone in a child process (with and without CE): its peak RSS",
    )
    parser.add_argument(
        "--peak-only", action="store_true", help="only the child builds' peak RSS (no timings)"
    )
    parser.add_argument("--tmp", help="folder to build the sites in")
    parser.add_argument(
        "--keep-site", metavar="DIR", help="copy the site built without CE losses to DIR (new)"
    )
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument(
        "--check-args", action="store_true", help="check the arguments and exit (gpu.sh dry run)"
    )
    args = parser.parse_args(argv)
    for key, value in DEFAULTS[args.shape].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    n_layers = args.n_layers or SHAPES[args.shape]["n_layers"]
    if not 0 <= args.layer < n_layers:
        parser.error(f"--layer {args.layer} is outside the model's {n_layers} layers")
    if args.n_tokens < args.seq_len:
        parser.error(f"--n-tokens {args.n_tokens} is less than one sequence of {args.seq_len}")
    if args.device.startswith("cuda") and not torch.cuda.is_available() and not args.check_args:
        parser.error(f"--device {args.device}: no CUDA device here")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.check_args:
        print(f"arguments ok: {args.shape}, {args.d_sae} features, {args.device}, {args.dtype}")
        return {}
    from saesite.config import StatsConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    elif args.device == "cpu":
        from saesite.threads import use_available_cpus

        use_available_cpus()
    model, sae, tokens, hook = make_inputs(args)
    n = tokens.numel()
    if args.device.startswith("cuda"):
        tokens = tokens.pin_memory()
    print(
        f"{args.shape}: {model.cfg.n_layers} layers, d_model {model.cfg.d_model}, "
        f"d_vocab {model.cfg.d_vocab}, {args.dtype}; SAE {args.d_sae} on {hook}; "
        f"{n} tokens ({tokens.shape[0]} x {tokens.shape[1]}), batch {args.batch_size}; "
        f"{args.device}, {torch.get_num_threads()} threads; load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    out: dict = {"shape": args.shape, "n_tokens": n, "d_sae": args.d_sae, "device": args.device}
    if args.peak_only:
        out.update(peaks(model, sae, tokens, args))
        return finish(out, args)
    floor(model, sae, tokens[: args.batch_size], args.layer, args.batch_size, args.device)
    out["floor"], _ = timed(
        args.device, floor, model, sae, tokens, args.layer, args.batch_size, args.device
    )
    print(f"{'stage':45s} {'seconds':>8s} {'vs floor':>8s} {'tokens/s':>9s} {'CPU s':>8s} ratio")
    rows: list[tuple[str, float]] = []

    def row(label: str, wall: float) -> None:
        cpu, floor_cpu = CPU_TIMES[wall], CPU_TIMES[out["floor"]]
        rows.append((label, wall))
        print(
            f"{label:45s} {wall:8.2f} {wall / out['floor']:8.2f} {n / wall:9.0f} "
            f"{cpu:8.2f} {cpu / floor_cpu:5.2f}",
            flush=True,
        )

    row("floor: forward to the hook + encoder matmul", out["floor"])
    for ce in (False, True):
        cfg = StatsConfig(
            batch_size=args.batch_size, ce_loss=ce, device=args.device, **budget(args)
        )
        wall, result = timed(args.device, finalized_pass, model, sae, tokens, hook, cfg)
        key = "pass_ce" if ce else "pass"
        out[key] = wall
        label = f"pass with CE losses ({args.ce_tokens} tokens)" if ce else "pass without CE"
        row(label, wall)
    m = result.metrics
    print(
        f"  CE recovered {m['ce_loss_recovered']:.4f} "
        f"± {m.get('ce_loss_recovered_se') or math.nan:.4f} "
        f"over {m.get('ce_loss_tokens')} predictions; l0 {m['l0']:.1f}",
        flush=True,
    )
    if not args.skip_weights:
        out.update(time_weights(model, sae, hook, args.device))
        row("weights floor: logit product LN(W_dec) @ W_U", out["weights_logits"])
        row("  + decoder (and W_in) cosine products", out["weights_floor"])
        row("weight statistics", out["weights"])
        print(
            f"  weight statistics / floor {out['weights_vs_floor']:.2f} (CPU s), "
            f"/ logit product alone {out['weights_vs_logits']:.2f}",
            flush=True,
        )
    if not args.skip_build:
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            folder = Path(tmp)
            save_inputs(model, sae, tokens, folder)
            for ce in (True, False):
                wall, n_files, size = build(folder, "ce" if ce else "no-ce", args, ce)
                out["build_ce" if ce else "build"] = wall
                row(f"whole build {'with' if ce else 'without'} CE", wall)
            out["files"], out["bytes"] = n_files, size
            if args.keep_site:
                shutil.copytree(folder / "no-ce", args.keep_site)
    if args.build_peak:
        out.update(peaks(model, sae, tokens, args))
    out["peak_gib"] = peak_memory_gib(args.device)
    if "bytes" in out:
        kb = out["bytes"] / args.d_sae / 1024
        print(f"site: {out['files']} files, {out['bytes'] / 2**20:.1f} MiB, {kb:.1f} KB/feature")
    memory = "peak allocated" if args.device.startswith("cuda") else "peak RSS"
    print(f"{memory} (this process): {out['peak_gib']:.2f} GiB; load {os.getloadavg()[0]:.1f}")
    return finish(out, args)


def peaks(model, sae, tokens, args) -> dict:
    """Each build alone in a fresh child process: its peak RSS (VmHWM)."""
    out = {}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        folder = Path(tmp)
        save_inputs(model, sae, tokens, folder)
        for ce in (True, False):
            peak = build_peak(folder, "ce" if ce else "no-ce", args, ce)
            key = "peak_build_ce_gib" if ce else "peak_build_gib"
            out[key], out[key.replace("build", "workers")] = peak["build"], peak["workers"]
            print(
                f"build alone {'with' if ce else 'without'} CE, batch {args.batch_size}: "
                f"peak RSS {peak['build']:.2f} GiB (largest worker {peak['workers']:.2f} GiB); "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    return out


def finish(out: dict, args) -> dict:
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
