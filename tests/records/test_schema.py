"""docs/schema.md against records/schema.py: every field documented, nothing else documented."""

import re
from pathlib import Path

import pytest

from saesite.records.schema import (
    METRIC_KEYS,
    Example,
    FeatureRecord,
    SiteRecord,
    example_record,
    feature_record,
    site_record,
)

SCHEMA_MD = Path(__file__).resolve().parents[2] / "docs" / "schema.md"


def fields(record_type) -> set[str]:
    return set(record_type.__required_keys__) | set(record_type.__optional_keys__)


def documented_tables() -> dict[str, set[str]]:
    """Per table of docs/schema.md, the line that introduces it -> the keys its rows name."""
    tables: dict[str, set[str]] = {}
    intro, rows = "", None
    for line in [*SCHEMA_MD.read_text().splitlines(), ""]:
        if line.startswith("|"):
            rows = [] if rows is None else rows
            rows.append(line)
            continue
        if rows is not None:
            keys = set()
            for row in rows[2:]:  # the header and the |---| line
                keys.update(re.findall(r"`([^`]+)`", row.split("|")[1]))
            tables.setdefault(intro, keys)
            rows = None
        if line.strip():
            intro = line.strip()
    return tables


@pytest.mark.parametrize(
    "intro, record_fields",
    [
        ("## `site.json`", fields(SiteRecord)),
        ("`metrics`:", set(METRIC_KEYS)),
        ("Each record:", fields(FeatureRecord)),
        ("An *example*:", fields(Example)),
    ],
)
def test_docs_schema_documents_every_record_field_and_no_other(intro, record_fields):
    assert documented_tables()[intro] == record_fields


def test_the_constructors_make_exactly_the_typed_fields():
    example = example_record(act=1.0, seq=0, pos=2, window_start=0, acts=[0, 0, 1.0])
    assert set(example) == set(Example.__required_keys__)
    full = example_record(
        **example,
        tokens=["a", "b", "c"],
        token_ids=[1, 2, 3],
        ablation=[0.0, 0.0, 0.1],
        next_logit=-0.25,
    )
    assert set(full) == fields(Example)
    # the order a written record keeps (JSON bytes): the text sits before the activations
    assert list(full)[:6] == ["act", "seq", "pos", "window_start", "tokens", "acts"]
    feature = feature_record(
        index=3,
        density=0.0,
        max_activation=0.0,
        mean_activation=0.0,
        dead=True,
        dense=False,
        histogram={"edges": [], "counts": []},
        top_examples=[],
        quantile_examples=[],
        neighbours=[],
        encoder_decoder_cosine=0.5,
    )
    assert set(feature) == set(FeatureRecord.__required_keys__)
    assert feature["log10_density"] is None and feature["logit_effects"]["positive"] == []
    site = site_record(
        model="m",
        hook="h",
        d_in=4,
        d_sae=8,
        sae={},
        n_tokens=16,
        n_seq=2,
        seq_len=8,
        config={},
        metrics={"l0": 1.0},
        density_histogram={"edges": [], "counts": [], "dead": 8},
    )
    assert set(site) == set(SiteRecord.__required_keys__)


def test_a_metric_the_contract_does_not_name_is_refused():
    with pytest.raises(ValueError, match="metrics \\['l1'\\]"):
        site_record(
            model="m",
            hook="h",
            d_in=4,
            d_sae=8,
            sae={},
            n_tokens=16,
            n_seq=2,
            seq_len=8,
            config={},
            metrics={"l1": 1.0},
            density_histogram={},
        )
