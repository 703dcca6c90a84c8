"""Are the build's system tricks worth keeping? Each one against itself switched off, in one run.

    .venv/bin/python benchmarks/bench_tricks.py                 # GPT-2 widths, 16,384 features
    .venv/bin/python benchmarks/bench_tricks.py --d-sae 4096 --n-tokens 4096 --repeats 2

The model has GPT-2 small's widths (d_model 768, d_mlp 3,072, 12 heads; ``--n-layers`` of them,
the hook at the last block's input) and random weights; the SAE is random with ~``--l0``
features firing per token. Measured, each as runs alternating on / off, median of each:

  heap       ``stats/heap.reuse_freed_memory`` around ``run_pass`` with the CE losses, GPT-2's
             50,257-token vocabulary (three [batch, pos, d_vocab] logits tensors per batch)
  gc_paused  ``records/build.gc_paused`` while ``FeatureRecords`` builds every feature's dict
  bucket     ``TokenDisplay.example`` with the shade bucket inlined (as it was) against the
             call of ``bucket()`` it makes now, over every example line of every feature

The records and pages use the demo tokenizer (a 4,096-token vocabulary): their cost does not
depend on the vocabulary. Ratios are off / on (above 1: the trick saves time).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_scale import SHAPES, make_inputs, save_inputs  # noqa: E402


def alternate(on, off, repeats: int) -> tuple[float, float]:
    """Median seconds of ``on()`` and ``off()``, run alternately ``repeats`` times each, after
    one untimed ``on()`` (caches, allocator and page cache warm for both)."""
    on()
    times: dict[str, list[float]] = {"on": [], "off": []}
    for run in range(repeats):
        order = (("on", on), ("off", off)) if run % 2 == 0 else (("off", off), ("on", on))
        for name, fn in order:
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return statistics.median(times["on"]), statistics.median(times["off"])


def report(name: str, on: float, off: float) -> None:
    print(f"{name:10s} on {on:8.2f} s   off {off:8.2f} s   off/on {off / on:5.2f}", flush=True)


def bench_heap(args) -> None:
    from saesite.config import StatsConfig
    from saesite.stats import heap
    from saesite.stats.pass_ import run_pass

    inputs = argparse.Namespace(**{**vars(args), "shape": "gpt2", "token_vocab": 50257})
    model, sae, tokens, hook = make_inputs(inputs)
    tokens = tokens[: args.heap_sequences]
    cfg = StatsConfig(batch_size=args.batch_size, ce_tokens=None)
    libc = heap._libc

    def off() -> None:
        heap._libc = lambda: None
        try:
            run_pass(model, sae, tokens, hook, cfg)
        finally:
            heap._libc = libc

    report("heap", *alternate(lambda: run_pass(model, sae, tokens, hook, cfg), off, args.repeats))


def prepared_records(args, folder: Path):
    from saesite.config import BuildConfig, DataConfig, RenderConfig, StatsConfig
    from saesite.pipeline import compute, load_build, write_records

    SHAPES["gpt2-demo-vocab"] = {**SHAPES["gpt2"], "d_vocab": 4096}
    inputs = argparse.Namespace(**{**vars(args), "shape": "gpt2-demo-vocab", "token_vocab": 4096})
    save_inputs(*make_inputs(inputs)[:3], folder)
    config = BuildConfig(
        model=str(folder / "model"),
        sae=str(folder / "sae"),
        data=DataConfig(dataset=str(folder / "tokens.npy")),
        stats=StatsConfig(batch_size=args.batch_size, ce_loss=False),
        render=RenderConfig(out=str(folder / "site")),
    )
    loaded = load_build(config)
    return config, write_records(compute(loaded, config.stats, config.weights), loaded, config)


def bench_gc_paused(records) -> None:
    from saesite.records import build

    def off() -> None:
        build.gc_paused, paused = contextlib.nullcontext, build.gc_paused
        try:
            list(records.features)
        finally:
            build.gc_paused = paused

    report("gc_paused", *alternate(lambda: list(records.features), off, ARGS.repeats))


def example_inlined(self, example, max_act: float, separator: str = ""):
    """``TokenDisplay.example`` as it was with the shade bucket inlined (the trick, removed at
    commit dc1af8c; same output)."""
    from markupsafe import Markup

    from saesite.site.token_markup import N_BUCKETS, _example_data, escape_text, format_value

    tokens, ids, acts = example["tokens"], example.get("token_ids") or None, example["acts"]
    own = example["pos"] - example["window_start"]
    scale = N_BUCKETS / max_act if max_act > 0 else 0.0
    cache, get = self._html, self._get
    parts = []
    for j, (text, act) in enumerate(zip(tokens, acts)):
        token_id = None if ids is None else ids[j]
        hit = cache.get(text if token_id is None else token_id) or get(token_id, text)
        if j != own and (not act > 0 or scale == 0.0):
            parts.append(hit[1])
            continue
        if act > 0 and scale != 0.0:  # bucket(act, max_act), inlined
            x = act * scale
            level = int(x)
            level = min(N_BUCKETS, max(1, level + (level < x)))
            cls = f" class=a{level}"
        else:
            cls = ""
        tag = "u" if j == own else "i"
        parts.append(f"<{tag}{cls}>{hit[0]}</{tag}>")
    sep = escape_text(separator)
    before = sep.join(parts[:own]).replace("</b><b>", "")
    after = sep.join(parts[own:]).replace("</b><b>", "")
    if own > 0 and sep:
        before += sep
    return Markup(
        f"<p{_example_data(example)}><var>{format_value(example['act'])}</var>"
        f"<span><span>{before}</span></span><span>{after}</span></p>"
    )


def bench_bucket(records) -> None:
    from saesite.site.token_markup import TokenDisplay
    from saesite.site.token_store import ExampleTokens

    # the examples' text, as the page workers attach it from the token store
    store = ExampleTokens(records.site["dataset"], records.site["token_bytes"].keys())
    features = [store.attach(feature) for feature in records.features]
    lines = [
        (example, feature["max_activation"])
        for feature in features
        for example in feature["top_examples"]
        + [e for q in feature["quantile_examples"] for e in q["examples"]]
    ]
    display = TokenDisplay(records.site.get("token_bytes"))
    for example, max_act in lines:  # the same cache warm for both
        display.example(example, max_act)
    same = all(display.example(e, m) == example_inlined(display, e, m) for e, m in lines)
    print(f"bucket: {len(lines):,} example lines, same HTML: {same}", flush=True)

    def on() -> None:
        for example, max_act in lines:
            example_inlined(display, example, max_act)

    def off() -> None:
        for example, max_act in lines:
            display.example(example, max_act)

    report("bucket", *alternate(on, off, ARGS.repeats))


def main() -> None:
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-layers", type=int, default=2)
    parser.add_argument("--d-sae", type=int, default=16384)
    parser.add_argument("--n-tokens", type=int, default=16384)
    parser.add_argument("--heap-sequences", type=int, default=32, help="sequences for heap")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--l0", type=float, default=40.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=["heap", "gc_paused", "bucket"])
    ARGS = args = parser.parse_args()
    args.layer, args.dtype, args.device = args.n_layers - 1, "float32", "cpu"
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(
        f"GPT-2 widths, {args.n_layers} layers, d_sae {args.d_sae}, {args.n_tokens:,} tokens, "
        f"{args.repeats} runs each",
        flush=True,
    )
    if "heap" in args.only:
        bench_heap(args)
    if {"gc_paused", "bucket"} & set(args.only):
        with tempfile.TemporaryDirectory() as tmp:
            _, records = prepared_records(args, Path(tmp))
            if "gc_paused" in args.only:
                bench_gc_paused(records)
            if "bucket" in args.only:
                bench_bucket(records)


ARGS: argparse.Namespace

if __name__ == "__main__":
    main()
