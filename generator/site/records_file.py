"""Each feature folder's records, once: ``features/NNN/records.jsonl.gz``.

One line per feature of the folder, in index order, each line exactly the bytes the feature's
``<index>.json`` would hold (``intake.Intake``: sorted keys, examples without their token text);
gzip with no name and mtime 0 in its header, so two builds write the same bytes. It is the
site's only machine-readable copy of the records (the pages are rendered from it, and
``saesite render`` reads it back); ``--feature-json`` adds the per-feature files for those who
fetch one feature's JSON by URL.

    lines = unpack(path.read_bytes())                  # [bytes, …], one per feature
    for where, record in read_records(site_dir, entries): …   # site.json entries, in order
    records = site_records(site_dir)                   # a built site's, in index order
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import orjson

from saesite.errors import SaesiteError

NAME = "records.jsonl.gz"
COMPRESSLEVEL = 6
"""zlib's default. At the GPT-2 shape (11.5 KB of JSON per feature; one loaded core): 2.1 KB per
feature at 40 MB/s, 7 s per 24,576 features, spread over the page workers; level 1 is 2.8 KB
at 128 MB/s, level 4 2.3 KB at 85 MB/s, level 9 2.0 KB at 12 MB/s (benchmarks/README.md)."""


def pack(lines: Sequence[bytes]) -> bytes:
    """The records file of one folder: ``lines`` joined by newlines (one after the last), gzip
    with a deterministic header."""
    return gzip.compress(b"".join(line + b"\n" for line in lines), COMPRESSLEVEL, mtime=0)


def unpack(data: bytes) -> list[bytes]:
    """The lines of a records file, without their newlines."""
    return gzip.decompress(data).splitlines()


def read_records(
    site_dir: Path, entries: Sequence[Mapping], first_line: int = 0
) -> Iterator[tuple[str, dict]]:
    """``(path, record)`` for the site.json ``entries`` in order, read from their folder's
    records file (``records``), or, in a site built before it, from ``<index>.json``
    (``json``). ``path`` names where the record came from, for error messages. The first
    entry's record is line ``first_line`` of its file (entries that start mid-folder)."""
    folder: tuple[str, list[bytes]] | None = None
    line = first_line
    for entry in entries:
        rel = entry.get("records")
        if rel is None:
            path = site_dir / str(entry["json"])
            yield str(path), _loads(_read(path), str(path))
            continue
        if folder is None or folder[0] != rel:
            line = line if folder is None else 0
            folder = (rel, _read_lines(site_dir / rel))
        path = f"{site_dir / rel}, line {line + 1}"
        if line >= len(folder[1]):
            raise SaesiteError(
                f"{site_dir / rel} has {len(folder[1])} lines, fewer than site.json's "
                "features in that folder; rebuild the site with `saesite build`"
            )
        yield path, _loads(folder[1][line], path)
        line += 1


def site_records(site_dir: str | Path) -> list[dict]:
    """Every feature record of a built site (or of one SAE's folder of a multi-SAE site), in
    index order, as its site.json lists them."""
    site_dir = Path(site_dir)
    entries = orjson.loads(_read(site_dir / "site.json")).get("features") or []
    entries = sorted(entries, key=lambda entry: int(entry["index"]))
    return [record for _, record in read_records(site_dir, entries)]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise SaesiteError(
            f"feature file {str(path)!r} is missing ({err.strerror}); rebuild the site with "
            "`saesite build`"
        ) from None


def _read_lines(path: Path) -> list[bytes]:
    try:
        return unpack(_read(path))
    except (OSError, EOFError, zlib.error) as err:
        raise SaesiteError(
            f"feature file {str(path)!r} is not valid gzip ({err}); rebuild the site with "
            "`saesite build`"
        ) from None


def _loads(data: bytes, where: str) -> dict:
    try:
        record = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise SaesiteError(
            f"feature record in {where} is corrupt ({err}); rebuild the site with `saesite build`"
        ) from None
    if not isinstance(record, dict):
        raise SaesiteError(
            f"feature record in {where} is {type(record).__name__}; expected a JSON object"
        )
    return record
