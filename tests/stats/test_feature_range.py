import dataclasses

import pytest
import torch

from saesite.config import StatsConfig
from saesite.stats.feature_range import FeatureRange, feature_ranges, join_feature_stats
from saesite.stats.pass_ import run_pass
from tests.stats.test_pass import tiny_model, tiny_sae, tiny_tokens

HOOK = "blocks.0.mlp.hook_post"


def assert_same_final(left, right):
    """Every field of two FinalStats equal to the last bit (NaN where NaN)."""
    for field in dataclasses.fields(left):
        a, b = getattr(left, field.name), getattr(right, field.name)
        if dataclasses.is_dataclass(a):
            assert_same_final(a, b)
        elif isinstance(a, torch.Tensor):
            assert a.dtype == b.dtype and a.shape == b.shape, field.name
            assert torch.equal(a.nan_to_num(-7.0), b.nan_to_num(-7.0)), field.name
        else:
            assert a == b, field.name


def test_feature_ranges_tile_the_features_in_near_equal_contiguous_widths():
    ranges = feature_ranges(10, 3)
    assert [(r.start, r.stop) for r in ranges] == [(0, 3), (3, 6), (6, 10)]
    assert all(r.d_sae == 10 for r in ranges)
    with pytest.raises(ValueError, match="expected 1..10"):
        feature_ranges(10, 11)
    with pytest.raises(ValueError, match="start < stop"):
        FeatureRange(4, 4, 10)


@pytest.mark.parametrize("exact", [True, False], ids=["exact-cofiring", "sampled-cofiring"])
@pytest.mark.parametrize("n_shards", [2, 3])
def test_feature_shards_joined_equal_one_pass_over_every_feature(exact, n_shards):
    model, sae, tokens = tiny_model(), tiny_sae(64), tiny_tokens()
    cfg = StatsConfig(
        batch_size=4,
        ce_loss=True,
        n_intervals=4,
        cofiring_exact_max_features=1 << 20 if exact else 8,
    )
    whole = run_pass(model, sae, tokens, HOOK, cfg)
    parts = [
        run_pass(model, sae, tokens, HOOK, cfg, features=r)
        for r in reversed(feature_ranges(sae.cfg.d_sae, n_shards))
    ]
    assert all(part.firing.count.shape[0] < sae.cfg.d_sae for part in parts)
    joined = join_feature_stats(parts)
    assert joined.features.is_every
    assert whole.firing.count.sum() > 0 and whole.finalize().cofiring.exact is exact
    assert_same_final(joined.finalize(), whole.finalize())


def test_feature_shards_that_leave_a_gap_are_refused():
    model, sae, tokens = tiny_model(), tiny_sae(64), tiny_tokens(n_seq=2)
    cfg = StatsConfig(batch_size=2)
    first, _, third = feature_ranges(sae.cfg.d_sae, 3)
    parts = [run_pass(model, sae, tokens, HOOK, cfg, features=r) for r in (first, third)]
    with pytest.raises(ValueError, match="does not follow"):
        join_feature_stats(parts)
