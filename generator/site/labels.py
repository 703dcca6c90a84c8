"""Feature labels: read from a CSV or JSON file, merged with a site's own::

    labels = Labels(site, "labels.csv", n_features)   # checks ids against the site
    labels.of(record)                                  # the label a page shows, or None
    Labels(site, "labels.json", n, sae="blocks.6")      # one SAE of a site of several

A site of several SAEs takes one file by SAE id (``load_sae_labels``: JSON
``{"<sae id>": {"<id>": "<label>"}}`` or CSV ``sae,id,label``), checked before the pass
(``check_sae_labels``).

Labels are data: pages escape them like tokens, and control characters show as ``U+XXXX``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from pathlib import Path

import orjson

from saesite.errors import SaesiteError


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SaesiteError(f"labels file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SaesiteError(
            f"labels file {str(path)!r} cannot be read as UTF-8 text: {err}"
        ) from None


def _add(labels: dict[int, str], key: object, label: object, path: Path, where: str) -> None:
    """``labels[int(key)] = label``, or one line saying what was wrong with the entry."""
    try:
        feature_id = int(str(key).strip())
    except ValueError:
        raise SaesiteError(
            f"labels file {str(path)!r} {where}: feature id {key!r} is not an integer"
        ) from None
    if feature_id < 0:
        raise SaesiteError(
            f"labels file {str(path)!r} {where}: feature id {feature_id} is negative"
        )
    if not isinstance(label, str):
        raise SaesiteError(f"labels file {str(path)!r} {where}: label {label!r} is not a string")
    if feature_id in labels:
        raise SaesiteError(
            f"labels file {str(path)!r} {where}: feature {feature_id} is labelled twice"
        )
    labels[feature_id] = label


def _json_object(text: str, path: Path, expected: str) -> dict:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as err:
        raise SaesiteError(f"labels file {str(path)!r} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise SaesiteError(
            f"labels file {str(path)!r} holds a JSON {type(data).__name__}; expected {expected}"
        )
    return data


def load_labels(path: str | Path) -> dict[int, str]:
    """Feature labels from CSV (``id,label``; header optional) or JSON (``{"id": "label"}``)."""
    path = Path(path)
    text = _read(path)
    labels: dict[int, str] = {}
    if path.suffix.lower() == ".json":
        data = _json_object(text, path, 'an object {"<feature id>": "<label>"}')
        for key, label in data.items():
            _add(labels, key, label, path, f"key {key!r}")
        return labels
    for line, (key, label) in _data_rows(text, path, "id,label"):
        _add(labels, key, label, path, f"line {line}")
    return labels


def load_sae_labels(path: str | Path) -> dict[str, dict[int, str]]:
    """The labels of a site of several SAEs, by SAE id (its folder under ``sae/``): JSON
    ``{"<sae id>": {"<feature id>": "<label>"}}`` or CSV ``sae,id,label`` (header optional)."""
    path = Path(path)
    text = _read(path)
    by_sae: dict[str, dict[int, str]] = {}
    if path.suffix.lower() == ".json":
        expected = 'an object {"<sae id>": {"<feature id>": "<label>"}}'
        for sae, entries in _json_object(text, path, expected).items():
            if not isinstance(entries, dict):
                raise SaesiteError(
                    f"labels file {str(path)!r} key {sae!r} holds a JSON "
                    f"{type(entries).__name__}; expected {expected}"
                )
            labels = by_sae.setdefault(sae, {})
            for key, label in entries.items():
                _add(labels, key, label, path, f"key {sae!r} / {key!r}")
        return by_sae
    rows = _data_rows(text, path, "sae,id,label", " for a site of several SAEs")
    for line, (sae, key, label) in rows:
        _add(by_sae.setdefault(sae.strip(), {}), key, label, path, f"line {line}")
    return by_sae


def check_sae_labels(path: str | Path, widths: Mapping[str, int]) -> None:
    """Check a several-SAE labels file against the site's SAEs (id -> number of features): an
    SAE id it names must be one of them, a feature id below that SAE's width."""
    for sae, labels in load_sae_labels(path).items():
        if sae not in widths:
            raise SaesiteError(
                f"labels file {str(path)!r} labels SAE {sae!r}; this site's SAEs are "
                f"{', '.join(widths)} (expected one of those ids, as under sae/ in the site)"
            )
        outside = sorted(i for i in labels if i >= widths[sae])
        if outside:
            raise SaesiteError(
                f"labels file {str(path)!r} labels feature {outside[0]} of SAE {sae!r}, "
                f"which has {widths[sae]} features (ids 0–{widths[sae] - 1})"
            )


def _data_rows(
    text: str, path: Path, columns: str, what: str = ""
) -> Iterator[tuple[int, list[str]]]:
    """``(line, cells)`` of each CSV row with the ``columns`` named (``"id,label"``), skipping
    blank lines and a header: a first row whose ``id`` cell is not an integer (with as many
    cells, when ``id`` is not the first column)."""
    names = columns.split(",")
    at = names.index("id")
    for line, row in _csv_rows(text, path):
        if not row or not any(cell.strip() for cell in row):
            continue
        header = at == 0 or len(row) == len(names)
        if line == 1 and header and len(row) > at and not row[at].strip().isdigit():
            continue
        if len(row) != len(names):
            raise SaesiteError(
                f"labels file {str(path)!r} line {line} has {len(row)} columns; "
                f"expected {len(names)}{what}: {columns}"
            )
        yield line, row


def _csv_rows(text: str, path: Path) -> list[tuple[int, list[str]]]:
    """``(first line, cells)`` per CSV row; a quote left open is an error naming its line
    (without ``strict`` the csv module silently swallows the rest of the file into one cell)."""
    reader = csv.reader(io.StringIO(text), strict=True)
    rows = []
    start = 1
    try:
        for row in reader:
            rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as err:
        raise SaesiteError(
            f"labels file {str(path)!r} line {start}: not valid CSV ({err}); expected "
            'id,label rows, a label with commas or quotes in "double quotes" closed on its line'
        ) from None
    return rows


class Labels:
    """Labels by feature id: site.json ``labels``, then a record's own, then the labels file (an
    empty label in the file removes one)."""

    def __init__(
        self, site: Mapping, labels_path: str | None, n_features: int, sae: str | None = None
    ):
        """``sae``: the SAE's id in a site of several, whose labels file is by SAE
        (``load_sae_labels``; ``check_sae_labels`` checks it)."""
        self.site = {int(k): v for k, v in (site.get("labels") or {}).items() if v}
        if labels_path and sae is not None:
            self.file = load_sae_labels(labels_path).get(sae, {})
        else:
            self.file = load_labels(labels_path) if labels_path else {}
        outside = sorted(i for i in self.file if i >= n_features)
        if outside:
            raise SaesiteError(
                f"labels file {labels_path!r} labels feature {outside[0]}, but the "
                f"site has {n_features} features (ids 0–{n_features - 1})"
            )

    def of(self, feature: Mapping) -> str | None:
        index = int(feature["index"])
        label = feature.get("label") or self.site.get(index)
        label = self.file.get(index, label)
        return label or None
