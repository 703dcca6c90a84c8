"""Feature labels: read from a CSV or JSON file, merged with a site's own::

    labels = Labels(site, "labels.csv", n_features)   # checks ids against the site
    labels.of(record)                                  # the label a page shows, or None

Labels are data: pages escape them like tokens, and control characters show as ``U+XXXX``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path

import orjson

from saesite.errors import SaesiteError


def load_labels(path: str | Path) -> dict[int, str]:
    """Feature labels from CSV (``id,label``; header optional) or JSON (``{"id": "label"}``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SaesiteError(f"labels file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SaesiteError(
            f"labels file {str(path)!r} cannot be read as UTF-8 text: {err}"
        ) from None
    labels: dict[int, str] = {}

    def add(key: object, label: object, where: str) -> None:
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
            raise SaesiteError(
                f"labels file {str(path)!r} {where}: label {label!r} is not a string"
            )
        if feature_id in labels:
            raise SaesiteError(
                f"labels file {str(path)!r} {where}: feature {feature_id} is labelled twice"
            )
        labels[feature_id] = label

    if path.suffix.lower() == ".json":
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as err:
            raise SaesiteError(f"labels file {str(path)!r} is not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise SaesiteError(
                f"labels file {str(path)!r} holds a JSON {type(data).__name__}; "
                'expected an object {"<feature id>": "<label>"}'
            )
        for key, label in data.items():
            add(key, label, f"key {key!r}")
        return labels
    for line, row in _csv_rows(text, path):
        if not row or not any(cell.strip() for cell in row):
            continue
        if line == 1 and not row[0].strip().isdigit():
            continue  # a header such as "id,label"
        if len(row) != 2:
            raise SaesiteError(
                f"labels file {str(path)!r} line {line} has {len(row)} columns; "
                "expected 2: id,label"
            )
        add(row[0], row[1], f"line {line}")
    return labels


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

    def __init__(self, site: Mapping, labels_path: str | None, n_features: int):
        self.site = {int(k): v for k, v in (site.get("labels") or {}).items() if v}
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
