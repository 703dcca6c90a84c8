"""What an SAE training run tracks and records: per-feature firing, the training log (one line
per ``log_every`` steps, decoder snapshots for toy animations) and the checkpoint.

The log is ``training_log.json`` beside the SAE (read by the site's training page): ``config``
(the run's settings, without where it was written), ``steps`` (means over each log window, 6
significant digits), ``resample_events``, ``final_density`` (firing rate per feature over the last
``resample_window`` steps) and, for d_in <= 3, ``decoder_snapshots``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from saesite.config import TrainSaeConfig
from saesite.records.rounding import rounded
from saesite.sae.model import SAE


class Trackers:
    """Per-feature firing trackers and running means between log lines (all checkpointed)."""

    def __init__(self, d_sae: int):
        self.since_fired = torch.zeros(d_sae, dtype=torch.long)  # steps since last fired
        self.fire_counts = torch.zeros(d_sae, dtype=torch.float64)  # in the density window
        self.density_tokens = 0
        self.sums = {"loss": 0.0, "mse": 0.0, "l1": 0.0, "l0": 0.0}
        self.n_sums = 0
        self.last_resample: int | None = None  # steps completed at the last resampling

    def state_dict(self) -> dict[str, Any]:
        return {
            "since_fired": self.since_fired,
            "fire_counts": self.fire_counts,
            "density_tokens": self.density_tokens,
            "sums": dict(self.sums),
            "n_sums": self.n_sums,
            "last_resample": -1 if self.last_resample is None else self.last_resample,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.since_fired = state["since_fired"].clone()
        self.fire_counts = state["fire_counts"].clone()
        self.density_tokens = int(state["density_tokens"])
        self.sums = dict(state["sums"])
        self.n_sums = int(state["n_sums"])
        last = int(state.get("last_resample", -1))
        self.last_resample = None if last < 0 else last

    def dead(self, window: int, steps_done: int) -> Tensor:
        return self.since_fired >= min(window, steps_done)


def new_log(sae: SAE, cfg: TrainSaeConfig) -> dict[str, Any]:
    """An empty training log carrying the run's settings."""
    # Where it was written and whether it was resumed say nothing about the SAE (and a local
    # path does not belong in a published site).
    config = {k: v for k, v in asdict(cfg).items() if k not in ("out", "resume")}
    config.update(architecture=sae.cfg.architecture, d_in=sae.cfg.d_in, d_sae=sae.cfg.d_sae)
    return {"config": config, "steps": [], "resample_events": [], "final_density": []}


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` through a temporary file (a killed run leaves the old one)."""
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def log_entry(done: int, trackers: Trackers, cfg: TrainSaeConfig, lr: float) -> dict:
    """One log line: means since the last line (restarted here), dead fraction, learning rate."""
    n = max(trackers.n_sums, 1)
    entry = {"step": done, **{k: rounded(v / n, 6) for k, v in trackers.sums.items()}}
    dead = trackers.dead(cfg.resample_window, done).double().mean().item()
    entry["dead_fraction"] = rounded(dead, 6)
    entry["lr"] = rounded(lr, 6)  # the rate of the last step, as used
    trackers.sums = dict.fromkeys(trackers.sums, 0.0)
    trackers.n_sums = 0
    return entry


def snapshot(sae: SAE, step: int) -> dict:
    """The decoder rows at ``step`` (toy animations)."""
    return {"step": step, "W_dec": rounded(sae.W_dec, 6)}


def resume(
    checkpoint: Path,
    sae: SAE,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    trackers: Trackers,
    batches: Any,
) -> tuple[int, dict]:
    """Restore a run from ``checkpoint``: SAE, Adam, RNG, trackers, stream; (step, log)."""
    state = torch.load(checkpoint, weights_only=True)
    sae.load_state_dict(state["sae"])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["rng"])
    trackers.load_state_dict(state["trackers"])
    if "stream" in state and hasattr(batches, "load_state_dict"):
        batches.load_state_dict(state["stream"])
    return int(state["step"]), state["log"]
