"""The contexts of a multi-SAE site's own pages: the overview and the comparison of two SAEs
on one hook (ARENA's plot: each feature's best decoder cosine in the other SAE). No torch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from saesite.records.cross import CrossRecords
from saesite.site.page_context import fmt_int, fmt_num, fmt_pct, site_facts
from saesite.site.plots import histogram_svg

if TYPE_CHECKING:
    from saesite.site.multi_site import Layout, SaeSite

MAX_UNMATCHED_SHOWN = 1000
"""Unmatched features linked per direction (the page says how many more there are)."""


def _shares(share_above: Mapping[str, float]) -> list[dict]:
    return [
        {"threshold": threshold, "share": fmt_pct(share)}
        for threshold, share in sorted(share_above.items(), key=lambda item: -float(item[0]))
    ]


def direction(summary: Mapping, source: int, target: int, layout: Layout, page: str) -> dict:
    """One direction of a comparison: the features of ``source`` against ``target``."""
    from saesite.site.multi_site import relative

    name, other = layout.ids[source], layout.ids[target]
    unmatched = summary["unmatched"]
    shown = unmatched[:MAX_UNMATCHED_SHOWN]
    return {
        "name": name,
        "other": other,
        "href": relative(layout.prefix(source) + "index.html", page),
        "other_href": relative(layout.prefix(target) + "index.html", page),
        "n_features": fmt_int(summary["n_features"]),
        "histogram": histogram_svg(
            summary["edges"],
            summary["counts"],
            x_label=f"max decoder cosine with {other}",
            y_label="features",
        ),
        "shares": _shares(summary["share_above"]),
        "n_unmatched": fmt_int(len(unmatched)),
        "unmatched": [
            {"index": index, "href": relative(layout.feature(source, index), page)}
            for index in shown
        ],
        "more_unmatched": fmt_int(len(unmatched) - len(shown)),
        "has_more_unmatched": len(unmatched) > len(shown),
    }


def compare_context(comparison: Mapping, layout: Layout, page: str) -> dict:
    """``compare.html``: both directions of a same-hook pair."""
    a, b = comparison["a"], comparison["b"]
    return {
        "page_title": f"{layout.ids[a]} and {layout.ids[b]}",
        "hook": comparison["hook"],
        "directions": [
            direction(comparison["a_in_b"], a, b, layout, page),
            direction(comparison["b_in_a"], b, a, layout, page),
        ],
    }


def _metric(metrics: Mapping, key: str, fmt) -> str:
    value = metrics.get(key)
    return "–" if value is None else fmt(value)


def overview_context(
    saes: Sequence[SaeSite], cross: CrossRecords, layout: Layout, shards: Sequence[Sequence[str]]
) -> dict:
    """``multi_index.html``: the SAEs with their metrics, the comparisons and layer matches,
    and the search over every SAE (``shards[k]``: SAE k's search scripts)."""
    rows = []
    for k, sae in enumerate(saes):
        site, metrics = sae.site, sae.site.get("metrics") or {}
        architecture = (site.get("sae") or {}).get("architecture") or ""
        rows.append(
            {
                "name": sae.id,
                "href": layout.prefix(k) + "index.html",
                "hook": str(site.get("hook", "–")),
                "architecture": str(architecture),
                "d_sae": fmt_int(site.get("d_sae")),
                "l0": _metric(metrics, "l0", fmt_num),
                "explained_variance": _metric(metrics, "explained_variance", fmt_num),
                "ce_loss_recovered": _metric(metrics, "ce_loss_recovered", fmt_num),
                "dead": _metric(metrics, "dead_count", fmt_int),
            }
        )
    comparisons = []
    for c in cross.comparisons:
        a, b = c["a"], c["b"]
        comparisons.append(
            {
                "href": layout.compare(a, b),
                "a": layout.ids[a],
                "b": layout.ids[b],
                "hook": c["hook"],
                "a_in_b": _shares(c["a_in_b"]["share_above"]),
                "b_in_a": _shares(c["b_in_a"]["share_above"]),
            }
        )
    layers = [
        {
            "lower": layout.ids[m["lower"]],
            "upper": layout.ids[m["upper"]],
            "n_features": fmt_int(m["n_features"]),
            "shares": _shares(m["share_above"]),
        }
        for m in cross.layer_matches
    ]
    first = saes[0].site
    shared = ("model", "n_tokens", "n_seq", "seq_len")
    facts = site_facts({key: value for key, value in first.items() if key in shared})
    return {
        "facts": [f for f in facts["facts"] if f[0] in ("model", "tokens")],
        "saes_rows": rows,
        "comparisons": comparisons,
        "layer_matches": layers,
        "search_scripts": [{"sae": k, "srcs": list(srcs)} for k, srcs in enumerate(shards)],
        "features_per_folder": layout.features_per_folder,
        "folder_width": layout.width(0),
        "description": f"{len(saes)} SAEs of {first.get('model', '?')}: features, search, "
        "comparisons",
    }
