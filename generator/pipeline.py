"""The stages in order: load model, SAE and tokens; check them; one pass; records; write the site.

Every check that can fail on user input runs before the pass, so a bad flag costs seconds, not
a whole pass, and nothing is written until every record exists.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import torch
from saesite import __version__
from saesite.config import BuildConfig, DataConfig, StatsConfig, TrainSaeConfig
from saesite.errors import SaesiteError
from saesite.lm.data import load_tokens
from saesite.lm.model import DEMO_SAE, LoadedModel, check_hook, load_model
from saesite.preflight import check_device, check_labels, check_stats_sizes, published_path
from saesite.sae.defaults import resolve_data, resolve_hook, resolve_model
from saesite.sae.model import SAE, sae_summary
from saesite.sae.source import load_one_sae

log = logging.getLogger(__name__)

TRAINING_LOG = "training_log.json"
MAX_BATCH_ELEMENTS = 1 << 25
"""Cap on tokens x d_sae per forward batch (128 MiB of float32 activations), so a 65,536-feature
SAE streams in small batches instead of materialising gigabytes."""


def hook_width(model, hook: str) -> int:
    """Width of the hook's activation, read off a one-token forward."""
    check_hook(model, hook)
    seen: dict[str, int] = {}

    def grab(act, hook):  # noqa: ARG001 - TransformerLens hook signature
        seen["width"] = act.shape[-1]
        raise _Stop

    try:
        with torch.no_grad():
            model.run_with_hooks(
                torch.zeros(1, 1, dtype=torch.long, device=model.cfg.device),
                fwd_hooks=[(hook, grab)],
            )
    except _Stop:
        pass
    if "width" not in seen:
        raise SaesiteError(f"--hook {hook!r} did not run in a forward pass")
    return seen["width"]


class _Stop(Exception):
    pass


def check_sae_fits(model, sae: SAE, hook: str) -> None:
    width = hook_width(model, hook)
    if width != sae.cfg.d_in:
        raise SaesiteError(
            f"SAE d_in is {sae.cfg.d_in} but hook {hook!r} has width {width}; "
            "expected them to match (wrong --hook or --sae?)"
        )


def build_inputs(config: BuildConfig) -> list[str]:
    """The local paths a build reads: the output folder must hold none of them."""
    paths = [config.model, config.sae, config.data.dataset, config.render.labels]
    return [p for p in paths if p is not None]


def preflight_out(config: BuildConfig) -> None:
    """Refuse early, before any compute, an output folder the site may not replace."""
    from saesite.site.writer import check_output_folder

    check_output_folder(
        config.render.out,
        replace_folder=config.render.replace_folder,
        inputs=build_inputs(config),
    )


def read_training_log(sae_dir: Path) -> dict | None:
    path = sae_dir / TRAINING_LOG
    if not path.is_file():
        return None
    try:
        training = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SaesiteError(f"{path}: not valid JSON ({err})") from None
    from saesite.site.site_json import check_training_log

    check_training_log(training, str(path))
    return training


def build_site(config: BuildConfig) -> Path:
    """``saesite build``: the whole pipeline. Returns the site folder."""
    started = time.perf_counter()
    device = config.stats.device
    check_device(device)
    preflight_out(config)
    # The SAE first: it is cheaper than the model and names the model, hook and context.
    sae_dir = Path(config.sae) if config.sae else DEMO_SAE
    sae = load_one_sae(config.sae or DEMO_SAE, device, config.instance)
    check_labels(config.render.labels, sae.cfg.d_sae)
    training = read_training_log(sae_dir) if sae_dir.is_dir() else None
    hook = resolve_hook(config.hook, sae)
    loaded = load_model(resolve_model(config.model, sae, config.sae is not None), device)
    check_sae_fits(loaded.model, sae, hook)
    data = resolve_data(config.data, sae, loaded.model.cfg.n_ctx)
    config = replace(config, data=data)
    tokens = load_tokens(data, loaded.tokenizer, loaded.model.cfg.d_vocab, loaded.model.cfg.n_ctx)
    check_stats_sizes(config.stats, *tokens.shape, sae.cfg.d_sae)
    log.info(
        "model %s, hook %s, SAE %d -> %d (%s), %d x %d tokens",
        loaded.name,
        hook,
        sae.cfg.d_in,
        sae.cfg.d_sae,
        sae.cfg.architecture,
        *tokens.shape,
    )
    from saesite.records.build import build_records
    from saesite.site.render import write_site

    stats_cfg = bounded_batch(config.stats, tokens.shape[1], sae.cfg.d_sae)
    computed = time.perf_counter()
    records = build_records(loaded, sae, tokens, hook, stats_cfg, config.weights)
    log.info("statistics (pass and weights) in %.1f s", time.perf_counter() - computed)
    site = site_record(config, loaded, sae, hook, records)
    if training is not None:
        site["training"] = training
    out = write_site(site, records.features, config.render, inputs=build_inputs(config))
    log.info("wrote %s (%d features) in %.1f s", out, sae.cfg.d_sae, time.perf_counter() - started)
    return out


def bounded_batch(stats: StatsConfig, seq_len: int, d_sae: int) -> StatsConfig:
    """The stats config with batch_size lowered so one batch's activations stay bounded."""
    fits = max(1, MAX_BATCH_ELEMENTS // (seq_len * d_sae))
    if stats.batch_size <= fits:
        return stats
    log.info(
        "batch size %d -> %d sequences to bound memory (%d features)", stats.batch_size, fits, d_sae
    )
    return replace(stats, batch_size=fits)


def site_record(config: BuildConfig, loaded: LoadedModel, sae: SAE, hook: str, records) -> dict:
    config_dict = config.to_dict()
    # Where the site was written, and by how many processes, is not part of how it was made:
    # leaving it out keeps a site's bytes independent of both.
    for key in ("out", "replace_folder", "workers"):
        config_dict["render"].pop(key)
    # Local paths are published relative to the working folder (or as base names), so a site
    # does not carry its maker's home folder; full paths only with --record-paths.
    publish = lambda path: published_path(path, config.record_paths)  # noqa: E731
    config_dict["model"], config_dict["sae"] = publish(config.model), publish(config.sae)
    config_dict["data"]["dataset"] = publish(config.data.dataset)
    config_dict["render"]["labels"] = publish(config.render.labels)
    return {
        "saesite_version": __version__,
        "model": publish(loaded.name) if loaded.name != "demo" else loaded.name,
        "hook": hook,
        "d_in": sae.cfg.d_in,
        "d_sae": sae.cfg.d_sae,
        "sae": sae_summary(sae),
        "n_tokens": records.n_tokens,
        "n_seq": records.n_seq,
        "seq_len": records.seq_len,
        "config": config_dict,
        "metrics": records.metrics,
        "density_histogram": records.density_histogram,
        "token_bytes": records.token_bytes,
        "labels": {},
    }


def training_tokens(loaded: LoadedModel, data: DataConfig) -> torch.Tensor:
    """Tokens to train an SAE on: --dataset, or for the demo model its own training split."""
    if data.dataset is not None or loaded.name != "demo":
        if data.dataset is None:
            raise SaesiteError(
                "--dataset is required to train an SAE on a model other than the bundled demo"
            )
        return load_tokens(data, loaded.tokenizer, loaded.model.cfg.d_vocab, loaded.model.cfg.n_ctx)
    from saesite.train.model import EOT, corpus_files, pack, read_texts, token_stream

    root, files = corpus_files(None)
    train_texts, _ = read_texts(root, files)
    backend = loaded.tokenizer.backend
    tokens = pack(
        token_stream(backend, train_texts, backend.token_to_id(EOT)),
        loaded.model.cfg.n_ctx,
        backend.token_to_id(EOT),
    )
    tokens = torch.from_numpy(tokens).long()
    if data.n_tokens is not None:
        tokens = tokens[: max(1, data.n_tokens // tokens.shape[1])]
    return tokens


def train_sae_command(
    model: str | None, data: DataConfig, config: TrainSaeConfig, model_batch_size: int
) -> dict:
    """``saesite train-sae``: stream a hook's activations and train an SAE on them."""
    from saesite.train.sae import train_sae

    loaded = load_model(model, config.device)
    check_hook(loaded.model, config.hook)
    tokens = training_tokens(loaded, data)
    log.info("training on %d x %d tokens", *tokens.shape)
    return train_sae(
        loaded.model, tokens, config, model_batch_size=model_batch_size, model_name=loaded.name
    )
