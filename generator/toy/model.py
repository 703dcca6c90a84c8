"""Toy models of superposition (Elhage et al. 2022; ARENA's exercises), many instances at once.

    bottleneck   h = W x                    x' = ReLU(Wᵀ h + b)
    neuron       h = ReLU(W x)              x' = ReLU(Wᵀ h + b)
    computation  h = ReLU(W x)              x' = ReLU(W_out h + b),  target |x|, x in [-1, 1)

    W: [inst, n_hidden, n_features];  loss = Σ_inst mean_{batch, f} I_f (target_f − x'_f)²

Instances share nothing: each has its own generator for its initial weights and its data, the
loss sums over instances (so no instance's gradient scales with the others) and AdamW updates
each parameter entry on its own. An instance's result is therefore the same whether it is
trained alone or next to others. Instance ``level * seeds_per_level + replica`` has sparsity
level ``level``; ``select_best`` keeps the lowest-loss replica of each level.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor, nn
from tqdm.auto import tqdm

from saesite.toy.data import (
    BatchStream,
    ToyDataConfig,
    instance_generator,
    sample_batch,
    target,
)

log = logging.getLogger(__name__)

ModelKind = Literal["bottleneck", "neuron", "computation"]
EVAL_SAMPLES = 16384


@dataclass(frozen=True, kw_only=True)
class ToyModelConfig:
    """One batched toy model: its shape, its data and one sparsity level per instance."""

    name: str
    """Short id, used in page names (``superposition-5-2``)."""
    title: str
    """One line for the pages."""
    kind: ModelKind = "bottleneck"
    n_features: int
    n_hidden: int
    feature_probability: tuple[float, ...]
    """One probability per sparsity level (instance)."""
    importance_decay: float = 1.0
    """Importance of feature f is importance_decay ** f."""
    n_correlated_pairs: int = 0
    n_anticorrelated_pairs: int = 0
    seeds_per_level: int = 1
    """Replicas trained per sparsity level; the lowest-loss one is kept."""

    def __post_init__(self) -> None:
        if self.n_hidden <= 0 or not self.feature_probability or self.seeds_per_level <= 0:
            raise ValueError(
                f"toy model {self.name!r}: n_hidden {self.n_hidden}, "
                f"{len(self.feature_probability)} probabilities, seeds_per_level "
                f"{self.seeds_per_level}; expected all positive"
            )
        data = self.data
        for p in self.feature_probability:
            data.check_probability(p)

    @property
    def data(self) -> ToyDataConfig:
        return ToyDataConfig(
            n_features=self.n_features,
            n_correlated_pairs=self.n_correlated_pairs,
            n_anticorrelated_pairs=self.n_anticorrelated_pairs,
            signed=self.kind == "computation",
        )

    @property
    def importance(self) -> list[float]:
        return [self.importance_decay**f for f in range(self.n_features)]

    def instance_probabilities(self) -> list[float]:
        """Feature probability of every trained instance (replicas next to each other)."""
        return [p for p in self.feature_probability for _ in range(self.seeds_per_level)]

    def instance_keys(self, seed: int) -> list[tuple]:
        """Stable per-instance keys: (seed, model name, level, replica)."""
        return [
            (seed, self.name, level, replica)
            for level in range(len(self.feature_probability))
            for replica in range(self.seeds_per_level)
        ]


def default_models(seeds_per_level: int = 1) -> list[ToyModelConfig]:
    """The paper's headline models: 5→2 and 20→5 bottlenecks, pairs, and the neuron models."""
    return [
        ToyModelConfig(
            name="superposition-5-2",
            title="5 features in 2 dimensions",
            n_features=5,
            n_hidden=2,
            feature_probability=(1.0, 0.3, 0.1, 0.05, 0.03, 0.02),
            importance_decay=0.9,
            seeds_per_level=seeds_per_level,
        ),
        ToyModelConfig(
            name="superposition-20-5",
            title="20 features in 5 dimensions",
            n_features=20,
            n_hidden=5,
            feature_probability=(1.0, 0.1, 0.03, 0.01),
            importance_decay=0.7,
            seeds_per_level=seeds_per_level,
        ),
        ToyModelConfig(
            name="correlated",
            title="Two correlated pairs in 2 dimensions",
            n_features=4,
            n_hidden=2,
            feature_probability=(0.1, 0.02),
            n_correlated_pairs=2,
            seeds_per_level=seeds_per_level,
        ),
        ToyModelConfig(
            name="anticorrelated",
            title="Two anti-correlated pairs in 2 dimensions",
            n_features=4,
            n_hidden=2,
            feature_probability=(0.1, 0.02),
            n_anticorrelated_pairs=2,
            seeds_per_level=seeds_per_level,
        ),
        ToyModelConfig(
            name="neurons",
            title="Privileged basis: 10 features, 5 ReLU neurons",
            kind="neuron",
            n_features=10,
            n_hidden=5,
            feature_probability=(0.75, 0.35, 0.15, 0.1, 0.06, 0.02, 0.01),
            importance_decay=0.75,
            seeds_per_level=seeds_per_level,
        ),
        ToyModelConfig(
            name="computation",
            title="Computing |x|: 20 features, 10 ReLU neurons",
            kind="computation",
            n_features=20,
            n_hidden=10,
            feature_probability=(1.0, 0.3, 0.1, 0.03, 0.01),
            importance_decay=0.8,
            seeds_per_level=seeds_per_level,
        ),
    ]


class ToyModel(nn.Module):
    """Bottleneck model h = W x, x' = ReLU(Wᵀh + b); ``NeuronModel`` puts a ReLU on h."""

    hidden_relu = False

    def __init__(self, n_inst: int, n_features: int, n_hidden: int):
        super().__init__()
        self.W = nn.Parameter(torch.zeros(n_inst, n_hidden, n_features))
        self.b_final = nn.Parameter(torch.zeros(n_inst, n_features))

    @property
    def n_inst(self) -> int:
        return self.W.shape[0]

    @torch.no_grad()
    def init_(self, generators: Sequence[torch.Generator]) -> None:
        """Xavier-normal weights per instance, each from its own generator; zero biases."""
        for param in self.parameters():
            if param.dim() == 3:
                _, rows, cols = param.shape
                std = math.sqrt(2.0 / (rows + cols))
                for inst, gen in enumerate(generators):
                    param[inst].copy_(torch.randn(rows, cols, generator=gen) * std)
            else:
                param.zero_()

    def hidden(
        self, x: Float[Tensor, "inst batch n_features"]
    ) -> Float[Tensor, "inst batch n_hidden"]:
        """h = W x (with a ReLU for the neuron model)."""
        h = torch.bmm(x, self.W.transpose(1, 2))
        return torch.relu(h) if self.hidden_relu else h

    def forward(
        self, x: Float[Tensor, "inst batch n_features"]
    ) -> Float[Tensor, "inst batch n_features"]:
        """x' = ReLU(Wᵀ h + b)."""
        return torch.relu(torch.baddbmm(self.b_final.unsqueeze(1), self.hidden(x), self.W))


class NeuronModel(ToyModel):
    """h = ReLU(W x), x' = ReLU(Wᵀh + b): the ReLU makes the neuron basis privileged."""

    hidden_relu = True


class NeuronComputationModel(ToyModel):
    """h = ReLU(W x), x' = ReLU(W_out h + b), trained to output |x| for x in [-1, 1)."""

    hidden_relu = True

    def __init__(self, n_inst: int, n_features: int, n_hidden: int):
        super().__init__(n_inst, n_features, n_hidden)
        self.W_out = nn.Parameter(torch.zeros(n_inst, n_features, n_hidden))

    def forward(
        self, x: Float[Tensor, "inst batch n_features"]
    ) -> Float[Tensor, "inst batch n_features"]:
        """x' = ReLU(W_out h + b)."""
        h = self.hidden(x)
        return torch.relu(torch.baddbmm(self.b_final.unsqueeze(1), h, self.W_out.transpose(1, 2)))


MODEL_CLASSES: dict[str, type[ToyModel]] = {
    "bottleneck": ToyModel,
    "neuron": NeuronModel,
    "computation": NeuronComputationModel,
}


@dataclass(frozen=True, kw_only=True)
class ToyTrainConfig:
    """How every toy model is trained."""

    steps: int = 5000
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 0.0
    """AdamW decoupled weight decay."""
    seed: int = 0
    device: str = "cpu"


@dataclass(frozen=True, kw_only=True)
class TrainedToy:
    """A trained model and the per-instance loss on held-out data."""

    cfg: ToyModelConfig
    model: ToyModel
    feature_probability: list[float]
    loss: list[float]
    """Importance-weighted MSE per instance on EVAL_SAMPLES fresh inputs."""
    keys: list[tuple]
    """The instance keys (seed, model, level, replica) that seeded each instance."""


def build_toy_model(cfg: ToyModelConfig, seed: int, device: str = "cpu") -> ToyModel:
    """A model with one initialised instance per (level, replica)."""
    keys = cfg.instance_keys(seed)
    model = MODEL_CLASSES[cfg.kind](len(keys), cfg.n_features, cfg.n_hidden)
    model.init_([instance_generator(*key, "init") for key in keys])
    return model.to(device)


def instance_loss(
    out: Float[Tensor, "inst batch n_features"],
    y: Float[Tensor, "inst batch n_features"],
    importance: Float[Tensor, " n_features"],
) -> Float[Tensor, " inst"]:
    """Importance-weighted MSE per instance: mean over batch and features of I_f (y − x')²."""
    return (importance * (y - out) ** 2).mean(dim=(1, 2))


def train_toy_model(
    cfg: ToyModelConfig,
    train: ToyTrainConfig,
    *,
    model: ToyModel | None = None,
    keys: list[tuple] | None = None,
    feature_probability: list[float] | None = None,
    progress: bool = True,
) -> TrainedToy:
    """Train every instance of ``cfg`` (or the given ``model``/``keys``/probabilities)."""
    keys = keys if keys is not None else cfg.instance_keys(train.seed)
    probs = feature_probability if feature_probability is not None else cfg.instance_probabilities()
    model = model if model is not None else build_toy_model(cfg, train.seed, train.device)
    data = cfg.data
    importance = torch.tensor(cfg.importance, device=train.device)
    stream = BatchStream(
        data,
        probs,
        [instance_generator(*key, "data") for key in keys],
        train.batch_size,
        train.device,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    bar = tqdm(range(train.steps), desc=f"toy {cfg.name}", disable=not progress, leave=False)
    for _ in bar:
        x = next(stream)
        loss = instance_loss(model(x), target(data, x), importance).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    bar.close()
    losses = evaluate_toy_model(cfg, model, keys, probs, train.device)
    log.info("toy %s: loss per instance %s", cfg.name, " ".join(f"{v:.4g}" for v in losses))
    return TrainedToy(
        cfg=cfg, model=model, feature_probability=list(probs), loss=losses, keys=list(keys)
    )


@torch.no_grad()
def evaluate_toy_model(
    cfg: ToyModelConfig, model: ToyModel, keys: list[tuple], probs: list[float], device: str
) -> list[float]:
    """Loss per instance on fresh inputs; replicas of one level see the same inputs."""
    data = cfg.data
    gens = [instance_generator(*key[:3], "eval") for key in keys]
    x = sample_batch(data, probs, gens, EVAL_SAMPLES).to(device)
    importance = torch.tensor(cfg.importance, device=device)
    return instance_loss(model(x), target(data, x), importance).tolist()


@torch.no_grad()
def select_best(trained: TrainedToy) -> TrainedToy:
    """Keep, per sparsity level, the replica with the lowest loss."""
    per = trained.cfg.seeds_per_level
    if per == 1:
        return trained
    keep = []
    for level in range(len(trained.cfg.feature_probability)):
        block = range(level * per, (level + 1) * per)
        keep.append(min(block, key=lambda inst: trained.loss[inst]))
    old = trained.model
    model = type(old)(len(keep), trained.cfg.n_features, trained.cfg.n_hidden).to(old.W.device)
    sources = dict(old.named_parameters())
    for name, param in model.named_parameters():
        param.copy_(sources[name][keep])
    return TrainedToy(
        cfg=trained.cfg,
        model=model,
        feature_probability=[trained.feature_probability[i] for i in keep],
        loss=[trained.loss[i] for i in keep],
        keys=[trained.keys[i] for i in keep],
    )


def feature_dimensionality(
    W: Float[Tensor, "inst n_hidden n_features"],
) -> Float[Tensor, "inst n_features"]:
    """D_i = ‖W_i‖² / Σ_j (Ŵ_i · W_j)²: 1 for a dedicated dimension, ½ for an antipodal pair."""
    norms = W.norm(dim=1, keepdim=True)  # (inst, 1, n_features)
    unit = W / norms.clamp_min(1e-12)
    overlap = torch.einsum("ihf,ihg->ifg", unit, W) ** 2  # (inst, f, g) = (Ŵ_f · W_g)²
    dims = norms.squeeze(1) ** 2 / overlap.sum(dim=2).clamp_min(1e-12)
    return torch.where(norms.squeeze(1) > 1e-6, dims, torch.zeros_like(dims))
