"""Type checks of the JSON a site is re-rendered from (``site.json``, feature files, a training
log): a hand-edited file with a value of the wrong type is one line naming the file, the field
and what was expected (docs/schema.md), not a traceback from deep inside a template."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from saesite.errors import SaesiteError

Check = Callable[[object], bool]


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _or_null(check: Check) -> Check:
    return lambda value: value is None or check(value)


def _list_of(check: Check) -> Check:
    return lambda value: isinstance(value, list) and all(check(v) for v in value)


def STR(value: object) -> bool:  # noqa: N802 - a check named after the type it accepts
    return isinstance(value, str)


def BOOL(value: object) -> bool:  # noqa: N802
    return value is True or value is False


def LIST(value: object) -> bool:  # noqa: N802
    return isinstance(value, list)


def DICT(value: object) -> bool:  # noqa: N802
    return isinstance(value, dict)


NUMBER, INT = _number, _int
EXPECTED = {
    _number: "a number",
    _int: "an integer",
    STR: "a string",
    BOOL: "true or false",
    LIST: "a list",
    DICT: "an object",
}

SITE_FIELDS: dict[str, Check] = {
    "model": STR,
    "hook": STR,
    "d_sae": INT,
    "n_tokens": INT,
    "n_seq": INT,
    "seq_len": INT,
    "features": LIST,
    "metrics": DICT,
    "labels": DICT,
    "token_bytes": DICT,
    "config": DICT,
    "density_histogram": DICT,
}
ENTRY_FIELDS: dict[str, Check] = {"index": INT, "html": STR, "records": STR, "json": STR}
ENTRY_REQUIRED = ("index", "html")
"""And ``records`` or (a site built before records files) ``json``."""
FEATURE_FIELDS: dict[str, Check] = {
    "index": INT,
    "label": _or_null(STR),
    "density": NUMBER,
    "log10_density": _or_null(NUMBER),
    "max_activation": NUMBER,
    "mean_activation": NUMBER,
    "dead": BOOL,
    "dense": BOOL,
    "histogram": DICT,
    "top_examples": LIST,
    "quantile_examples": LIST,
    "logit_effects": DICT,
    "logit_histogram": _or_null(DICT),
    "neuron_exposures": LIST,
    "neuron_share": _or_null(NUMBER),
    "neighbours": LIST,
    "cofiring": LIST,
    "encoder_decoder_cosine": NUMBER,
    "token_separator": STR,
}
EXAMPLE_FIELDS: dict[str, Check] = {
    "act": NUMBER,
    "seq": INT,
    "pos": INT,
    "window_start": INT,
    "tokens": _list_of(STR),
    "token_ids": _list_of(INT),
    "acts": _list_of(NUMBER),
    "ablation": _list_of(NUMBER),
    "next_logit": NUMBER,
}
TRAINING_FIELDS: dict[str, Check] = {
    "steps": LIST,
    "resample_events": LIST,
    "final_density": _list_of(NUMBER),
    "config": DICT,
    "held_out": DICT,
}


def _describe(check: Check) -> str:
    return EXPECTED.get(check, "a value of the documented type")


def check_fields(data: object, fields: Mapping[str, Check], source: str, where: str = "") -> None:
    """Raise a one-line ``SaesiteError`` for the first field of ``data`` with the wrong type."""
    if not isinstance(data, dict):
        raise SaesiteError(
            f"{source}: {where or 'the file'} is a {type(data).__name__}; expected an object"
        )
    for key, check in fields.items():
        if key in data and not check(data[key]):
            raise SaesiteError(
                f"{source}: {where}{key} is {data[key]!r:.60}; expected {_describe(check)} "
                "(docs/schema.md)"
            )


METRIC_LISTS: dict[str, Check] = {"excluded_token_ids": _list_of(INT)}
"""The metrics that are not numbers: the token ids left out of the others."""


def _check_numbers(data: Mapping, source: str, where: str) -> None:
    for key, value in data.items():
        check = METRIC_LISTS.get(key, _or_null(NUMBER))
        if not check(value):
            what = "a list of integers" if key in METRIC_LISTS else "a number"
            raise SaesiteError(f"{source}: {where}{key} is {value!r:.60}; expected {what}")


def check_site(site: object, source: str) -> None:
    """``site.json`` as ``render`` reads it: field types, feature entries, numeric metrics."""
    check_fields(site, SITE_FIELDS, source)
    assert isinstance(site, dict)
    for i, entry in enumerate(site.get("features") or []):
        check_fields(entry, ENTRY_FIELDS, source, f"features[{i}].")
        for key in ENTRY_REQUIRED:
            if key not in entry:
                raise SaesiteError(f"{source}: features[{i}] has no {key!r}; expected one")
        if "records" not in entry and "json" not in entry:
            raise SaesiteError(
                f"{source}: features[{i}] has neither 'records' nor 'json'; expected the path "
                "of its folder's records file"
            )
    _check_numbers(site.get("metrics") or {}, source, "metrics.")
    if site.get("training") is not None:
        check_training_log(site["training"], source, "training.")


def check_feature(record: object, source: str) -> None:
    """A feature file's record: field types, and each example's."""
    check_fields(record, FEATURE_FIELDS, source)
    assert isinstance(record, dict)
    if "index" not in record:
        raise SaesiteError(f"{source}: no 'index'; expected the feature id")
    for key in ("top_examples",):
        for i, example in enumerate(record.get(key) or []):
            check_fields(example, EXAMPLE_FIELDS, source, f"{key}[{i}].")
    for i, interval in enumerate(record.get("quantile_examples") or []):
        check_fields(interval, {"examples": LIST}, source, f"quantile_examples[{i}].")
        for j, example in enumerate(interval.get("examples") or []):
            check_fields(example, EXAMPLE_FIELDS, source, f"quantile_examples[{i}].examples[{j}].")


def check_training_log(training: object, source: str, where: str = "") -> None:
    """A training log (``training_log.json`` or ``site.json`` ``training``): its lists and the
    numbers in its steps, resampling events and held-out metrics."""
    check_fields(training, TRAINING_FIELDS, source, where)
    assert isinstance(training, dict)
    for i, step in enumerate(training.get("steps") or []):
        if not isinstance(step, dict):
            raise SaesiteError(f"{source}: {where}steps[{i}] is not an object; expected one")
        _check_numbers(step, source, f"{where}steps[{i}].")
    for i, event in enumerate(training.get("resample_events") or []):
        if not isinstance(event, dict):
            raise SaesiteError(
                f"{source}: {where}resample_events[{i}] is not an object; expected one"
            )
        _check_numbers(event, source, f"{where}resample_events[{i}].")
    _check_numbers(training.get("held_out") or {}, source, f"{where}held_out.")
