"""A feature's one-line headline: its label, else a summary from its own statistics::

    fires on ·self (62%), ·cls · promotes .text, ·name

"fires on" ranks the tokens at the examples' own positions by their share of the feature's
*firing mass* (the sum of its activations), estimated from the examples the record holds: the
quantile examples are a stratified sample of every firing (interval i holds ``fraction_i`` of
the firings, its ``m_i`` examples each stand for ``fraction_i / m_i`` of them), so

    share(t) = Σ_i fraction_i / m_i · Σ_{e in i, token(e) = t} act(e)  /  (the same over all t).

Records without quantile examples (toy sites, ``--n-intervals`` 0) use the top examples, each
weighted by its activation. When the token the top examples show most is not among those, the
line starts with it: ``strongest on size · fires on queue (7%), …``. "promotes" lists the first
tokens of ``logit_effects.positive``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping

from saesite.site.token_markup import TokenDisplay

MAX_FIRES_ON = 3
MIN_SHARE = 0.05
"""Tokens after the first are listed only when they carry at least this share of the mass."""
MAX_PROMOTES = 2


OwnToken = Callable[[Mapping], "tuple[str, int | None] | None"]
"""An example's own token (at ``pos``): its text and id (None: not known), or None."""


def held_token(example: Mapping) -> tuple[str, int | None] | None:
    """The own token from the ``tokens`` (and ``token_ids``) the example holds.

    A record whose examples left their text to a token store is read with
    ``ExampleTokens.own_token`` instead (site/token_store.py).
    """
    j = example["pos"] - example["window_start"]
    tokens = example.get("tokens") or []
    if not 0 <= j < len(tokens):
        return None
    ids = example.get("token_ids")
    return tokens[j], ids[j] if ids else None


def own_text(example: Mapping, display: TokenDisplay, own: OwnToken = held_token) -> str | None:
    """The visible text of the example's own token, or None when it is not known."""
    token = own(example)
    return None if token is None else display.plain(*token)


def firing_shares(
    feature: Mapping, display: TokenDisplay, own: OwnToken = held_token
) -> list[tuple[str, float]]:
    """``(visible token text, estimated share of firing mass)``, largest first (ties: first
    seen first)."""
    mass: dict[str, float] = defaultdict(float)
    weighted: list[tuple[Mapping, float]] = []
    for interval in feature.get("quantile_examples") or []:
        examples = interval.get("examples") or []
        fraction = interval.get("fraction")
        if examples and fraction:
            weighted.extend((e, fraction / len(examples)) for e in examples)
    if not weighted:
        weighted = [(e, 1.0) for e in feature.get("top_examples") or []]
    for example, weight in weighted:
        text = own_text(example, display, own)
        act = example.get("act") or 0.0
        if text is not None and act > 0:
            mass[text] += weight * act
    total = sum(mass.values())
    if not total > 0:
        return []
    order = {text: n for n, text in enumerate(mass)}
    ranked = sorted(mass, key=lambda t: (-mass[t], order[t]))
    return [(text, mass[text] / total) for text in ranked]


def _strongest(feature: Mapping, display: TokenDisplay, own: OwnToken) -> str | None:
    """The token at the top examples' own positions most often (ties: the higher example)."""
    texts = [own_text(e, display, own) for e in feature.get("top_examples") or []]
    texts = [t for t in texts if t is not None]
    return max(texts, key=texts.count) if texts else None


def generated_headline(feature: Mapping, display: TokenDisplay, own: OwnToken = held_token) -> str:
    """The summary from statistics (no label): what it fires on and what it promotes."""
    if feature.get("dead"):
        return "dead: never fired on the tokens processed"
    shares = firing_shares(feature, display, own)
    parts = []
    shown = [
        f"{text} ({100 * share:.0f}%)" if n == 0 else text
        for n, (text, share) in enumerate(shares[:MAX_FIRES_ON])
        if n == 0 or share >= MIN_SHARE
    ]
    if shown:
        parts.append("fires on " + ", ".join(shown))
    strongest = _strongest(feature, display, own)
    if strongest is not None and strongest not in {text for text, _ in shares[:MAX_FIRES_ON]}:
        parts.insert(0, f"strongest on {strongest}")
    effects = (feature.get("logit_effects") or {}).get("positive") or []
    promotes = [display.plain(e["token"], e.get("token_id")) for e in effects[:MAX_PROMOTES]]
    if promotes:
        parts.append("promotes " + ", ".join(promotes))
    return " · ".join(parts)


def headline(
    feature: Mapping, label: str, display: TokenDisplay, own: OwnToken = held_token
) -> str:
    """The label when there is one, else the generated summary (``own``: where the examples'
    own tokens come from)."""
    return label or generated_headline(feature, display, own)
