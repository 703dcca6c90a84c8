"""SAE quality on the bundled demo model: standard vs standard + resampling vs TopK.

Trains each variant with `saesite.train.sae.train_sae` on the model's own training split (the
Python stdlib sources, packed as `saesite train-sae` packs them), over the same token budget,
then measures on the held-out demo tokens (`demo_tokens.npy`, never trained on):

    L0                  mean number of features firing per token
    explained variance  1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2
    CE loss recovered   (zero - spliced) / (zero - clean), mean next-token loss with the hook's
                        activation replaced by the SAE's reconstruction (spliced) or by zeros
    dead fraction       features that never fire on the demo tokens

    .venv/bin/python benchmarks/sae_quality.py                      # the three variants
    .venv/bin/python benchmarks/sae_quality.py --variants resample --set l1=4 --set steps=2000

Writes each SAE to benchmarks/out/sae_quality/<variant>/ and a results.json beside them.
Runs one variant at a time (the machine is shared); wall times are printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch

from saesite.config import TrainSaeConfig
from saesite.lm.activations import sample_activations
from saesite.lm.model import DEMO_MODEL, DEMO_TOKENS, load_model
from saesite.sae.load import load_sae
from saesite.sae.model import SAE
from saesite.train.sae import reconstruction_metrics, train_sae

HOOK = "blocks.0.mlp.hook_post"
OUT = Path(__file__).parent / "out" / "sae_quality"

# Everything not named here comes from TrainSaeConfig's defaults.
VARIANTS: dict[str, dict] = {
    "standard": {"architecture": "standard", "resample": "none"},
    "resample": {"architecture": "standard", "resample": "anthropic"},
    "random": {"architecture": "standard", "resample": "random"},
    "topk": {"architecture": "topk", "aux_k": None},
    "topk-aux": {"architecture": "topk", "aux_k": 256},
}


def training_tokens(tokenizer_json: Path, n_ctx: int, cache: Path) -> torch.Tensor:
    """The demo model's training split, packed as `train-model` packs it (cached as .npy)."""
    if cache.is_file():
        return torch.from_numpy(np.load(cache)).long()
    from tokenizers import Tokenizer

    from saesite.train.model import EOT, corpus_files, pack, read_texts, token_stream

    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    eot = tokenizer.token_to_id(EOT)
    train_texts, _ = read_texts(*corpus_files(None))
    tokens = pack(token_stream(tokenizer, train_texts, eot), n_ctx, eot)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, tokens)
    return torch.from_numpy(tokens).long()


@torch.no_grad()
def ce_losses(model, sae: SAE, tokens: torch.Tensor, batch_size: int = 64) -> dict[str, float]:
    """Mean next-token loss: clean, with the SAE spliced in, with the hook zero-ablated."""
    sums = {"clean": 0.0, "spliced": 0.0, "zero": 0.0}
    hooks = {
        "clean": [],
        "spliced": [(HOOK, lambda act, hook: sae(act))],
        "zero": [(HOOK, lambda act, hook: torch.zeros_like(act))],
    }
    for start in range(0, len(tokens), batch_size):
        batch = tokens[start : start + batch_size]
        for name, fwd_hooks in hooks.items():
            loss = model.run_with_hooks(batch, return_type="loss", fwd_hooks=fwd_hooks)
            sums[name] += loss.item() * len(batch)
    out = {name: value / len(tokens) for name, value in sums.items()}
    out["recovered"] = (out["zero"] - out["spliced"]) / (out["zero"] - out["clean"])
    return out


@torch.no_grad()
def evaluate(model, sae: SAE, tokens: torch.Tensor) -> dict[str, float]:
    acts = sample_activations(model, tokens, HOOK, model_batch_size=64)
    metrics = reconstruction_metrics(sae, acts)
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    for start in range(0, len(acts), 8192):
        fired |= (sae.encode(acts[start : start + 8192]) > 0).any(0)
    ce = ce_losses(model, sae, tokens)
    return {
        "l0": metrics["l0"],
        "explained_variance": metrics["explained_variance"],
        "ce_loss_recovered": ce["recovered"],
        "ce_clean": ce["clean"],
        "ce_spliced": ce["spliced"],
        "ce_zero": ce["zero"],
        "dead_fraction": 1.0 - fired.float().mean().item(),
    }


def parse_value(field_type: str, text: str):
    if text == "None":
        return None
    if "int" in field_type and "." not in text and "e" not in text:
        return int(text)
    if "float" in field_type or "int" in field_type:
        return float(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(DEMO_MODEL))
    parser.add_argument("--variants", default="standard,resample,topk")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a TrainSaeConfig field for every variant",
    )
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    types = {f.name: str(f.type) for f in fields(TrainSaeConfig)}
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = parse_value(types[key], value)

    loaded = load_model(args.model)
    model = loaded.model
    started = time.perf_counter()
    tokens = training_tokens(
        Path(args.model) / "tokenizer.json", model.cfg.n_ctx, OUT.parent / "train_tokens.npy"
    )
    logging.info("training tokens %s (%.1f s)", tuple(tokens.shape), time.perf_counter() - started)
    demo = torch.from_numpy(np.load(Path(args.model) / DEMO_TOKENS.name)).long()

    results = {}
    results_path = out / "results.json"
    if results_path.is_file():
        results = json.loads(results_path.read_text())
    for name in args.variants.split(","):
        cfg = replace(
            TrainSaeConfig(out=str(out / name), hook=HOOK), **{**VARIANTS[name], **overrides}
        )
        started = time.perf_counter()
        summary = train_sae(model, tokens, cfg, model_batch_size=32, model_name="demo")
        seconds = time.perf_counter() - started
        metrics = evaluate(model, load_sae(out / name), demo)
        results[name] = {
            "train_seconds": round(seconds, 1),
            "tokens": cfg.steps * cfg.batch_size,
            "overrides": {**VARIANTS[name], **overrides},
            **{k: round(v, 4) for k, v in metrics.items()},
            "train_summary": summary,
        }
        print(
            f"{name:10s} L0 {metrics['l0']:6.1f}  EV {metrics['explained_variance']:.3f}  "
            f"CE rec {metrics['ce_loss_recovered']:.3f}  dead {metrics['dead_fraction']:.1%}  "
            f"train {seconds:.0f} s  {overrides}",
            flush=True,
        )
        out.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
