"""Superposition, memorisation and double descent (Henighan et al. 2023; ARENA's exercises).

One 2-D bottleneck toy model per dataset size T, trained full-batch on a fixed set of T points:

    x_f = U[0, 1) with probability p, else 0;  then x ← x / ‖x‖  (a point with no feature stays 0)
    h = W x,   x' = ReLU(Wᵀ h + b),   W [2, n_features]
    train loss = mean over the T points and the features of (x_f − x'_f)²
    AdamW(lr, weight decay), linear warm-up over the first 5% of the steps, cosine decay to 0

Test loss is the same mean over ``n_test`` fresh points. Small T: the model memorises, the
hidden vectors ``h = W x`` of the training points spread out in superposition while the feature
directions ``W[:, f]`` are a mess. Large T: it generalises, the features take the directions.
In between the test loss peaks: double descent.

Every (T, replica) is one instance of a single batched model; instances of similar size share a
zero-padded batch (padding masked out of the loss), so no T pays for the largest. An instance's
weights and data come from generators keyed (seed, T, replica) and AdamW updates each entry on
its own, so an instance trains the same whatever the other sizes in the sweep.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from saesite.config import DoubleDescentConfig
from saesite.records.rounding import rounded
from saesite.toy.data import instance_generator
from saesite.train.schedule import warmup_cosine

log = logging.getLogger(__name__)

N_HIDDEN = 2
WARMUP_FRACTION = 0.05
DIGITS = 4
"""Significant digits of the losses and vectors stored in site.json."""
MAX_POINTS_SHOWN = 300
"""Training points whose hidden vectors are stored per snapshot."""
GROUP_ROWS = 1024
"""Instances share one padded batch while it stays under this many rows (or padding at most
doubles the rows)."""


def sample_points(
    n_features: int, p: float, n_points: int, generator: torch.Generator
) -> Float[Tensor, "point n_features"]:
    """Sparse uniform points scaled to unit norm (all-zero points stay zero)."""
    values = torch.rand(n_points, n_features, generator=generator)
    present = torch.rand(n_points, n_features, generator=generator) < p
    x = torch.where(present, values, torch.zeros(()))
    norm = x.norm(dim=1, keepdim=True)
    return x / torch.where(norm > 0, norm, torch.ones_like(norm))


def lr_scale(step: int, steps: int) -> float:
    """Linear warm-up over the first WARMUP_FRACTION of the steps, then cosine decay to 0."""
    return warmup_cosine(step, steps, round(WARMUP_FRACTION * steps))


@dataclass(frozen=True, kw_only=True)
class SweepResult:
    """Every trained instance of the sweep; instance i has size ``sizes[i]``."""

    sizes: list[int]
    replicas: list[int]
    W: Float[Tensor, "inst 2 n_features"]
    b: Float[Tensor, "inst n_features"]
    train_loss: list[float]
    test_loss: list[float]
    points: list[Float[Tensor, "point n_features"]]
    """Each instance's training set."""


@dataclass(frozen=True)
class _Group:
    """Instances of similar size, their points zero-padded to the largest: [inst, point, f]."""

    index: Int[Tensor, " inst"]
    x: Float[Tensor, "inst point n_features"]
    mask: Float[Tensor, "inst point 1"]
    counts: Float[Tensor, " inst"]


def _groups(points: list[Tensor], device: str) -> list[_Group]:
    """Consecutive instances (sizes ascending) grouped while padding at most doubles the rows,
    or the group stays under GROUP_ROWS: one batched product per group, little padding."""
    groups: list[list[int]] = []
    for inst, p in enumerate(points):
        current = groups[-1] if groups else None
        if current is not None:
            widest = max(len(p), max(len(points[i]) for i in current))
            padded = widest * (len(current) + 1)
            real = len(p) + sum(len(points[i]) for i in current)
            if padded <= max(2 * real, GROUP_ROWS):
                current.append(inst)
                continue
        groups.append([inst])
    out = []
    for members in groups:
        widest = max(len(points[i]) for i in members)
        n = points[members[0]].shape[1]
        x = torch.zeros(len(members), widest, n)
        mask = torch.zeros(len(members), widest, 1)
        for row, i in enumerate(members):
            x[row, : len(points[i])] = points[i]
            mask[row, : len(points[i])] = 1.0
        out.append(
            _Group(
                index=torch.tensor(members, device=device),
                x=x.to(device),
                mask=mask.to(device),
                counts=torch.tensor([float(len(points[i])) for i in members], device=device),
            )
        )
    return out


def _group_loss(
    W: Float[Tensor, "inst 2 n_features"], b: Float[Tensor, "inst n_features"], group: _Group
) -> Float[Tensor, " inst"]:
    """Per instance of the group, mean over its points and the features of (x − x')²."""
    W_g = W[group.index]
    out = torch.relu(torch.baddbmm(b[group.index].unsqueeze(1), group.x @ W_g.transpose(1, 2), W_g))
    sq = (group.x - out).pow(2).mul(group.mask).sum(dim=(1, 2))
    return sq / (group.counts * group.x.shape[2])


def _all_losses(W, b, groups: list[_Group], n_inst: int) -> Float[Tensor, " inst"]:
    losses = torch.zeros(n_inst, device=W.device)
    for group in groups:
        losses = losses.index_put((group.index,), _group_loss(W, b, group))
    return losses


def train_sweep(cfg: DoubleDescentConfig, seed: int, device: str = "cpu") -> SweepResult:
    """Train ``replicas`` models for every size in ``cfg.sizes``; test on fresh points."""
    keys = [
        (seed, "double-descent", size, replica)
        for size in cfg.sizes
        for replica in range(cfg.replicas)
    ]
    n = cfg.n_features
    points = [
        sample_points(n, cfg.feature_probability, key[2], instance_generator(*key, "data"))
        for key in keys
    ]
    W0 = torch.stack(
        [
            torch.randn(N_HIDDEN, n, generator=instance_generator(*key, "init"))
            * math.sqrt(2.0 / (N_HIDDEN + n))
            for key in keys
        ]
    )
    W = torch.nn.Parameter(W0.to(device))
    b = torch.nn.Parameter(torch.zeros(len(keys), n, device=device))
    groups = _groups(points, device)
    optimizer = torch.optim.AdamW([W, b], lr=cfg.lr, weight_decay=cfg.weight_decay)
    for step in tqdm(range(cfg.steps), desc="double descent", leave=False):
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * lr_scale(step, cfg.steps)
        loss = sum(_group_loss(W, b, group).sum() for group in groups)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        train = _all_losses(W, b, groups, len(keys))
        test_x = sample_points(
            n, cfg.feature_probability, cfg.n_test, instance_generator(seed, "double-descent-test")
        ).to(device)
        out = torch.relu(torch.baddbmm(b.unsqueeze(1), test_x @ W.transpose(1, 2), W))
        test = (test_x - out).pow(2).mean(dim=(1, 2))
    return SweepResult(
        sizes=[key[2] for key in keys],
        replicas=[key[3] for key in keys],
        W=W.detach().cpu(),
        b=b.detach().cpu(),
        train_loss=train.cpu().tolist(),
        test_loss=test.cpu().tolist(),
        points=points,
    )


def best_per_size(result: SweepResult) -> dict[int, int]:
    """For each size, the instance with the lowest training loss (as ARENA's exercise keeps)."""
    best: dict[int, int] = {}
    for inst, size in enumerate(result.sizes):
        if size not in best or result.train_loss[inst] < result.train_loss[best[size]]:
            best[size] = inst
    return best


def peak_size(result: SweepResult) -> int:
    """The size whose kept model has the highest test loss."""
    best = best_per_size(result)
    return max(best, key=lambda size: (result.test_loss[best[size]], -size))


def _rounded(values) -> list:
    return rounded(values, DIGITS)


def snapshot_sizes(result: SweepResult) -> list[tuple[str, int]]:
    """(role, size) for the smallest size, the test-loss peak and the largest size."""
    sizes = sorted(set(result.sizes))
    chosen = [("small", sizes[0]), ("peak", peak_size(result)), ("large", sizes[-1])]
    seen: set[int] = set()
    return [(role, size) for role, size in chosen if not (size in seen or seen.add(size))]


def double_descent_entry(cfg: DoubleDescentConfig, seed: int, device: str = "cpu") -> dict:
    """site.json's ``toy.double_descent``: the loss curve and the hidden vectors at three sizes."""
    result = train_sweep(cfg, seed, device)
    best = best_per_size(result)
    sweep = []
    for size, kept in best.items():
        members = [i for i, s in enumerate(result.sizes) if s == size]
        sweep.append(
            {
                "size": size,
                "train_loss": _rounded(result.train_loss[kept]),
                "test_loss": _rounded(result.test_loss[kept]),
                "replica_train_losses": _rounded([result.train_loss[i] for i in members]),
                "replica_test_losses": _rounded([result.test_loss[i] for i in members]),
            }
        )
    snapshots = []
    for role, size in snapshot_sizes(result):
        kept = best[size]
        W = result.W[kept].double()
        points = result.points[kept][:MAX_POINTS_SHOWN].double()
        snapshots.append(
            {
                "role": role,
                "size": size,
                "W": _rounded(W),
                "hidden": _rounded(points @ W.T),
                "n_points": len(result.points[kept]),
                "test_loss": _rounded(result.test_loss[kept]),
            }
        )
    log.info(
        "double descent: test loss %s",
        " ".join(f"T={row['size']}:{row['test_loss']:.3g}" for row in sweep),
    )
    return {
        **asdict(cfg),
        "sizes": list(cfg.sizes),
        "seed": seed,
        "n_hidden": N_HIDDEN,
        "warmup_fraction": WARMUP_FRACTION,
        "peak_size": peak_size(result),
        "sweep": sweep,
        "snapshots": snapshots,
    }
