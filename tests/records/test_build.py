import math

import numpy as np
import pytest
import torch

from saesite.config import BuildConfig, DataConfig, StatsConfig, WeightStatsConfig
from saesite.pipeline import compute, load, write_records
from saesite.records.build import FeatureRecords, density_histogram
from saesite.records.rounding import round_significant
from saesite.records.schema import Example, FeatureRecord
from saesite.site.token_store import ExampleTokens

HOOK = "blocks.0.mlp.hook_post"
STATS = StatsConfig(
    batch_size=5,
    top_k=4,
    n_bins=16,
    n_intervals=4,
    interval_samples=3,
    context_before=3,
    context_after=2,
    seed=0,
)
WEIGHTS = WeightStatsConfig(n_logits=4, n_neurons=3, n_neighbours=2, n_logit_bins=8)
FEATURE_KEYS = set(FeatureRecord.__required_keys__)
EXAMPLE_KEYS = set(Example.__required_keys__)


def with_text(records) -> list[dict]:
    """The feature records with their examples' text, from the site's token store."""
    store = ExampleTokens(records.site["dataset"], records.site["token_bytes"].keys())
    return [store.attach(feature) for feature in records.features]


def build_records(loaded, stats_cfg: StatsConfig):
    """The records of the loaded model, SAE and tokens: the compute and write_records stages."""
    stats = compute(loaded, stats_cfg, WEIGHTS)
    return write_records(stats, loaded, BuildConfig(hook=HOOK, stats=stats_cfg, weights=WEIGHTS))


@pytest.fixture(scope="module")
def built(tiny_model_dir, tiny_sae_dir, tiny_tokens_npy):
    data = DataConfig(dataset=str(tiny_tokens_npy))
    loaded = load(str(tiny_model_dir), str(tiny_sae_dir), hook=HOOK, data=data)
    sae, tokens = loaded.sae, loaded.tokens
    records = build_records(loaded, STATS)
    with torch.no_grad():
        _, cache = loaded.model.run_with_cache(tokens, names_filter=HOOK)
        acts = sae.encode(cache[HOOK].reshape(-1, sae.cfg.d_in))
    return loaded, sae, tokens, records, acts


def test_round_significant_keeps_four_digits_and_zero():
    values = np.array([0.0, 0.123456, 123456.0, -0.0009876543, 1.0, 9.99951])
    assert round_significant(values).tolist() == [0.0, 0.1235, 123500.0, -0.0009877, 1.0, 10.0]


def test_density_histogram_counts_live_features_in_quarter_decades():
    density = np.array([0.0, 0.5, 0.01, 0.011, 1.0])
    hist = density_histogram(density, density == 0)
    assert hist["dead"] == 1 and hist["edges"][0] == -2.0 and hist["edges"][-1] == 0.0
    assert sum(hist["counts"]) == 4 and hist["counts"][0] == 2


def test_records_match_brute_force_density_max_and_top_examples(built):
    loaded, sae, tokens, records, acts = built
    n_tokens, seq_len = tokens.numel(), tokens.shape[1]
    assert tuple(records.site[k] for k in ("n_tokens", "n_seq", "seq_len")) == (
        n_tokens,
        *tokens.shape,
    )
    assert len(records.features) == sae.cfg.d_sae
    for f, feature in enumerate(with_text(records)):
        assert feature["index"] == f and set(feature) == FEATURE_KEYS
        column = acts[:, f]
        assert feature["density"] == pytest.approx((column > 0).sum().item() / n_tokens)
        assert feature["max_activation"] == pytest.approx(column.max().item(), rel=1e-6)
        assert feature["dead"] == bool((column <= 0).all())
        expected = sorted(
            ((v, t) for t, v in enumerate(column.tolist()) if v > 0), key=lambda e: (-e[0], e[1])
        )[: STATS.top_k]
        examples = feature["top_examples"]
        assert [(e["seq"] * seq_len + e["pos"]) for e in examples] == [t for _, t in expected]
        for example, (value, _) in zip(examples, expected, strict=True):
            assert set(example) - {"tokens", "token_ids", "next_logit"} == EXAMPLE_KEYS
            assert example["act"] == pytest.approx(value, rel=1e-6)
            start = example["window_start"]
            ids = tokens[example["seq"], start : start + len(example["tokens"])].tolist()
            assert example.get("token_ids", ids) == ids
            assert example["tokens"] == [loaded.tokenizer.decode_token(t) for t in ids]
            offset = example["pos"] - start
            assert example["acts"][offset] == pytest.approx(value, rel=1e-3)


def test_records_logit_effect_tokens_match_brute_force(built):
    loaded, sae, _, records, _ = built
    model = loaded.model
    with torch.no_grad():
        direction = sae.W_dec @ model.blocks[0].mlp.W_out
        centred = direction - direction.mean(-1, keepdim=True)
        effects = (centred * model.ln_final.w) @ model.W_U
    for f, feature in enumerate(records.features):
        positive = [e["token_id"] for e in feature["logit_effects"]["positive"]]
        assert positive == effects[f].topk(WEIGHTS.n_logits).indices.tolist()
        assert [e["token"] for e in feature["logit_effects"]["positive"]] == [
            loaded.tokenizer.decode_token(t) for t in positive
        ]


def test_every_shown_example_carries_its_effect_on_the_logit_of_the_token_that_followed(built):
    loaded, sae, tokens, records, _ = built
    model = loaded.model
    with torch.no_grad():
        direction = sae.W_dec @ model.blocks[0].mlp.W_out
        effects = (direction - direction.mean(-1, keepdim=True)) * model.ln_final.w @ model.W_U
    seq_len, checked = tokens.shape[1], 0
    for f, feature in enumerate(records.features):
        examples = list(feature["top_examples"])
        for interval in feature["quantile_examples"]:
            examples.extend(interval["examples"])
        for example in examples:
            if example["pos"] == seq_len - 1:
                assert "next_logit" not in example
                continue
            following = tokens[example["seq"], example["pos"] + 1]
            expected = effects[f, following].item()
            assert example["next_logit"] == pytest.approx(expected, rel=1e-3, abs=1e-6)
            checked += 1
    assert checked > 0


def test_records_are_plain_json_values_and_metrics_are_complete(built):
    _, _, _, records, _ = built
    plain = (int, float, str, bool, type(None))

    def check(value):
        if isinstance(value, dict):
            assert all(isinstance(k, str) for k in value)
            for item in value.values():
                check(item)
        elif isinstance(value, list):
            for item in value:
                check(item)
        else:
            assert isinstance(value, plain), type(value)
            assert not (isinstance(value, float) and math.isnan(value))

    check(list(records.features))
    check(records.site["metrics"])
    assert {
        "mse",
        "explained_variance",
        "l0",
        "dead_count",
        "dense_count",
        "ce_loss_clean",
        "ce_loss_spliced",
        "ce_loss_zero_ablated",
        "ce_loss_recovered",
    } <= set(records.site["metrics"])
    for feature in records.features:
        if feature["dead"]:
            assert feature["histogram"] == {"edges": [], "counts": []}
        else:
            assert sum(feature["histogram"]["counts"]) == round(
                feature["density"] * records.site["n_tokens"]
            )


def test_records_are_identical_for_the_same_seed(built, tiny_sae_dir):
    loaded, sae, tokens, records, _ = built
    again = build_records(loaded, STATS)
    assert (
        list(again.features) == list(records.features)
        and again.site["metrics"] == records.site["metrics"]
    )


def test_records_quantile_examples_lie_inside_their_intervals_and_fractions_sum_to_one(built):
    _, _, tokens, records, acts = built
    seq_len = tokens.shape[1]
    for f, feature in enumerate(records.features):
        intervals = feature["quantile_examples"]
        if feature["dead"]:
            assert intervals == []
            continue
        assert 1 <= len(intervals) <= STATS.n_intervals
        assert sum(i["fraction"] for i in intervals) == pytest.approx(1.0)
        for interval in intervals:
            assert 1 <= len(interval["examples"]) <= STATS.interval_samples
            for example in interval["examples"]:
                assert set(example) - {"token_ids", "next_logit"} == EXAMPLE_KEYS
                exact = acts[example["seq"] * seq_len + example["pos"], f].item()
                assert example["act"] == pytest.approx(exact, rel=1e-6)
                assert interval["lo"] <= example["act"] < interval["hi"]


def test_records_cofiring_lists_features_that_fire_together_with_exact_counts(built):
    _, _, _, records, acts = built
    fires = (acts > 0).double()
    both = fires.T @ fires
    for f, feature in enumerate(records.features):
        for entry in feature["cofiring"]:
            g = entry["index"]
            assert g != f and both[f, g] > 0 and 0 < entry["jaccard"] <= 1
            assert entry["count"] == both[f, g]  # exact, not estimated
            assert "estimated" not in entry


def test_records_carry_ablation_per_top_example_only_when_asked(built):
    from dataclasses import replace

    loaded, sae, tokens, records, _ = built
    assert all("ablation" not in e for f in records.features for e in f["top_examples"])
    with_ablation = build_records(
        replace(loaded, tokens=tokens[:3]), replace(STATS, ablation=True, ce_loss=False)
    )
    examples = [e for f in with_ablation.features for e in f["top_examples"]]
    assert examples and all(len(e["ablation"]) == len(e["acts"]) for e in examples)
    assert any(value != 0 for e in examples for value in e["ablation"])


def test_token_ids_are_kept_exactly_on_examples_whose_window_holds_an_invalid_utf8_token(built):
    loaded, _, tokens, records, _ = built
    byte_ids = {int(i) for i in records.site["token_bytes"]}
    with_ids = without_ids = 0
    for feature in with_text(records):
        for example in feature["top_examples"]:
            start = example["window_start"]
            ids = tokens[example["seq"], start : start + len(example["tokens"])].tolist()
            if byte_ids.isdisjoint(ids):
                assert "token_ids" not in example
                without_ids += 1
            else:
                assert example["token_ids"] == ids
                with_ids += 1
    assert with_ids > 0 and without_ids > 0
    for token_id in byte_ids:
        assert (
            loaded.tokenizer.invalid_utf8_bytes(token_id)
            == records.site["token_bytes"][str(token_id)]
        )


def test_a_builds_examples_leave_their_text_to_the_token_store_which_gives_back_the_same(built):
    loaded, _, _, records, _ = built
    examples = [
        e
        for f in records.features
        for e in [*f["top_examples"], *(e for i in f["quantile_examples"] for e in i["examples"])]
    ]
    assert examples and not any("tokens" in e or "token_ids" in e for e in examples)
    features = records.features
    made_with_text = FeatureRecords(features.stats, features.writer.token_texts)
    assert with_text(records) == list(made_with_text)
    assert any("token_ids" in e for f in made_with_text for e in f["top_examples"])


def test_records_built_a_chunk_at_a_time_equal_those_built_at_once(built):
    _, sae, _, records, _ = built
    whole, chunk = list(records.features), records.features.chunk
    records.features.chunk = 3
    try:
        assert list(records.features) == whole
    finally:
        records.features.chunk = chunk
    assert len(records.features) == len(whole) == sae.cfg.d_sae


def test_a_range_of_records_equals_those_features_of_the_whole(built):
    _, _, _, records, _ = built
    whole, chunk = list(records.features), records.features.chunk
    records.features.chunk = 4
    try:
        assert list(records.features.build_range(5, 18)) == whole[5:18]
    finally:
        records.features.chunk = chunk
