"""The stages, each a function with typed input and output::

    load(model, sae, hook=, data=)                     -> Loaded        model, SAE, hook, tokens
    load_objects(model, sae, tokens)                   -> Loaded        the same, from objects
    compute(loaded, StatsConfig, WeightStatsConfig)    -> FeatureStats  one pass + weights
    write_records(stats, loaded, BuildConfig)          -> Records       site + feature records
    render(records or a built site, RenderConfig)      -> Path          HTML from records alone

``saesite build`` is the four calls (``build_site``); ``saesite render`` is the last one.
Every check that can fail on user input runs in ``load``, before the pass, so a bad flag costs
seconds, not a whole pass, and nothing is written until every record exists.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Int
from torch import Tensor

from saesite.config import (
    BuildConfig,
    DataConfig,
    RenderConfig,
    StatsConfig,
    TrainSaeConfig,
    WeightStatsConfig,
)
from saesite.errors import SaesiteError
from saesite.lm.data import check_readable, check_tokens, load_tokens, tokens_from_array
from saesite.lm.hooks import run_to_hook
from saesite.lm.model import DEMO_SAE, LoadedModel, Tokenizer, check_hook, load_model
from saesite.lm.skeleton import check_hook_before_weights, skeleton_config, width_problem
from saesite.preflight import check_device, check_labels, check_stats_sizes, published_path
from saesite.records.build import Records, build_records
from saesite.sae.defaults import resolve_data, resolve_hook, resolve_model
from saesite.sae.model import SAE, TRAINING_LOG
from saesite.sae.source import load_one_sae
from saesite.stats.feature_stats import FeatureStats
from saesite.stats.heap import release_freed_memory

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

    from saesite.site.feature_pages import PageRunner

log = logging.getLogger(__name__)

MAX_BATCH_ELEMENTS = 1 << 27
"""Cap on tokens x d_sae per forward batch (512 MiB of float32 activations): 32 sequences of 128
at 24,576 features fit (peak under 3 GiB at GPT-2 size with CE losses, benchmarks/README.md); a
65,536-feature SAE streams in batches of 16 instead of materialising gigabytes."""


def hook_width(model, hook: str) -> int:
    """Width of the hook's activation, read off a one-token forward."""
    check_hook(model, hook)
    with torch.no_grad():
        seen = run_to_hook(
            model, torch.zeros(1, 1, dtype=torch.long, device=model.cfg.device), hook
        )
    if hook not in seen:
        raise SaesiteError(f"--hook {hook!r} did not run in a forward pass")
    return seen[hook].shape[-1]


def check_sae_fits(model, sae: SAE, hook: str) -> None:
    width = hook_width(model, hook)
    if width != sae.cfg.d_in:
        raise SaesiteError(width_problem(sae.cfg.d_in, hook, width))


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


@dataclass(frozen=True, kw_only=True)
class Loaded:
    """What ``load`` gives ``compute``: model, SAE, tokens and the hook joining them."""

    model: HookedTransformer
    tokenizer: Tokenizer
    model_name: str
    """As site.json ``model`` shows it: a hub name, a folder, or "demo"."""
    sae: SAE
    hook: str
    """The hook whose activations the SAE reads (checked to exist and to have width d_in)."""
    tokens: Int[Tensor, "n_seq seq_len"]
    """The dataset, int64 on the CPU, validated against the model's vocabulary and context."""
    data: DataConfig
    """The data config the tokens came from, with defaults from the SAE's metadata filled in."""
    training: dict | None = None
    """The SAE's training log (``training_log.json`` beside its weights), if it has one."""


def load_build(config: BuildConfig) -> Loaded:
    """Stage 1 of ``config``, as ``saesite build`` (whole or one shard) runs it."""
    return load(
        config.model,
        config.sae,
        instance=config.instance,
        hook=config.hook,
        data=config.data,
        labels=config.render.labels,
        device=config.stats.device,
        dtype=config.dtype,
    )


def load(
    model: str | None = None,
    sae: str | Path | None = None,
    *,
    instance: int | None = None,
    hook: str | None = None,
    data: DataConfig | None = None,
    labels: str | None = None,
    device: str = "cpu",
    dtype: str = "float32",
) -> Loaded:
    """Stage 1: the model, the SAE (``instance``: of an ARENA n_instances state dict), the
    tokens; every check that can fail on user input (``labels``: the file is checked against
    the SAE's width)."""
    # The SAE first: it is cheaper than the model and names the model, hook and context.
    sae_dir = Path(sae) if sae else DEMO_SAE
    sae_module = load_one_sae(sae or DEMO_SAE, device, instance)
    check_labels(labels, sae_module.cfg.d_sae)
    training = read_training_log(sae_dir) if sae_dir.is_dir() else None
    hook = resolve_hook(hook, sae_module)
    model_name = resolve_model(model, sae_module, sae is not None)
    model_kwargs = sae_module.cfg.extra_metadata.get("model_from_pretrained_kwargs")
    # The hook and the SAE's width from the model's config, before its weights load.
    skeleton = skeleton_config(model_name, model_kwargs)
    if skeleton is not None:
        check_hook_before_weights(skeleton, hook, sae_module.cfg.d_in)
    check_readable(data or DataConfig())
    loaded = load_model(model_name, device, dtype, model_kwargs)
    check_sae_fits(loaded.model, sae_module, hook)
    cfg = loaded.model.cfg
    data = resolve_data(data or DataConfig(), sae_module, cfg.n_ctx)
    tokens = load_tokens(data, loaded.tokenizer, cfg.d_vocab, cfg.n_ctx)
    log.info(
        "model %s, hook %s, SAE %d -> %d (%s), %d x %d tokens",
        loaded.name,
        hook,
        sae_module.cfg.d_in,
        sae_module.cfg.d_sae,
        sae_module.cfg.architecture,
        *tokens.shape,
    )
    return Loaded(
        model=loaded.model,
        tokenizer=loaded.tokenizer,
        model_name=loaded.name,
        sae=sae_module,
        hook=hook,
        tokens=tokens,
        data=data,
        training=training,
    )


def load_objects(
    model: HookedTransformer,
    sae: Any,
    tokens: Any,
    *,
    hook: str | None = None,
    tokenizer: Any = None,
    model_name: str | None = None,
) -> Loaded:
    """Stage 1 for objects already in memory (the Python API, ``saesite.build``).

    ``sae``: a saesite SAE or a ``sae_lens`` SAE (converted by ``sae.sae_lens.from_sae_lens``);
    ``tokens``: a tensor or array ``[n_seq, seq_len]``; ``tokenizer``: default
    ``model.tokenizer``; ``model_name``: default ``model.cfg.model_name``.
    """
    if not isinstance(sae, SAE):
        from saesite.sae.sae_lens import from_sae_lens

        sae = from_sae_lens(sae)
    backend = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    if backend is None:
        raise SaesiteError("the model has no tokenizer; expected tokenizer= (pages show tokens)")
    tokenizer = backend if isinstance(backend, Tokenizer) else Tokenizer(backend)
    hook = resolve_hook(hook, sae)
    check_sae_fits(model, sae, hook)
    tokens = tokens_from_array(tokens, "tokens")
    check_tokens(tokens, model.cfg.d_vocab, model.cfg.n_ctx, "tokens")
    return Loaded(
        model=model,
        tokenizer=tokenizer,
        model_name=model_name or model.cfg.model_name,
        sae=sae,
        hook=hook,
        tokens=tokens,
        data=DataConfig(),
    )


def compute(loaded: Loaded, stats: StatsConfig, weights: WeightStatsConfig) -> FeatureStats:
    """Stage 2: one streaming pass over the tokens, then the weight statistics (and, with
    ``stats.ablation``, the ablation effects of the top examples)."""
    from saesite.stats.pass_ import run_pass

    started = time.perf_counter()
    tokens = torch.as_tensor(loaded.tokens, dtype=torch.int64)
    check_stats_sizes(stats, *tokens.shape, loaded.sae.cfg.d_sae)
    stats = bounded_batch(stats, tokens.shape[1], loaded.sae.cfg.d_sae)
    special = loaded.tokenizer.special_ids()
    result = run_pass(loaded.model, loaded.sae, tokens, loaded.hook, stats, special_ids=special)
    complete(loaded, result, stats, weights)
    log.info("statistics (pass and weights) in %.1f s", time.perf_counter() - started)
    return result


def complete(
    loaded: Loaded, result: FeatureStats, stats: StatsConfig, weights: WeightStatsConfig
) -> FeatureStats:
    """The end of stage 2, once the pass's accumulators hold every token (of one process, or of
    merged shards): the weight statistics, each shown example's effect on the next token's logit,
    and with ``stats.ablation`` the ablation effects."""
    from saesite.stats.next_logit import next_tokens
    from saesite.stats.weights import weight_stats

    following = next_tokens(
        result.token_ids,
        result.seq_start,
        result.topk.finalize().index,
        result.intervals.finalize().index,
    )
    read = weight_stats(loaded.model, loaded.sae, loaded.hook, weights, read=following.ids)
    result.next_logit = following.effects(read.logits_read)
    result.weights = replace(read, logits_read=None)  # read once: [d_sae, n_read] not kept
    if stats.ablation:
        from saesite.stats.ablation import ablation_effects

        result.ablation = ablation_effects(
            loaded.model,
            loaded.sae,
            torch.as_tensor(loaded.tokens, dtype=torch.int64),
            loaded.hook,
            result.topk.finalize(),
            result.window,
            stats.batch_size,
            device=stats.device,
        )
    return result


def write_records(stats: FeatureStats, loaded: Loaded, config: BuildConfig) -> Records:
    """Stage 3: the site record and the feature records (docs/schema.md), built from the
    statistics in this process; ``config`` goes into site.json as how the site was made."""
    config = replace(config, data=loaded.data)
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
    name = loaded.model_name
    records = build_records(
        stats.finalize(),
        loaded.tokenizer,
        model_name=publish(name) if name != "demo" else name,
        hook=loaded.hook,
        sae=loaded.sae,
        config=config_dict,
        training=loaded.training,
    )
    # the model name an SAE or its training log recorded may be a local path too
    for part in (records.site.get("sae"), (records.site.get("training") or {}).get("config")):
        if isinstance(part, dict) and isinstance(part.get("model_name"), str):
            part["model_name"] = publish(part["model_name"])
    return records


def render(
    records: Records | str | Path,
    cfg: RenderConfig,
    *,
    inputs: Sequence[str | Path] = (),
    pages: PageRunner | None = None,
) -> Path:
    """Stage 4: HTML from the records alone, into ``cfg.out``. ``records`` is what
    ``write_records`` returned, or a folder ``saesite build`` wrote (re-rendered in place).
    ``inputs``: the files the build read, which the output folder may not hold. ``pages``:
    what renders the feature pages (``site.feature_pages``; default: local processes)."""
    from saesite.site.render import rerender_site, write_site

    if isinstance(records, Records):
        return write_site(records.site, records.features, cfg, inputs=inputs, pages=pages)
    return rerender_site(
        records,
        labels=cfg.labels,
        title=cfg.title,
        workers=cfg.workers,
        feature_json=cfg.feature_json,
    )


def build_site(config: BuildConfig) -> Path:
    """``saesite build``: the four stages. Returns the site folder."""
    started = time.perf_counter()
    check_device(config.stats.device)
    preflight_out(config)
    loaded = load_build(config)
    stats = compute(loaded, config.stats, config.weights)
    records = write_records(stats, loaded, config)
    # The records hold what the pages need: the model, the SAE and the open accumulators go
    # before rendering, so neither this process nor the page workers it forks keep them.
    del stats, loaded
    release_freed_memory()
    out = render(records, config.render, inputs=build_inputs(config))
    n = len(records.features)
    log.info("wrote %s (%d features) in %.1f s", out, n, time.perf_counter() - started)
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
