"""Records in: each feature's JSON, and what the other pages need of it (``FeatureSummary``).

``take_records`` consumes the records once, in index order, holding each folder's JSON in this
process's memory up to ``HELD_JSON_BYTES`` for the page workers (which write it,
``write_folder``); past it, a folder's files are written as soon as its last record is in.

Every record goes through one ``Intake``. With more than one worker, records that can be built a
range at a time (``RangeRecords``: a build's ``records.build.FeatureRecords``) or that a list
holds are built and taken in forked worker processes, a range of whole folders each
(``local_folders``, ``parallel.map_ranges``), which send back each feature's summary, site.json
entry and JSON; in a Ray build, as Ray tasks (``MapFolders``: ``ray_pages.RayPages``); others
(records read back from a site) are taken here as they come. No torch here, nor in the
workers: ``FeatureRecords`` reads numpy arrays made before the fork (records/arrays.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from typing import Protocol, TypeVar, runtime_checkable

from tqdm import tqdm

from saesite.errors import SaesiteError
from saesite.site.headline import headline
from saesite.site.labels import Labels
from saesite.site.page_context import FeatureSummary
from saesite.site.parallel import CHUNKS_PER_WORKER, map_ranges, ranges
from saesite.site.records_file import NAME as RECORDS_NAME
from saesite.site.records_file import pack
from saesite.site.search_index import index_row
from saesite.site.token_markup import TokenDisplay, visible_label
from saesite.site.token_store import ExampleTokens
from saesite.site.writer import SiteWriter, dumps_json

R = TypeVar("R")

HELD_JSON_BYTES = 384 << 20
"""Feature JSON held in memory between the records and the pages; beyond it, a folder's records
file is written once the folder is complete, and read back for its pages."""


def folder_width(n_features: int, features_per_folder: int) -> int:
    """Digits of the zero-padded folder names (at least three)."""
    return max(3, len(str(max(n_features - 1, 0) // features_per_folder)))


def feature_paths(index: int, features_per_folder: int, width: int) -> tuple[str, str]:
    """``("features/NNN/<index>.html", "features/NNN/<index>.json")``."""
    folder = f"features/{index // features_per_folder:0{width}d}"
    return f"{folder}/{index}.html", f"{folder}/{index}.json"


def folder_ranges(n: int, features_per_folder: int, n_chunks: int) -> list[tuple[int, int]]:
    """Features ``0..n-1`` cut into at most ``n_chunks`` ranges of whole folders, in order."""
    fpf = features_per_folder
    return [(first * fpf, min(stop * fpf, n)) for first, stop in ranges(-(-n // fpf), n_chunks)]


def records_path(index: int, features_per_folder: int, width: int) -> str:
    """``features/NNN/records.jsonl.gz``: the records of the folder holding ``index``."""
    return f"features/{index // features_per_folder:0{width}d}/{RECORDS_NAME}"


@runtime_checkable
class RangeRecords(Protocol):
    """Feature records that any process builds a range at a time, the same in every process."""

    def __len__(self) -> int: ...

    def build_range(self, start: int, stop: int) -> Iterable[Mapping]:
        """The records of features ``start..stop-1``, in index order."""
        ...


Taken = tuple[FeatureSummary, dict, bytes]
"""What ``Intake`` makes of one record: its summary, its site.json entry, its JSON."""


class Intake:
    """Per record: its summary (links, search), its site.json entry and its JSON bytes."""

    def __init__(
        self,
        labels: Labels,
        display: TokenDisplay,
        *,
        features_per_folder: int,
        folder_width: int,
        tokens: ExampleTokens | None = None,
        prefix: str = "",
        feature_json: bool = False,
    ):
        self.labels, self.display = labels, display
        self.feature_json = feature_json
        """Also write each feature's ``<index>.json`` (``RenderConfig.feature_json``)."""
        self.tokens = tokens or ExampleTokens(None)
        self.features_per_folder, self.folder_width = features_per_folder, folder_width
        self.prefix = prefix
        """Folder of the SAE's pages in a multi-SAE site (``sae/<id>/``): the summary's paths
        start with it (they are relative to the site root), site.json's do not (relative to
        the SAE's own site.json)."""

    def __call__(self, feature: Mapping, expected: int) -> Taken:
        index = int(feature["index"])
        if index != expected:
            raise SaesiteError(
                f"feature record {expected} has index {index}; expected indices 0…n-1, each once"
            )
        label = self.labels.of(feature)
        record = {**feature, "label": label}
        html, json_path = feature_paths(index, self.features_per_folder, self.folder_width)
        records = records_path(index, self.features_per_folder, self.folder_width)
        shown = visible_label(label)
        # the examples' own tokens only (their windows are the pages' concern)
        own = self.tokens.own_token
        line = headline(record, shown, self.display, own)
        row = index_row(record, shown, self.display, line, own)
        summary = FeatureSummary(
            index=index,
            html=self.prefix + html,
            json=self.prefix + json_path if self.feature_json else "",
            records=self.prefix + records,
            label=shown,
            headline=line,
            row=row,
        )
        entry = {
            "index": index,
            "html": html,
            **({"json": json_path} if self.feature_json else {}),
            "records": records,
            "density": record.get("density"),
            "max_activation": record.get("max_activation"),
            "dead": bool(record.get("dead")),
            "dense": bool(record.get("dense")),
            "label": label,
        }
        # the examples' text is in the token store (tokens/*.js): the JSON keeps where they are
        return summary, entry, dumps_json(self.tokens.detach(record))


MapFolders = Callable[[Callable[[int, int], R], int, int], Iterator[R]]
"""``(job, n, features_per_folder)``: ``job(start, stop)`` over ranges of whole folders of
features ``0..n-1``, the results in completion order. ``local_folders``: forked processes;
``ray_pages.RayPages.map_folders``: Ray tasks, where the pages are rendered."""


def local_folders(workers: int) -> MapFolders:
    """``MapFolders`` in ``workers`` forked processes, ``CHUNKS_PER_WORKER`` ranges each."""

    def run(job: Callable[[int, int], R], n: int, features_per_folder: int) -> Iterator[R]:
        chunks = folder_ranges(n, features_per_folder, workers * CHUNKS_PER_WORKER)
        for _, result in map_ranges(job, chunks, workers):
            yield result

    return run


def taken(
    features: Iterable[Mapping], intake: Intake, map_folders: MapFolders | None = None
) -> Iterator[Taken]:
    """``intake`` of every record, in index order: for records built by ranges or held in a
    list, by ``map_folders`` when given (``taken_by_ranges``); else here, as the records come."""
    if map_folders is not None and isinstance(features, RangeRecords):
        yield from taken_by_ranges(len(features), features.build_range, intake, map_folders)
    elif map_folders is not None and isinstance(features, Sequence):
        held = features
        build = lambda start, stop: held[start:stop]  # noqa: E731
        yield from taken_by_ranges(len(held), build, intake, map_folders)
    else:
        for expected, feature in enumerate(features):
            yield intake(feature, expected)


def taken_by_ranges(
    n: int,
    build_range: Callable[[int, int], Iterable[Mapping]],
    intake: Intake,
    map_folders: MapFolders,
) -> Iterator[Taken]:
    """``intake`` of the records ``build_range`` gives for features ``0..n-1``, built and taken
    a range of whole folders at a time by ``map_folders``, yielded in index order (a range
    done early waits here for those before it)."""

    def take(start: int, stop: int) -> tuple[int, int, list[Taken]]:
        built = build_range(start, stop)
        return start, stop, [intake(feature, start + i) for i, feature in enumerate(built)]

    waiting: dict[int, tuple[int, list[Taken]]] = {}
    turn = 0
    for start, stop, done in map_folders(take, n, intake.features_per_folder):
        waiting[start] = stop, done
        while turn in waiting:
            turn, done = waiting.pop(turn)
            yield from done


def take_records(
    features: Iterable[Mapping],
    intake: Intake,
    writer: SiteWriter,
    map_folders: MapFolders | None = None,
) -> tuple[list[FeatureSummary], list[dict], dict[int, bytes]]:
    """Consume the records in index order (``taken``: by ``map_folders`` where they can be,
    such as ``local_folders(workers)``): per feature its summary, its site.json entry, and
    its JSON, held in memory (returned by index) a folder at a time or, past
    ``HELD_JSON_BYTES``, written (``write_folder``) as soon as the folder is complete."""
    summaries: list[FeatureSummary] = []
    entries: list[dict] = []
    held: dict[int, bytes] = {}
    held_bytes = 0
    folder: list[tuple[FeatureSummary, bytes]] = []

    def end_folder() -> None:
        nonlocal held_bytes
        size = sum(len(data) for _, data in folder)
        if held_bytes + size <= HELD_JSON_BYTES:
            held.update((summary.index, data) for summary, data in folder)  # the pages write it
            held_bytes += size
        else:
            write_folder(writer, [summary for summary, _ in folder], [d for _, d in folder])
        folder.clear()

    total = len(features) if isinstance(features, Sized) else None
    bar = tqdm(
        taken(features, intake, map_folders),
        total=total,
        desc="records",
        unit="feature",
        disable=None,
        leave=False,
    )
    for summary, entry, data in bar:
        if folder and folder[0][0].records != summary.records:
            end_folder()
        summaries.append(summary)
        entries.append(entry)
        folder.append((summary, data))
    if folder:
        end_folder()
    return summaries, entries, held


def folder_files(
    summaries: Sequence[FeatureSummary], lines: Sequence[bytes]
) -> Iterator[tuple[str, bytes]]:
    """The data files of one folder's features (``summaries``, all of it, in index order):
    its records file, and each feature's JSON where the summary has a path for it."""
    yield summaries[0].records, pack(lines)
    for summary, data in zip(summaries, lines, strict=True):
        if summary.json:
            yield summary.json, data


def write_folder(
    writer: SiteWriter, summaries: Sequence[FeatureSummary], lines: Sequence[bytes]
) -> None:
    """Write ``folder_files`` now (past the memory budget, as the folder's last record is in)."""
    for rel_path, data in folder_files(summaries, lines):
        writer.write(rel_path, data)
