"""Cross-SAE records: how the features of a multi-SAE site's SAEs correspond (their decoders).

Two SAEs are related when they read the same hook, or the same kind of hook one block apart
(``blocks.3.hook_resid_post`` and ``blocks.4.hook_resid_post``) with one width. For every
related pair the records hold, per feature, its ``CROSS_NEIGHBOURS`` closest features of the
other SAE by decoder cosine (``stats/cross_sae.py``); for two widths on one hook, the features
of the wider SAE the narrower feature splits into; per same-hook pair, the ARENA comparison
(the histogram of each feature's best cosine, shares above 0.9 and 0.7, unmatched features)
both ways; per pair one layer apart, how many of the lower SAE's features have a close match
one layer up. Plain lists and dicts only: the renderer imports no torch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from jaxtyping import Float
from torch import Tensor

from saesite.records.rounding import rounded
from saesite.stats.cross_sae import (
    best_match,
    cross_neighbours,
    match_summary,
    split_children,
)

CROSS_NEIGHBOURS = 5
"""Closest features listed per feature and other related SAE."""
SPLIT_THRESHOLD = 0.5
"""A wide feature counts as a split of its closest narrow feature from this cosine on."""
SAME_HOOK = "same hook"
LAYER_UP = "one layer up"
LAYER_DOWN = "one layer down"


@dataclass(frozen=True, kw_only=True)
class SaeDecoder:
    """What the cross-SAE records read of one SAE: its hook and decoder."""

    hook: str
    W_dec: Float[Tensor, "d_sae d_in"]


def _split(hook: str) -> tuple[int | None, str]:
    match = re.match(r"blocks\.(\d+)\.(.+)$", hook)
    return (int(match.group(1)), match.group(2)) if match else (None, hook)


def relation(a: SaeDecoder, b: SaeDecoder) -> str | None:
    """How SAE ``b`` sits relative to ``a``: the same hook, one layer up or down, else None."""
    if a.W_dec.shape[1] != b.W_dec.shape[1]:
        return None
    if a.hook == b.hook:
        return SAME_HOOK
    (block_a, kind_a), (block_b, kind_b) = _split(a.hook), _split(b.hook)
    if block_a is None or block_b is None or kind_a != kind_b:
        return None
    return {1: LAYER_UP, -1: LAYER_DOWN}.get(block_b - block_a)


@dataclass(frozen=True, kw_only=True)
class PairLinks:
    """Links from each feature of SAE ``a`` to SAE ``b``."""

    a: int
    b: int
    relation: str
    indices: list[list[int]]
    """Per feature of ``a``: its closest features of ``b``, closest first."""
    cosines: list[list[float]]
    splits: list[list[tuple[int, float]]] | None = None
    """Per feature of ``a`` (the narrower SAE on one hook): the features of ``b`` it splits
    into, with their cosines; None when ``b`` is not wider on the same hook."""


@dataclass(frozen=True, kw_only=True)
class CrossRecords:
    links: list[PairLinks]
    comparisons: list[dict]
    """Per pair on one hook: ``{"a", "b", "hook", "a_in_b", "b_in_a"}``, each direction a
    ``stats.cross_sae.match_summary`` of the best cosines."""
    layer_matches: list[dict]
    """Per pair one layer apart: ``{"lower", "upper", "n_features", "share_above"}``."""

    def links_of(self, sae: int) -> list[PairLinks]:
        return [pair for pair in self.links if pair.a == sae]


def _summary(best_cosine: Tensor) -> dict:
    summary = match_summary(best_cosine)
    summary["n_features"] = int(best_cosine.numel())
    return summary


def cross_records(saes: Sequence[SaeDecoder], k: int = CROSS_NEIGHBOURS) -> CrossRecords:
    """Links, comparisons and layer matches between every related pair of ``saes``."""
    links, comparisons, layer_matches = [], [], []
    for a, sae_a in enumerate(saes):
        for b, sae_b in enumerate(saes):
            rel = relation(sae_a, sae_b) if a != b else None
            if rel is None:
                continue
            found = cross_neighbours(sae_a.W_dec, sae_b.W_dec, k)
            narrower = sae_a.W_dec.shape[0] < sae_b.W_dec.shape[0]
            children = None
            if rel == SAME_HOOK and narrower:
                children = [
                    [(child, short_one(c)) for child, c in group]
                    for group in split_children(sae_a.W_dec, sae_b.W_dec, SPLIT_THRESHOLD)
                ]
            links.append(
                PairLinks(
                    a=a,
                    b=b,
                    relation=rel,
                    indices=found.indices.tolist(),
                    cosines=rounded(found.cosines),
                    splits=children,
                )
            )
            if rel == SAME_HOOK and a < b:
                comparisons.append(
                    {
                        "a": a,
                        "b": b,
                        "hook": sae_a.hook,
                        "a_in_b": _summary(found.best_cosine),
                        "b_in_a": _summary(best_match(sae_b.W_dec, sae_a.W_dec)[1]),
                    }
                )
            if rel == LAYER_UP:
                summary = _summary(found.best_cosine)
                layer_matches.append(
                    {
                        "lower": a,
                        "upper": b,
                        "n_features": summary["n_features"],
                        "share_above": summary["share_above"],
                    }
                )
    return CrossRecords(links=links, comparisons=comparisons, layer_matches=layer_matches)


def short_one(value: float) -> float:
    """One cosine to the 4 significant digits the records keep."""
    return rounded(value)
