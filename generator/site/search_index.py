"""The search index: one compact row per feature, shipped as classic-script ``.js`` shards.

Browsers block ``fetch`` on ``file://``, so the index is code: each shard runs ::

    (window.SAESITE_INDEX=window.SAESITE_INDEX||{shards:[]}).shards.push({"rows":[...],...});

A row is ``[index, density, max_activation, flags, label, fires_on, promotes, suppresses,
headline]``
(``flags``: 1 dead, 2 dense; the three token lists in the visible form pages show, so
``·django`` for ``' django'``). Data goes through ``json_for_script``, so no token can end the
script. At 65,536 features a row is ~100 bytes and a linear scan in the browser is fast enough.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from saesite.records.rounding import rounded
from saesite.site.headline import OwnToken, held_token, own_text
from saesite.site.token_markup import TokenDisplay
from saesite.site.writer import json_for_script

ROW_FIELDS = (
    "index",
    "density",
    "max_activation",
    "flags",
    "label",
    "fires_on",
    "promotes",
    "suppresses",
    "headline",
)
POSITION = {name: position for position, name in enumerate(ROW_FIELDS)}
"""Where each field sits in a row: ``row[POSITION["fires_on"]]``."""
FLAG_DEAD = 1
FLAG_DENSE = 2
SHARD_SIZE = 8192
N_TOKENS = 5
GLOBAL = "SAESITE_INDEX"


def _round(value: float | None) -> float:
    """Three significant digits: enough to sort and show, small to ship."""
    return 0.0 if value is None else rounded(value, 3)


def fires_on(
    feature: Mapping, display: TokenDisplay, n: int = N_TOKENS, own: OwnToken = held_token
) -> list[str]:
    """Visible text of the tokens at the top examples' own positions, most frequent first."""
    counts: Counter[str] = Counter()
    order: dict[str, int] = {}
    for example in feature.get("top_examples") or []:
        text = own_text(example, display, own)
        if text is None:
            continue
        counts[text] += 1
        order.setdefault(text, len(order))
    ranked = sorted(counts, key=lambda t: (-counts[t], order[t]))
    return ranked[:n]


def logit_tokens(
    feature: Mapping, sign: str, display: TokenDisplay, n: int = N_TOKENS
) -> list[str]:
    """Visible text of the first ``n`` tokens of ``logit_effects[sign]``."""
    effects = (feature.get("logit_effects") or {}).get(sign) or []
    return [display.plain(e["token"], e.get("token_id")) for e in effects[:n]]


def index_row(
    feature: Mapping,
    label: str,
    display: TokenDisplay,
    headline: str = "",
    own: OwnToken = held_token,
) -> list:
    """The search-index row of one feature (see ``ROW_FIELDS``; ``own``: where the examples'
    own tokens come from)."""
    flags = (FLAG_DEAD if feature.get("dead") else 0) | (FLAG_DENSE if feature.get("dense") else 0)
    return [
        int(feature["index"]),
        _round(feature.get("density")),
        _round(feature.get("max_activation")),
        flags,
        label,
        fires_on(feature, display, own=own),
        logit_tokens(feature, "positive", display),
        logit_tokens(feature, "negative", display),
        headline,
    ]


def shard_scripts(rows: Sequence[list], shard_size: int = SHARD_SIZE) -> list[tuple[str, str]]:
    """``(relative path, script text)`` per shard: ``search/index-K.js``."""
    shards = []
    for number, start in enumerate(range(0, max(len(rows), 1), shard_size)):
        payload = json_for_script({"start": start, "rows": list(rows[start : start + shard_size])})
        text = f"(window.{GLOBAL}=window.{GLOBAL}||{{shards:[]}}).shards.push({payload});\n"
        shards.append((f"search/index-{number}.js", text))
    return shards
