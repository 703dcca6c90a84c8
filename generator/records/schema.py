"""The records contract as code: ``site.json`` and the per-feature JSON, typed, with one
constructor each. No torch here.

Every build makes its records through these constructors: the language-model build
(``records/build.py``), the toy build (``toy/sae.py``, ``toy/site.py``) and the test fixtures
(``tests/fixtures/sample_records.py``). ``docs/schema.md`` documents each field;
``tests/records/test_schema.py`` checks that it documents every field here and nothing else.
Values are plain ``int | float | str | bool | None | list | dict``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypedDict

from saesite import __version__


class Histogram(TypedDict):
    edges: list[float]
    counts: list[int]


class _ExampleFields(TypedDict):
    act: float
    seq: int
    pos: int
    window_start: int
    acts: list[float]


class Example(_ExampleFields, total=False):
    """One token in its context window (docs/schema.md, "An *example*")."""

    tokens: list[str]
    """Left out where a token store holds the dataset's text (``site/token_store.py``)."""
    token_ids: list[int]
    ablation: list[float]
    next_logit: float


class Interval(TypedDict):
    lo: float
    hi: float
    fraction: float
    examples: list[Example]


class LogitEffects(TypedDict):
    positive: list[dict]
    negative: list[dict]


class _FeatureFields(TypedDict):
    index: int
    label: str | None
    density: float
    log10_density: float | None
    max_activation: float
    mean_activation: float
    dead: bool
    dense: bool
    histogram: Histogram
    top_examples: list[Example]
    quantile_examples: list[Interval]
    logit_effects: LogitEffects
    logit_histogram: Histogram | None
    neuron_exposures: list[dict]
    neuron_share: float | None
    neighbours: list[dict]
    cofiring: list[dict]
    encoder_decoder_cosine: float


class FeatureRecord(_FeatureFields, total=False):
    """One feature's JSON file (docs/schema.md, "Feature JSON")."""

    token_separator: str


class _SiteFields(TypedDict):
    saesite_version: str
    model: str
    hook: str
    d_in: int | None
    d_sae: int
    sae: dict
    n_tokens: int
    n_seq: int
    seq_len: int
    config: dict
    metrics: dict
    density_histogram: dict
    token_bytes: dict[str, str]
    labels: dict[str, str]


class SiteRecord(_SiteFields, total=False):
    """``site.json`` (docs/schema.md, "site.json"); ``features`` is added by the renderer."""

    features: list[dict]
    training: dict
    toy: dict


METRIC_KEYS = (
    "mse",
    "explained_variance",
    "l0",
    "dead_count",
    "dense_count",
    "ce_loss_clean",
    "ce_loss_spliced",
    "ce_loss_zero_ablated",
    "ce_loss_recovered",
    "ce_loss_recovered_se",
    "ce_loss_tokens",
    "l0_all_tokens",
    "n_tokens_measured",
    "excluded_token_ids",
)
"""Keys ``metrics`` may hold (a toy site has only the counts). ``l0``, ``mse``,
``explained_variance`` and the CE losses are over the ``n_tokens_measured`` tokens whose ids are
not in ``excluded_token_ids`` (BOS / EOS / padding unless ``config.stats.include_special_tokens``);
``l0_all_tokens`` counts every token."""


def example_record(
    *,
    act: float,
    seq: int,
    pos: int,
    window_start: int,
    acts: list[float],
    tokens: list[str] | None = None,
    token_ids: list[int] | None = None,
    ablation: list[float] | None = None,
    next_logit: float | None = None,
) -> Example:
    """An example; ``tokens``, ``token_ids``, ``ablation`` and ``next_logit`` only when given."""
    record: Example = {"act": act, "seq": seq, "pos": pos, "window_start": window_start}  # type: ignore[typeddict-item]
    if tokens is not None:
        record["tokens"] = tokens  # before acts: the key order is the JSON's bytes
    record["acts"] = acts
    if token_ids is not None:
        record["token_ids"] = token_ids
    if ablation is not None:
        record["ablation"] = ablation
    if next_logit is not None:
        record["next_logit"] = next_logit
    return record


def feature_record(
    *,
    index: int,
    density: float,
    max_activation: float,
    mean_activation: float,
    dead: bool,
    dense: bool,
    histogram: Histogram,
    top_examples: list[Example],
    quantile_examples: list[Interval],
    neighbours: list[dict],
    encoder_decoder_cosine: float,
    label: str | None = None,
    logit_effects: LogitEffects | None = None,
    logit_histogram: Histogram | None = None,
    neuron_exposures: list[dict] | None = None,
    neuron_share: float | None = None,
    cofiring: list[dict] | None = None,
    token_separator: str | None = None,
) -> FeatureRecord:
    """A feature record; ``log10_density`` follows from ``density`` (None when it is 0).

    Left out, the weight-derived fields are empty: no logit effects, no neuron exposures,
    no co-firing (as on a toy site).
    """
    record: FeatureRecord = {
        "index": index,
        "label": label,
        "density": density,
        "log10_density": math.log10(density) if density > 0 else None,
        "max_activation": max_activation,
        "mean_activation": mean_activation,
        "dead": dead,
        "dense": dense,
        "histogram": histogram,
        "top_examples": top_examples,
        "quantile_examples": quantile_examples,
        "logit_effects": logit_effects or {"positive": [], "negative": []},
        "logit_histogram": logit_histogram,
        "neuron_exposures": neuron_exposures if neuron_exposures is not None else [],
        "neuron_share": neuron_share,
        "neighbours": neighbours,
        "cofiring": cofiring if cofiring is not None else [],
        "encoder_decoder_cosine": encoder_decoder_cosine,
    }
    if token_separator is not None:
        record["token_separator"] = token_separator
    return record


def site_record(
    *,
    model: str,
    hook: str,
    d_in: int | None,
    d_sae: int,
    sae: dict,
    n_tokens: int,
    n_seq: int,
    seq_len: int,
    config: dict,
    metrics: dict,
    density_histogram: dict,
    token_bytes: dict[str, str] | None = None,
    training: dict | None = None,
    toy: dict | None = None,
    features: Sequence[dict] | None = None,
) -> SiteRecord:
    """The site record; ``labels`` start empty (the renderer fills them from ``--labels``)."""
    unknown = set(metrics) - set(METRIC_KEYS)
    if unknown:
        raise ValueError(f"metrics {sorted(unknown)}: expected only {', '.join(METRIC_KEYS)}")
    record: SiteRecord = {
        "saesite_version": __version__,
        "model": model,
        "hook": hook,
        "d_in": d_in,
        "d_sae": d_sae,
        "sae": sae,
        "n_tokens": n_tokens,
        "n_seq": n_seq,
        "seq_len": seq_len,
        "config": config,
        "metrics": metrics,
        "density_histogram": density_histogram,
        "token_bytes": dict(token_bytes or {}),
        "labels": {},
    }
    if training is not None:
        record["training"] = training
    if toy is not None:
        record["toy"] = toy
    if features is not None:
        record["features"] = list(features)
    return record
