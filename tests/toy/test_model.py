"""Toy models: batched instances are independent, best-of-seeds, feature dimensionality."""

from __future__ import annotations

import math

import pytest
import torch

from saesite.toy.model import (
    ToyModelConfig,
    ToyTrainConfig,
    build_toy_model,
    evaluate_toy_model,
    feature_dimensionality,
    select_best,
    train_toy_model,
)

TRAIN = ToyTrainConfig(steps=40, batch_size=64, lr=1e-2, seed=3)


def _cfg(kind: str, probs: tuple[float, ...], seeds_per_level: int = 1) -> ToyModelConfig:
    return ToyModelConfig(
        name=f"test-{kind}",
        title="test",
        kind=kind,
        n_features=5,
        n_hidden=2 if kind == "bottleneck" else 3,
        feature_probability=probs,
        importance_decay=0.9,
        seeds_per_level=seeds_per_level,
    )


@pytest.mark.parametrize("kind", ["bottleneck", "neuron", "computation"])
def test_an_instance_trains_the_same_alone_as_next_to_other_instances(kind):
    alone = train_toy_model(_cfg(kind, (0.1,)), TRAIN, progress=False)
    together = train_toy_model(_cfg(kind, (0.1, 0.5, 0.02)), TRAIN, progress=False)
    for name, param in alone.model.named_parameters():
        other = dict(together.model.named_parameters())[name]
        torch.testing.assert_close(param[0], other[0], rtol=0, atol=1e-6)
    assert math.isclose(alone.loss[0], together.loss[0], rel_tol=1e-5)
    # and training did something different for the other instances
    assert not torch.allclose(together.model.W[0], together.model.W[1])


def test_training_lowers_the_importance_weighted_loss():
    cfg = _cfg("bottleneck", (0.1, 0.3))
    model = build_toy_model(cfg, seed=TRAIN.seed)
    keys = cfg.instance_keys(TRAIN.seed)
    before = evaluate_toy_model(cfg, model, keys, cfg.instance_probabilities(), "cpu")
    trained = train_toy_model(
        cfg, ToyTrainConfig(steps=150, batch_size=256, lr=1e-2, seed=3), progress=False
    )
    assert all(a < b for a, b in zip(trained.loss, before, strict=True)), (trained.loss, before)


def test_best_of_several_seeds_keeps_the_lowest_loss_replica_of_each_level():
    cfg = _cfg("bottleneck", (0.2, 0.05), seeds_per_level=3)
    trained = train_toy_model(cfg, TRAIN, progress=False)
    assert len(trained.loss) == 6
    best = select_best(trained)
    assert best.feature_probability == [0.2, 0.05]
    for level in range(2):
        block = list(range(3 * level, 3 * level + 3))
        winner = min(block, key=lambda i: trained.loss[i])
        assert best.loss[level] == min(trained.loss[i] for i in block)
        assert torch.equal(best.model.W[level], trained.model.W[winner])
        assert best.keys[level] == trained.keys[winner]


def test_dimensionality_of_an_antipodal_pair_is_one_half_and_of_a_lone_feature_one():
    W = torch.tensor([[[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.7, 0.0]]])  # (1 inst, 2 hidden, 4)
    dims = feature_dimensionality(W)[0].tolist()
    assert dims[0] == pytest.approx(0.5) and dims[1] == pytest.approx(0.5)
    assert dims[2] == pytest.approx(1.0)
    assert dims[3] == 0.0  # a feature that is not represented


def test_dimensionality_of_a_pentagon_is_two_fifths():
    angles = torch.arange(5) * 2 * math.pi / 5
    W = torch.stack([angles.cos(), angles.sin()])[None] * 1.3
    assert feature_dimensionality(W)[0].tolist() == pytest.approx([0.4] * 5)


def test_probabilities_above_one_half_are_refused_with_anticorrelated_pairs():
    with pytest.raises(ValueError, match="expected a number in"):
        ToyModelConfig(
            name="x",
            title="x",
            n_features=4,
            n_hidden=2,
            feature_probability=(0.7,),
            n_anticorrelated_pairs=1,
        )
