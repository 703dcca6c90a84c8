"""Several SAEs in one build: one pass for all of them against one pass per SAE.

    .venv/bin/python benchmarks/bench_multi.py --n-tokens 32768

One run, one random 2-layer model (d_model 128, d_mlp 512, n_ctx 128, vocab 4,096) and three
random SAEs on two hooks: 2,048 and 4,096 features on ``blocks.0.hook_resid_post``, 2,048 on
``blocks.1.hook_resid_post``. Reported, same run, same tokens:
  (a) the statistics stage: ``compute`` once per SAE (three passes) against ``compute_many``
      (one), without and with CE losses, with the model forwards counted;
  (b) the whole build written to disk: one SAE alone (``build_site``) against the three in one
      site (``build_many``);
  (c) the peak RSS of this process (the three-SAE build runs last).
The SAEs' encoder biases are set so each feature fires on ~``--l0 / d_sae`` of tokens.
"""

from __future__ import annotations

import argparse
import logging
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

MODEL = dict(
    n_layers=2,
    d_model=128,
    n_heads=4,
    d_head=32,
    d_mlp=512,
    n_ctx=128,
    d_vocab=4096,
    act_fn="gelu",
    normalization_type="LN",
)
SAES = (("a2048", 2048, "blocks.0.hook_resid_post"), ("b4096", 4096, "blocks.0.hook_resid_post"))
SAES += (("c2048", 2048, "blocks.1.hook_resid_post"),)


def make_inputs(folder: Path, n_tokens: int, l0: float) -> None:
    from saesite.lm.model import DEMO_MODEL, build_model, save_model
    from saesite.sae.model import SAE, SaeConfig, init_sae_, save_sae

    torch.manual_seed(0)
    model = build_model(MODEL)
    seq_len = MODEL["n_ctx"]
    tokens = torch.randint(0, MODEL["d_vocab"], (n_tokens // seq_len, seq_len))
    for seed, (name, d_sae, hook) in enumerate(SAES):
        cfg = SaeConfig(d_in=MODEL["d_model"], d_sae=d_sae, hook_name=hook, model_name="bench")
        sae = init_sae_(SAE(cfg), generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens[:16], names_filter=hook)
            pre = cache[hook].reshape(-1, MODEL["d_model"]) @ sae.W_enc
            sae.b_enc.copy_(-torch.quantile(pre, 1 - l0 / d_sae, dim=0))
        save_sae(sae, folder / name)
    save_model(model, DEMO_MODEL / "tokenizer.json", folder / "model", dtype=torch.float32)
    np.save(folder / "tokens.npy", tokens.numpy())


def timed(fn, *args):
    start = time.perf_counter(), time.process_time()
    result = fn(*args)
    return result, time.perf_counter() - start[0], time.process_time() - start[1]


def counting(model) -> list[int]:
    calls: list[int] = []
    forward = model.forward

    def wrapped(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    model.forward = wrapped
    return calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-tokens", type=int, default=32768)
    parser.add_argument("--l0", type=float, default=32.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from saesite.config import BuildConfig, DataConfig, RenderConfig, StatsConfig
    from saesite.multi import build_many, compute_many, load_many
    from saesite.pipeline import build_site, compute

    folder = Path(tempfile.mkdtemp(prefix="bench-multi-"))
    make_inputs(folder, args.n_tokens, args.l0)
    sources = [(str(folder / name), None) for name, _, _ in SAES]
    for ce in (False, True):
        config = BuildConfig(
            model=str(folder / "model"),
            data=DataConfig(dataset=str(folder / "tokens.npy")),
            stats=StatsConfig(ce_loss=ce),
            render=RenderConfig(out=str(folder / f"site-{ce}")),
        )
        builds = load_many(config, sources)
        calls = counting(builds[0].loaded.model)
        seconds = [0.0, 0.0]
        for build in builds:
            _, wall, cpu = timed(compute, build.loaded, config.stats, config.weights)
            seconds = [seconds[0] + wall, seconds[1] + cpu]
        separate = len(calls)
        calls.clear()
        _, wall, cpu = timed(compute_many, builds, config.stats, config.weights)
        print(
            f"CE {'on ' if ce else 'off'}: three passes {seconds[0]:.1f} s wall "
            f"({seconds[1]:.1f} s CPU), {separate} forwards; one pass {wall:.1f} s "
            f"({cpu:.1f} s CPU), {len(calls)} forwards; ratio {seconds[0] / wall:.2f}x wall, "
            f"{seconds[1] / cpu:.2f}x CPU"
        )
    config = BuildConfig(
        model=str(folder / "model"),
        sae=sources[0][0],
        data=DataConfig(dataset=str(folder / "tokens.npy")),
        render=RenderConfig(out=str(folder / "one")),
    )
    _, one_wall, one_cpu = timed(build_site, config)
    rss_one = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    config = BuildConfig(**{**config.__dict__, "render": RenderConfig(out=str(folder / "three"))})
    _, three_wall, three_cpu = timed(build_many, config, sources)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"whole build: 1 SAE (2,048) {one_wall:.1f} s ({one_cpu:.1f} s CPU), peak RSS "
        f"{rss_one:.2f} GiB; 3 SAEs (8,192 features) {three_wall:.1f} s ({three_cpu:.1f} s CPU), "
        f"peak RSS {rss:.2f} GiB; ratio {three_wall / one_wall:.2f}x wall; files in {folder}"
    )


if __name__ == "__main__":
    main()
