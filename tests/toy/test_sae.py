"""SAEs on toy models: the recovery table, latent feature records, a short fit."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from saesite.records.schema import Example, FeatureRecord
from saesite.sae.model import SAE, SaeConfig
from saesite.stats.batch import TokenBatch
from saesite.stats.histogram import HistogramAccumulator
from saesite.stats.quantiles import IntervalAccumulator
from saesite.stats.windows import Window
from saesite.toy.data import ToyDataConfig, instance_generator, sample_features
from saesite.toy.sae import (
    LATENT_PAGE_STATS,
    RECOVERED_COSINE,
    ToySaeConfig,
    fit_toy_sae,
    latent_records,
    recovery_table,
)

SCHEMA_KEYS = set(FeatureRecord.__required_keys__)
EXAMPLE_KEYS = set(Example.__required_keys__) | {"tokens", "token_ids"}  # no token store


def _pentagon(scale: float = 1.2) -> torch.Tensor:
    angles = torch.arange(5) * 2 * math.pi / 5 + 0.3
    return torch.stack([angles.cos(), angles.sin()]) * scale  # (2 hidden, 5 features)


def _sae_of(W: torch.Tensor, order: list[int], bias: float = -0.2) -> SAE:
    """An SAE whose latent j reads and writes true feature order[j]'s direction."""
    directions = (W / W.norm(dim=0, keepdim=True)).T[order]  # (d_sae, n_hidden)
    sae = SAE(SaeConfig(d_in=W.shape[0], d_sae=len(order)))
    with torch.no_grad():
        sae.W_dec.copy_(directions)
        sae.W_enc.copy_(directions.T)
        sae.b_enc.fill_(bias)
    return sae


def test_recovery_table_of_an_sae_equal_to_the_true_features_is_all_ones():
    W = _pentagon()
    table = recovery_table(_sae_of(W, [0, 1, 2, 3, 4]).W_dec, W)
    assert [row["cosine"] for row in table["features"]] == pytest.approx([1.0] * 5, abs=1e-6)
    assert [row["latent"] for row in table["features"]] == [0, 1, 2, 3, 4]
    assert all(row["recovered"] and row["represented"] for row in table["features"])
    assert [row["feature"] for row in table["latents"]] == [0, 1, 2, 3, 4]


def test_recovery_table_follows_a_permutation_and_reports_missing_features():
    W = _pentagon()
    W[:, 4] *= 0.01  # feature 4 is not represented
    table = recovery_table(_sae_of(W, [2, 0, 1, 1, 3]).W_dec, W)
    rows = table["features"]
    assert [rows[f]["latent"] for f in (2, 0, 3)] == [0, 1, 4]
    assert rows[1]["latent"] in (2, 3) and rows[1]["cosine"] == pytest.approx(1.0, abs=1e-6)
    assert not rows[4]["represented"] and rows[4]["cosine"] < RECOVERED_COSINE
    assert [row["feature"] for row in table["latents"]] == [2, 0, 1, 1, 3]


def test_a_latent_between_two_features_matches_none():
    W = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    sae = SAE(SaeConfig(d_in=2, d_sae=1))
    with torch.no_grad():
        sae.W_dec.copy_(torch.tensor([[1.0, 1.0]]) / math.sqrt(2))
    table = recovery_table(sae.W_dec, W)
    assert table["latents"][0]["feature"] is None
    assert table["features"][0]["cosine"] == pytest.approx(math.sqrt(0.5), abs=1e-4)


def test_latent_records_follow_the_feature_schema_with_inputs_as_examples():
    W = _pentagon()
    sae = _sae_of(W, [0, 1, 2, 3, 4])
    x = sample_features(ToyDataConfig(n_features=5), 0.1, 2000, instance_generator("records"))
    records = latent_records(
        sae,
        x,
        W,
        first_index=10,
        labels=[f"l{j}" for j in range(5)],
        cfg=replace(LATENT_PAGE_STATS, top_k=4, seed=3),
    )
    acts = sae.encode(x @ W.T)
    assert [r["index"] for r in records] == [10, 11, 12, 13, 14]
    for j, record in enumerate(records):
        assert set(record) == SCHEMA_KEYS | {"token_separator"}
        assert record["token_separator"] == " "
        assert record["density"] == pytest.approx((acts[:, j] > 0).double().mean().item())
        top = record["top_examples"]
        assert len(top) == 4 and [e["act"] for e in top] == sorted(
            [e["act"] for e in top], reverse=True
        )
        for example in top:
            assert set(example) == EXAMPLE_KEYS
            assert example["tokens"] == ["f0", "f1", "f2", "f3", "f4"]
            assert example["token_ids"] == [0, 1, 2, 3, 4]
            assert example["act"] == pytest.approx(acts[example["seq"], j].item())
            assert example["acts"] == pytest.approx(x[example["seq"]].tolist(), rel=1e-3)
        # the latent that reads feature j fires hardest on inputs where feature j is on
        assert all(example["acts"][j] > 0 for example in top)
        assert all(example["acts"][example["pos"]] == max(example["acts"]) for example in top)
        assert sum(q["fraction"] for q in record["quantile_examples"]) == pytest.approx(1.0)
        assert all(
            n["index"] in range(10, 15) and n["index"] != 10 + j for n in record["neighbours"]
        )
        assert record["encoder_decoder_cosine"] == pytest.approx(1.0, abs=1e-5)


def test_a_short_fit_returns_decoder_snapshots_and_both_resampling_modes_run():
    W = _pentagon()
    data = ToyDataConfig(n_features=5)
    logs = {}
    for resample in ("anthropic", "none"):
        cfg = ToySaeConfig(d_sae=5, steps=60, batch_size=128, resample=resample, seed=1)
        sae, logs[resample] = fit_toy_sae(W, data, 0.05, instance_generator("fit"), cfg)
        assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(5), atol=1e-5)
    assert logs["anthropic"]["decoder_snapshots"][0]["step"] == 0
    assert logs["none"]["resample_events"] == []
    assert logs["anthropic"]["decoder_snapshots"][0] == logs["none"]["decoder_snapshots"][0]


def test_toy_histograms_and_intervals_are_the_accumulators_over_length_one_sequences():
    W = _pentagon()
    sae = _sae_of(W, [0, 1, 2, 3, 4])
    x = sample_features(ToyDataConfig(n_features=5), 0.2, 1500, instance_generator("same"))
    cfg = replace(LATENT_PAGE_STATS, top_k=4, seed=7)
    records = latent_records(sae, x, W, first_index=0, labels=[""] * 5, cfg=cfg)
    acts = sae.encode(x @ W.T).detach()
    # the language-model pass's accumulators, fed the same activations in three batches of
    # sequences of length 1 (the global token index is the input's index)
    window = Window(0, 0)
    hist = HistogramAccumulator(5, cfg.n_bins)
    intervals = IntervalAccumulator(
        5, cfg.n_bins, cfg.n_intervals, cfg.interval_samples, window, seed=7
    )
    for start in range(0, 1500, 500):
        part = acts[start : start + 500]
        batch = TokenBatch.from_acts(torch.zeros(500, 1, dtype=torch.int64), start, part)
        hist.update(part, batch)
        intervals.update(part, batch)
    final_hist, final_int = hist.finalize(), intervals.finalize()
    for j, record in enumerate(records):
        fired = acts[:, j][acts[:, j] > 0].double().numpy()
        assert record["histogram"]["edges"] == final_hist.edges(j)
        assert record["histogram"]["counts"] == final_hist.counts[j].tolist()
        counts, _ = np.histogram(fired, bins=record["histogram"]["edges"])
        assert record["histogram"]["counts"] == counts.tolist()
        shown = record["quantile_examples"]
        have = [i for i in range(cfg.n_intervals) if not math.isnan(final_int.lo[j, i])]
        assert [(q["lo"], q["hi"], q["fraction"]) for q in shown] == [
            (final_int.lo[j, i].item(), final_int.hi[j, i].item(), final_int.fraction[j, i].item())
            for i in have
        ]
        for q, i in zip(shown, have, strict=True):
            rows = [r for r in final_int.index[j, i].tolist() if r >= 0]
            assert [e["seq"] for e in q["examples"]] == rows
            assert all(q["lo"] <= e["act"] < q["hi"] or e["act"] == q["hi"] for e in q["examples"])
