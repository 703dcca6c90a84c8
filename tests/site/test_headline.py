"""The generated headline: firing-mass shares from the stratified examples, and what it promotes."""

from __future__ import annotations

import pytest

from saesite.site.headline import firing_shares, generated_headline, headline
from saesite.site.token_markup import TokenDisplay


def _example(token: str, act: float) -> dict:
    return {
        "act": act,
        "seq": 0,
        "pos": 1,
        "window_start": 0,
        "tokens": ["x", token],
        "acts": [0, act],
    }


def _feature(intervals: list[tuple[float, list[tuple[str, float]]]], promotes=("·a", "b")) -> dict:
    return {
        "index": 0,
        "dead": False,
        "top_examples": [_example(" top", 9.0)],
        "quantile_examples": [
            {"lo": 0, "hi": 1, "fraction": fraction, "examples": [_example(t, a) for t, a in ex]}
            for fraction, ex in intervals
        ],
        "logit_effects": {"positive": [{"token": t, "value": 1.0} for t in promotes]},
    }


def test_shares_weight_each_interval_by_its_fraction_of_firings_per_example():
    # interval 1: 90% of firings, two examples of act 1 -> each stands for 45%, mass 0.45 each
    # interval 2: 10% of firings, one example of act 2 -> mass 0.2
    feature = _feature([(0.9, [(" a", 1.0), (" b", 1.0)]), (0.1, [(" c", 2.0)])])
    shares = dict(firing_shares(feature, TokenDisplay()))
    assert shares == pytest.approx({"·a": 0.45 / 1.1, "·b": 0.45 / 1.1, "·c": 0.2 / 1.1})
    assert "·top" not in shares  # the top examples are not a uniform sample of firings


def test_headline_names_the_largest_share_first_with_its_percentage_then_what_it_promotes():
    feature = _feature([(0.5, [(" self", 3.0), (" cls", 1.0)]), (0.5, [(" self", 1.0)])])
    feature["top_examples"] = [_example(" self", 9.0)]
    line = generated_headline(feature, TokenDisplay())
    assert line == "fires on ·self (83%), ·cls · promotes ·a, b"


def test_tokens_below_five_percent_after_the_first_are_left_out():
    feature = _feature([(1.0, [(" big", 99.0), (" tiny", 1.0)])], promotes=())
    line = generated_headline(feature, TokenDisplay())
    assert line == "strongest on ·top · fires on ·big (99%)"


def test_without_quantile_examples_the_top_examples_weighted_by_activation_are_used():
    feature = _feature([])
    assert generated_headline(feature, TokenDisplay()).startswith("fires on ·top (100%)")


def test_a_label_wins_and_a_dead_feature_says_so():
    feature = _feature([(1.0, [(" a", 1.0)])])
    assert headline(feature, "my label", TokenDisplay()) == "my label"
    assert generated_headline({**feature, "dead": True}, TokenDisplay()).startswith("dead")
