"""SAE training: the generic loop (`fit_sae`) and the model-streaming command (`train_sae`).

standard:  acts = ReLU((x - b_dec) @ W_enc + b_enc)
           loss = ||x - x_hat||^2 + l1(t) · sum_f acts_f          (mean over the batch)
topk:      acts = the k largest of ReLU(pre), others 0
           loss = ||x - x_hat||^2 + aux_k_coef · ||e - e_hat_dead||^2 / ||e - mean(e)||^2

Decoder rows are kept at unit norm: before each Adam step the gradient component parallel to
each row is removed, after it every row is rescaled to norm 1. Without a constraint the L1 term
can be cheated: halve every encoder column and double every decoder row and the reconstruction is
unchanged while the L1 penalty halves, so activations shrink towards zero and the penalty stops
meaning sparsity. With unit rows ``sum_f acts_f`` is exactly the decoder-norm-scaled L1
``sum_f acts_f ||W_dec[f]||``, and activations are in the units of the input (an activation of
2 adds a vector of length 2), which makes features comparable on the site. ``l1(t)`` ramps
linearly from 0 over ``l1_warmup_steps``; the learning rate decays linearly to 0 over the last
``lr_decay_fraction`` of the steps.

Dead features: a feature is dead when it has not fired for ``resample_window`` steps. For
``standard`` they are resampled at ``resample_every`` steps (see `saesite.train.resample`); for
``topk`` with ``aux_k`` the dead latents model the residual ``e = x - x_hat`` (OpenAI, *Scaling
and evaluating sparse autoencoders*, 2024).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from saesite.config import TrainSaeConfig
from saesite.records.rounding import rounded
from saesite.sae.model import SAE, TRAINING_LOG, SaeConfig, init_sae_, save_sae
from saesite.train.log import (
    Trackers,
    log_entry,
    new_log,
    resume,
    save_checkpoint,
    snapshot,
)
from saesite.train.objective import (
    AUX_K_COEF,
    aux_k_loss,
    l1_at,
    lr_at,
    remove_parallel_grad_,
    resample_steps,
)
from saesite.train.resample import resample_dead_

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
RESAMPLE_BATCHES = 4
"""Recent batches whose inputs are candidates for resampled directions."""
MAX_SNAPSHOTS = 50
"""Decoder snapshots kept for toy (d_in <= 3) animations."""
SNAPSHOT_MAX_D_IN = 3
INIT_SEQUENCES = 64
"""Sequences sampled to initialise b_dec and the input scale."""
MAX_HELD_OUT_SEQUENCES = 64


def geometric_median(
    points: Float[Tensor, "n d_in"], n_iter: int = 30, eps: float = 1e-8
) -> Float[Tensor, " d_in"]:
    """argmin_m sum_i ||x_i - m|| by Weiszfeld's iteration, started from the mean."""
    points = points.double()
    median = points.mean(0)
    for _ in range(n_iter):
        weights = 1.0 / (points - median).norm(dim=1).clamp_min(eps)
        new = (weights[:, None] * points).sum(0) / weights.sum()
        if (new - median).norm() <= 1e-7 * (median.norm() + eps):
            median = new
            break
        median = new
    return median.float()


def init_b_dec_(sae: SAE, sample: Float[Tensor, "n d_in"], how: str) -> None:
    """b_dec := geometric median or mean of a data sample."""
    centre = geometric_median(sample) if how == "geometric_median" else sample.float().mean(0)
    with torch.no_grad():
        sae.b_dec.copy_(centre.to(sae.b_dec.device))


def fit_sae(
    sae: SAE,
    batches: Iterator[Float[Tensor, "batch d_in"]],
    cfg: TrainSaeConfig,
    *,
    out: Path | None = None,
) -> dict:
    """Train ``sae`` in place on ``batches``; return the training log.

    The SAE should be initialised (`init_sae_`, b_dec); a fresh all-zero one is initialised here
    from the seed and the first batch. Deterministic for a seed on CPU. With ``out``, a
    checkpoint (SAE, Adam, step, RNG, trackers, log, and the stream's ``state_dict`` when it has
    one) is written to ``out/checkpoint.pt`` every ``checkpoint_every`` steps, and removed when
    the run completes. With ``cfg.resume`` the run continues from it; a stream with
    ``load_state_dict`` is restored, any other iterator must yield the batches after the
    checkpoint's step. (Resampling draws its inputs from the last ``RESAMPLE_BATCHES`` batches,
    which are not checkpointed: a resampling step sooner than that after a resume sees fewer.)
    """
    arch = sae.cfg.architecture
    if arch not in ("standard", "topk"):
        raise ValueError(f"cannot train a {arch!r} SAE; expected 'standard' or 'topk'")
    cfg = replace(cfg, architecture=arch)
    generator = torch.Generator().manual_seed(cfg.seed)
    if not bool(sae.W_dec.detach().any()):
        first = next(batches)
        init_sae_(sae, generator=generator)
        init_b_dec_(sae, first, cfg.b_dec_init)
        batches = _prepend(first, batches)
    optimizer = _adam(sae, cfg.lr)
    trackers = Trackers(sae.cfg.d_sae)
    training_log = new_log(sae, cfg)
    checkpoint = out / CHECKPOINT if out is not None else None
    start = 0
    if cfg.resume and checkpoint is not None and checkpoint.is_file():
        start, training_log = resume(checkpoint, sae, optimizer, generator, trackers, batches)
        log.info("resuming from %s at step %d", checkpoint, start)
    elif out is not None:
        out.mkdir(parents=True, exist_ok=True)

    snapshot_every = math.ceil(cfg.steps / (MAX_SNAPSHOTS - 1))
    snapshots = sae.cfg.d_in <= SNAPSHOT_MAX_D_IN
    if snapshots and start == 0:
        training_log["decoder_snapshots"] = [snapshot(sae, 0)]
    resample_at = resample_steps(cfg)
    density_from = cfg.steps - min(cfg.resample_window, cfg.steps)
    recent: deque[Tensor] = deque(maxlen=RESAMPLE_BATCHES)
    device = sae.W_dec.device

    def save(steps_done: int) -> None:
        if checkpoint is None:
            return
        payload = {
            "step": steps_done,
            "sae": sae.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng": generator.get_state(),
            "trackers": trackers.state_dict(),
            "log": training_log,
        }
        if hasattr(batches, "state_dict"):
            payload["stream"] = batches.state_dict()
        save_checkpoint(checkpoint, payload)

    bar = tqdm(total=cfg.steps, initial=start, desc="train-sae", unit="step")
    try:
        for step in range(start, cfg.steps):
            x = next(batches, None)
            if x is None:
                log.warning("activation stream ended after %d of %d steps", step, cfg.steps)
                break
            x = x.to(device)
            recent.append(x)
            lr = lr_at(step, cfg, trackers.last_resample)
            for group in optimizer.param_groups:
                group["lr"] = lr
            pre = sae.pre_acts(x)
            acts = sae.activation(pre)
            x_hat = sae.decode(acts)
            mse = (x_hat - x).pow(2).sum(-1).mean()
            l1 = acts.sum(-1).mean()
            if arch == "standard":
                loss = mse + l1_at(step, cfg) * l1
            else:
                loss = mse
                dead = trackers.dead(cfg.resample_window, step).to(device)
                if cfg.aux_k and step >= cfg.resample_window and bool(dead.any()):
                    loss = loss + AUX_K_COEF * aux_k_loss(sae, x, x_hat, pre, dead, cfg.aux_k)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            remove_parallel_grad_(sae)
            optimizer.step()
            sae.normalize_decoder_()

            # Activations are >= 0, so a column max > 0 means "fired"; both reductions read
            # acts once without materialising a [batch, d_sae] mask.
            acts = acts.detach()
            fired_any = (acts.amax(0) > 0).cpu()
            trackers.since_fired = torch.where(fired_any, 0, trackers.since_fired + 1)
            if step >= density_from:
                trackers.fire_counts += torch.count_nonzero(acts, dim=0).cpu().double()
                trackers.density_tokens += len(x)
            trackers.sums["loss"] += loss.item()
            trackers.sums["mse"] += mse.item()
            trackers.sums["l1"] += l1.item()
            trackers.sums["l0"] += torch.count_nonzero(acts).item() / len(x)
            trackers.n_sums += 1
            done = step + 1

            if done in resample_at:
                dead = trackers.dead(cfg.resample_window, done)
                n = resample_dead_(
                    sae,
                    optimizer,
                    dead.to(device),
                    torch.cat(list(recent)),
                    method=cfg.resample,
                    generator=generator,
                )
                trackers.since_fired[dead] = 0
                if n:
                    trackers.last_resample = done
                training_log["resample_events"].append({"step": done, "n_resampled": n})
                log.debug("step %d: resampled %d dead features", done, n)
            if done % cfg.log_every == 0 or done == cfg.steps:
                entry = log_entry(done, trackers, cfg, lr)
                training_log["steps"].append(entry)
                bar.set_postfix(
                    loss=f"{entry['loss']:.4g}",
                    L0=f"{entry['l0']:.1f}",
                    mse=f"{entry['mse']:.4g}",
                    dead=f"{entry['dead_fraction']:.1%}",
                )
            if snapshots and (done % snapshot_every == 0 or done == cfg.steps):
                training_log["decoder_snapshots"].append(snapshot(sae, done))
            if done % cfg.checkpoint_every == 0 and done < cfg.steps:
                save(done)
            bar.update(1)
    finally:
        bar.close()
    counts = trackers.fire_counts / max(trackers.density_tokens, 1)
    training_log["final_density"] = rounded(counts.tolist(), 6)
    if checkpoint is not None and checkpoint.is_file():
        checkpoint.unlink()
    return training_log


def _adam(sae: SAE, lr: float) -> torch.optim.Adam:
    """Adam, fused into one kernel per parameter where this torch supports it (same maths)."""
    try:
        return torch.optim.Adam(sae.parameters(), lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(sae.parameters(), lr=lr)


def _prepend(first: Tensor, rest: Iterator[Tensor]) -> Iterator[Tensor]:
    yield first
    yield from rest


@torch.no_grad()
def fold_input_scale_(sae: SAE, scale: float) -> None:
    """An SAE trained on ``x · scale`` becomes one on ``x`` (activations divided by ``scale``).

    pre(s·x) = s·pre'(x) with b_enc' = b_enc/s and b_dec' = b_dec/s; ReLU and TopK commute with
    a positive factor, so acts' = acts/s and x_hat' = x_hat/s. Unit decoder rows stay unit.
    """
    sae.b_enc.div_(scale)
    sae.b_dec.div_(scale)


@torch.no_grad()
def reconstruction_metrics(sae: SAE, x: Float[Tensor, "tok d_in"], chunk: int = 8192) -> dict:
    """mse (mean over tokens of the summed squared error), explained variance and mean L0."""
    sq_err, l0 = 0.0, 0.0
    for start in range(0, len(x), chunk):
        batch = x[start : start + chunk]
        acts = sae.encode(batch)
        sq_err += (sae.decode(acts) - batch).double().pow(2).sum().item()
        l0 += (acts > 0).sum().item()
    total = (x.double() - x.double().mean(0)).pow(2).sum().item()
    return {
        "mse": sq_err / len(x),
        "explained_variance": 1.0 - sq_err / total if total > 0 else float("nan"),
        "l0": l0 / len(x),
    }


def train_sae(
    model: HookedTransformer,
    tokens: Int[Tensor, "n_seq seq_len"],
    cfg: TrainSaeConfig,
    *,
    model_batch_size: int = 32,
    model_name: str = "",
) -> dict:
    """Train an SAE on ``cfg.hook`` of ``model`` over ``tokens``; write it to ``cfg.out``.

    The last 5% of the sequences (at most 64) are held out for the explained variance. The rest
    stream through a shuffled `ActivationStream`. Inputs are multiplied by one scalar so that
    their total variance E||x - mean||^2 is 1 (the log's ``mse`` is then close to the fraction
    of variance unexplained and ``l1`` does not depend on the hook's scale); the scale is folded
    back into the biases before saving, so the saved SAE reads the raw activations. Writes
    cfg.out in SAELens format plus ``training_log.json``; returns a one-line summary.
    """
    from saesite.errors import SaesiteError
    from saesite.lm.activations import ActivationStream, sample_activations
    from saesite.lm.model import check_hook

    started = time.perf_counter()
    check_hook(model, cfg.hook)
    tokens = torch.as_tensor(tokens).long()
    if tokens.ndim != 2 or len(tokens) < 2:
        raise SaesiteError(
            f"train-sae needs a [n_seq, seq_len] token array with at least 2 "
            f"sequences; got shape {tuple(tokens.shape)}"
        )
    n_seq, seq_len = tokens.shape
    n_held = min(MAX_HELD_OUT_SEQUENCES, max(1, n_seq // 20))
    train_tokens, held_tokens = tokens[:-n_held], tokens[-n_held:]
    model_device = str(model.cfg.device)
    generator = torch.Generator().manual_seed(cfg.seed)
    init_seqs = torch.randperm(len(train_tokens), generator=generator)[:INIT_SEQUENCES]
    sample = sample_activations(
        model, train_tokens[init_seqs].to(model_device), cfg.hook, model_batch_size=model_batch_size
    ).to(cfg.device)
    variance = (sample - sample.mean(0)).pow(2).sum(-1).mean().item()
    scale = 1.0 / math.sqrt(variance) if variance > 0 else 1.0
    sae_cfg = SaeConfig(
        architecture=cfg.architecture,
        d_in=sample.shape[1],
        d_sae=cfg.d_sae,
        k=cfg.k if cfg.architecture == "topk" else None,
        apply_b_dec_to_input=True,
        hook_name=cfg.hook,
        model_name=model_name,
        context_size=seq_len,
    )
    sae = init_sae_(SAE(sae_cfg).to(cfg.device), generator=generator)
    init_b_dec_(sae, sample * scale, cfg.b_dec_init)
    stream = ActivationStream(
        model,
        train_tokens,
        cfg.hook,
        batch_size=cfg.batch_size,
        model_batch_size=model_batch_size,
        buffer_batches=cfg.buffer_batches,
        generator=torch.Generator().manual_seed(cfg.seed + 1),
        scale=scale,
        device=cfg.device,
    )
    out = Path(cfg.out)
    training_log = fit_sae(sae, stream, cfg, out=out)
    fold_input_scale_(sae, scale)

    held = sample_activations(
        model, held_tokens.to(model_device), cfg.hook, model_batch_size=model_batch_size
    ).to(cfg.device)
    metrics = reconstruction_metrics(sae, held)
    training_log["config"].update(
        model_name=model_name,
        input_scale=rounded(scale, 6),
        train_sequences=len(train_tokens),
        seq_len=seq_len,
        model_batch_size=model_batch_size,
    )
    training_log["held_out"] = {
        "n_tokens": held.shape[0],
        **{k: rounded(v, 6) for k, v in metrics.items()},
    }
    save_sae(sae, out)
    (out / TRAINING_LOG).write_text(json.dumps(training_log, sort_keys=True) + "\n")
    last = training_log["steps"][-1] if training_log["steps"] else {}
    summary = {
        "loss": last.get("loss"),
        "l0": round(metrics["l0"], 2),
        "mse": round(metrics["mse"], 5),
        "explained_variance": round(metrics["explained_variance"], 4),
        "dead_fraction": last.get("dead_fraction"),
        "n_resampled": sum(e["n_resampled"] for e in training_log["resample_events"]),
        "seconds": round(time.perf_counter() - started, 1),
    }
    log.info("train-sae: %s", summary)
    return summary
