"""Hugging Face datasets, through the ``datasets`` library, streamed: only what is used is read.

    --dataset NAME[:SPLIT]          a hub dataset (offline: from the datasets cache, with
                                    HF_DATASETS_OFFLINE=1 / HF_HUB_OFFLINE=1); SPLIT default train
    --dataset FILE.parquet|.arrow   local files (a folder of them too, or a folder the datasets
                                    library loads: a dataset repository laid out on disk)
    --dataset FOLDER                a dataset saved by ``Dataset.save_to_disk``

Rows are read one at a time (``streaming=True``) and reading stops as soon as ``--n-tokens``
worth of sequences are packed, so a 10 GB corpus costs the rows it takes. The text is in
``--text-column`` (default ``text``); a pre-tokenised ``input_ids`` column (of one length, as
SAELens' tokenised datasets) is used as it is: one row, one sequence, nothing prepended.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from saesite.errors import SaesiteError

log = logging.getLogger(__name__)

FILE_BUILDERS = {".parquet": "parquet", ".arrow": "arrow"}
TOKENS_COLUMN = "input_ids"
OFFLINE_HINT = (
    "without network, set HF_DATASETS_OFFLINE=1 with the dataset in the datasets cache, or "
    "pass local .parquet / .arrow files"
)


def is_hf_dataset(spec: str) -> bool:
    """Whether ``--dataset`` names a Hugging Face dataset: .parquet / .arrow files, a folder of
    them or one saved by ``save_to_disk``, or a name that is not a local path."""
    path = Path(spec)
    if path.suffix in FILE_BUILDERS:
        return True
    if path.is_dir():
        return _data_files(path) != [] or (path / "state.json").is_file()
    if path.exists() or spec.startswith(("/", "./", "../", "~")):
        return False
    return path.suffix not in (".npy", ".txt", ".jsonl", ".md", ".py")


def _data_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in FILE_BUILDERS and p.is_file())


def split_name(spec: str) -> tuple[str, str]:
    """``NAME[:SPLIT]`` -> (NAME, SPLIT); SPLIT defaults to ``train``."""
    name, sep, split = spec.rpartition(":")
    if sep and name and split and "/" not in split and not Path(spec).exists():
        return name, split
    return spec, "train"


def open_dataset(spec: str) -> Any:
    """The dataset ``spec`` names as a streaming ``IterableDataset`` (nothing read yet)."""
    try:
        import datasets
    except ImportError:
        raise SaesiteError(
            f"--dataset {spec}: Hugging Face datasets need the datasets library; expected "
            "pip install saesite[datasets]"
        ) from None

    path = Path(spec)
    try:
        if path.is_file():
            builder = FILE_BUILDERS[path.suffix]
            return datasets.load_dataset(
                builder, data_files=[str(path)], split="train", streaming=True
            )
        if (path / "state.json").is_file():
            return datasets.load_from_disk(str(path)).to_iterable_dataset()
        if path.is_dir():
            return datasets.load_dataset(str(path), split="train", streaming=True)
        name, split = split_name(spec)
        return datasets.load_dataset(name, split=split, streaming=True)
    except (FileNotFoundError, ValueError, ConnectionError, OSError) as err:
        raise SaesiteError(
            f"--dataset {spec}: cannot be opened ({_one_line(err)}); {OFFLINE_HINT}"
        ) from None


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}"[:240]


def column_of(spec: str, columns: list[str], text_column: str | None) -> str:
    """The column to read: ``text_column``, else ``input_ids`` (pre-tokenised), else ``text``."""
    if text_column is not None:
        wanted = text_column
    elif TOKENS_COLUMN in columns:
        wanted = TOKENS_COLUMN
    else:
        wanted = "text"
    if wanted not in columns:
        flag = "--text-column " if text_column is not None else "column "
        raise SaesiteError(
            f"--dataset {spec}: no {flag}{wanted!r}; expected one of {', '.join(columns)} "
            "(--text-column names the text)"
        )
    return wanted


def rows(spec: str, text_column: str | None) -> tuple[str, Iterator[Any]]:
    """(column, its values row by row): strings, or lists of token ids for ``input_ids``."""
    dataset = open_dataset(spec)
    iterator = iter(dataset)
    try:
        first = next(iterator)
    except StopIteration:
        raise SaesiteError(f"--dataset {spec}: no rows; expected at least one") from None
    except Exception as err:  # pyarrow / datasets errors on unreadable files
        raise SaesiteError(f"--dataset {spec}: cannot be read ({_one_line(err)})") from None
    column = column_of(spec, list(first), text_column)

    def values() -> Iterator[Any]:
        yield first[column]
        try:
            for row in iterator:
                yield row[column]
        except Exception as err:  # a file further on that cannot be read
            raise SaesiteError(f"--dataset {spec}: cannot be read ({_one_line(err)})") from None

    return column, values()
