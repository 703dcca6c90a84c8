"""The pass state on disk: exact round trips, and refusal of states from something else."""

from __future__ import annotations

import json

import pytest
import torch

from saesite.config import BuildConfig, StatsConfig
from saesite.errors import SaesiteError
from saesite.stats.pass_ import run_pass, shard_range
from saesite.stats.state import HEADER, load_stats, provenance, save_stats
from tests.stats.test_pass import tiny_model, tiny_sae, tiny_tokens

HOOK = "blocks.0.mlp.hook_post"
CFG = StatsConfig(batch_size=2, top_k=4, n_bins=16, n_intervals=4, interval_samples=3)


def shard(model, sae, tokens, index: int, n_shards: int, special_ids=()):
    first, stop = shard_range(tokens.shape[0], CFG.batch_size, index, n_shards)
    return run_pass(model, sae, tokens[first:stop], HOOK, CFG, first, special_ids=special_ids)


@pytest.fixture(scope="module")
def setup():
    model, sae, tokens = tiny_model(), tiny_sae(64), tiny_tokens()
    build = BuildConfig(stats=CFG).to_dict()
    return model, sae, tokens, build, provenance("tiny", HOOK, sae, tokens, build)


def flat_state(state) -> dict:
    names = ("firing", "histograms", "topk", "intervals", "cofiring", "reconstruction", "losses")
    flat = {
        f"{name}.{key}": value
        for name in names
        for key, value in getattr(state, name).state_dict().items()
    }
    return {**flat, "token_ids": state.token_ids, "seq_start": state.seq_start}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
        else:
            assert type(a[key]) is type(b[key]) and a[key] == b[key], key


def test_a_saved_state_loads_back_tensor_for_tensor_and_keeps_merging_exactly(tmp_path, setup):
    model, sae, tokens, build, prov = setup
    first, second = shard(model, sae, tokens, 0, 2), shard(model, sae, tokens, 1, 2)
    save_stats(first, tmp_path / "a", prov, build)
    loaded, header = load_stats(tmp_path / "a", prov)
    assert_same(flat_state(loaded), flat_state(first))
    assert loaded.window == first.window
    assert header["build"] == build
    loaded.merge(second)
    merged = loaded.finalize()
    whole = run_pass(model, sae, tokens, HOOK, CFG).finalize()
    assert torch.equal(merged.cofiring.index, whole.cofiring.index)
    assert torch.equal(merged.intervals.index, whole.intervals.index)
    assert torch.equal(merged.firing.mean, whole.firing.mean)
    assert merged.metrics == whole.metrics


def test_metrics_without_special_tokens_from_saved_shards_equal_one_passes_to_the_bit(
    tmp_path, setup
):
    model, sae, tokens, build, prov = setup
    tokens = tokens.clone()
    tokens[:, 0] = 0  # BOS at every start; 3 stands for EOS / padding inside
    special = [0, 3]
    whole = run_pass(model, sae, tokens, HOOK, CFG, special_ids=special).finalize().metrics
    states = []
    for index in range(3):
        save_stats(shard(model, sae, tokens, index, 3, special), tmp_path / f"{index}", prov, build)
        states.append(load_stats(tmp_path / f"{index}", prov)[0])
    states[2].merge(states[1])
    states[2].merge(states[0])
    merged = states[2].finalize().metrics
    assert merged == whole
    assert merged["excluded_token_ids"] == special
    assert merged["n_tokens_measured"] == int((~torch.isin(tokens, torch.tensor(special))).sum())


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda p: {**p, "model": "another-model"}, "model"),
        (lambda p: {**p, "sae_fingerprint": "0" * 64}, "SAE"),
        (
            lambda p: {
                **p,
                "config": {**p["config"], "stats": {**p["config"]["stats"], "seed": 1}},
            },
            "statistics config",
        ),
        (lambda p: {**p, "saesite_version": "0.0.1"}, "saesite version"),
        (lambda p: {**p, "tokens": {**p["tokens"], "fingerprint": "f" * 64}}, "dataset"),
    ],
)
def test_a_state_from_a_different_model_sae_config_version_or_dataset_is_refused_in_one_line(
    tmp_path, setup, change, named
):
    model, sae, tokens, build, prov = setup
    state = shard(model, sae, tokens, 0, 3)
    save_stats(state, tmp_path, prov, build)
    with pytest.raises(SaesiteError) as err:
        load_stats(tmp_path, change(prov))
    assert named in str(err.value) and "\n" not in str(err.value)


def test_a_state_written_by_another_saesite_version_is_refused_by_default(tmp_path, setup):
    model, sae, tokens, build, prov = setup
    save_stats(shard(model, sae, tokens, 0, 3), tmp_path, prov, build)
    header = json.loads((tmp_path / HEADER).read_text())
    header["provenance"]["saesite_version"] = "9.9.9"
    (tmp_path / HEADER).write_text(json.dumps(header))
    with pytest.raises(SaesiteError, match="saesite version"):
        load_stats(tmp_path)
    header["format_version"] = 1  # before feature shards
    (tmp_path / HEADER).write_text(json.dumps(header))
    with pytest.raises(SaesiteError, match="version 1; expected 'saesite-stats' version 2"):
        load_stats(tmp_path)


def test_a_different_sae_gives_a_different_fingerprint(setup):
    _, sae, tokens, build, prov = setup
    other = tiny_sae(64)
    with torch.no_grad():
        other.W_enc[0, 0] += 1e-6
    assert (
        provenance("tiny", HOOK, other, tokens, build)["sae_fingerprint"] != prov["sae_fingerprint"]
    )


def test_shard_states_merged_in_any_order_finalise_to_the_same_statistics(setup):
    model, sae, tokens, _, _ = setup

    def shards():
        return [shard(model, sae, tokens, i, 3) for i in range(3)]

    # FeatureStats merges adjacent shards only; the accumulators themselves take any order.
    a = shards()
    a[0].merge(a[1])
    a[0].merge(a[2])
    b = shards()
    b[1].merge(b[2])
    b[1].merge(b[0])
    x, y = a[0].finalize(), b[1].finalize()
    for name in ("firing", "histograms", "topk", "intervals", "cofiring"):
        for field, value in vars(getattr(x, name)).items():
            other = getattr(getattr(y, name), field)
            if isinstance(value, torch.Tensor):
                assert torch.equal(value.nan_to_num(-1.0), other.nan_to_num(-1.0)), (name, field)
            else:
                assert value == other
    assert x.metrics == y.metrics
