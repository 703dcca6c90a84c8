"""Cross-SAE correspondence equals a brute-force search over every pair of decoder rows."""

from __future__ import annotations

import pytest
import torch

from saesite.stats.cross_sae import (
    HISTOGRAM_EDGES,
    best_match,
    cross_neighbours,
    match_summary,
    splits,
)


def decoders(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(37, 16, generator=gen) * 3, torch.randn(53, 16, generator=gen)


def test_cross_neighbours_equal_a_brute_force_cosine_search_in_any_chunking():
    a, b = decoders()
    brute = torch.nn.functional.cosine_similarity(a[:, None], b[None], dim=2)
    expected = brute.topk(5, dim=1)
    for chunk in (1, 7, 1024):
        found = cross_neighbours(a, b, 5, chunk_size=chunk)
        torch.testing.assert_close(found.cosines, expected.values)
        assert torch.equal(found.indices, expected.indices)
        assert torch.equal(found.best_index, brute.argmax(dim=1))


def test_an_sae_against_itself_matches_every_feature_at_cosine_one():
    a, _ = decoders()
    index, cosine = best_match(a, a)
    assert torch.equal(index, torch.arange(37))
    summary = match_summary(cosine)
    assert summary["counts"][-1] == 37 and sum(summary["counts"]) == 37
    assert summary["share_above"] == {"0.9": 1.0, "0.7": 1.0}
    assert summary["unmatched"] == []
    assert len(summary["edges"]) == HISTOGRAM_EDGES


def test_summary_counts_shares_and_lists_the_unmatched_lowest_first():
    summary = match_summary(torch.tensor([0.95, 0.8, 0.1, -0.3, 0.69, 1.0]))
    assert sum(summary["counts"]) == 6
    assert summary["share_above"] == {"0.9": pytest.approx(2 / 6), "0.7": pytest.approx(3 / 6)}
    assert summary["unmatched"] == [3, 2, 4]


def test_a_wide_sae_built_by_splitting_features_is_found_split():
    gen = torch.Generator().manual_seed(2)
    narrow = torch.nn.functional.normalize(torch.randn(6, 32, generator=gen), dim=1)
    # feature 0 splits into two close copies, feature 3 into three; the rest stay single
    children = {0: [0, 1], 3: [2, 3, 4], 1: [5], 2: [6], 4: [7], 5: [8]}
    wide = torch.zeros(9, 32)
    for parent, kids in children.items():
        for kid in kids:
            wide[kid] = narrow[parent] + 0.2 * torch.randn(32, generator=gen) / 32**0.5
    found = splits(narrow, wide, threshold=0.7)
    assert [sorted(group) for group in found] == [children[p] for p in range(6)]
