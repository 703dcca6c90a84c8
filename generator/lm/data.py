"""Token datasets: `.npy` token ids used verbatim, or text tokenised and packed into sequences.

- ``.npy``: an integer array ``[n_seq, seq_len]``; row i is sequence i, nothing is prepended.
- text (``.txt`` file, a folder of ``.txt``/``.md``/``.py`` files, or ``.jsonl`` with a ``text``
  field per line): documents are tokenised in sorted-file / line order and joined into one stream
  with the end-of-text token between documents; the stream is cut into sequences of
  ``seq_len`` tokens, each starting with BOS (the end-of-text token for GPT-2 style tokenizers)
  unless ``prepend_bos`` is off. The incomplete tail is dropped.
- a Hugging Face dataset (``NAME[:SPLIT]``, ``.parquet`` / ``.arrow`` files, a saved dataset
  folder): streamed through ``lm/hf_data.py``, its text packed as above, or its pre-tokenised
  ``input_ids`` rows used as they are.
Text is read only until ``n_tokens`` worth of sequences is packed.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor

from saesite.config import DataConfig
from saesite.errors import SaesiteError
from saesite.lm.hf_data import TOKENS_COLUMN, is_hf_dataset, rows
from saesite.lm.model import DEMO_TOKENS, Tokenizer

log = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".md", ".py")


def load_tokens(
    cfg: DataConfig, tokenizer: Tokenizer, d_vocab: int, n_ctx: int | None = None
) -> Int[Tensor, "n_seq seq_len"]:
    """The dataset as an int64 tensor, validated against the model's vocabulary and context."""
    if cfg.dataset is None:
        tokens = _load_npy(DEMO_TOKENS, cfg.n_tokens)
        source = "the bundled demo tokens"
    else:
        path = Path(cfg.dataset)
        source = f"--dataset {path}"
        if is_hf_dataset(cfg.dataset):
            tokens = _load_hf(cfg, tokenizer)
        elif not path.exists():
            raise SaesiteError(f"{source}: no such file or folder")
        elif path.suffix == ".npy":
            tokens = _load_npy(path, cfg.n_tokens)
        else:
            tokens = _pack(_read_documents(path), tokenizer, cfg)
    if cfg.n_tokens is not None:
        n_seq = cfg.n_tokens // tokens.shape[1]
        if n_seq == 0:
            raise SaesiteError(
                f"--n-tokens {cfg.n_tokens} is shorter than one sequence of "
                f"{tokens.shape[1]} tokens; expected at least {tokens.shape[1]}"
            )
        tokens = tokens[:n_seq]
    check_tokens(tokens, d_vocab, n_ctx, source)
    return tokens


def check_readable(cfg: DataConfig) -> None:
    """The dataset found, of a known kind, its header readable: before the model loads."""
    if cfg.dataset is None:
        return
    path = Path(cfg.dataset)
    if is_hf_dataset(cfg.dataset):
        rows(cfg.dataset, cfg.text_column)  # opened, its first row read, the column found
    elif not path.exists():
        raise SaesiteError(f"--dataset {path}: no such file or folder")
    elif path.suffix == ".npy":
        shape, dtype, _ = _npy_header(path)
        _check_array(shape, dtype, str(path))
    elif path.is_dir():
        _text_files(path)
    else:
        _check_suffix(path)


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, header bytes)`` of a ``.npy`` file, checked against the file's size so
    a header claiming more data than the file holds is refused before anything is allocated."""
    try:
        with path.open("rb") as handle:
            if handle.read(4) == b"PK\x03\x04":
                raise SaesiteError(
                    f"{path}: a zip archive (an .npz?); expected a .npy array saved by np.save"
                )
            handle.seek(0)
            version = np.lib.format.read_magic(handle)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(handle)
            offset = handle.tell()
    except (ValueError, OSError, EOFError) as err:
        raise SaesiteError(f"{path}: cannot be read as .npy ({err})") from None
    if dtype.hasobject:
        raise SaesiteError(f"{path}: holds Python objects; expected an integer array of token ids")
    claimed = math.prod(shape) * dtype.itemsize
    size = path.stat().st_size - offset
    if claimed != size:
        raise SaesiteError(
            f"{path}: header claims shape {shape} of {dtype} ({claimed:,} bytes) but the file "
            f"holds {size:,} bytes; expected a complete .npy file"
        )
    return shape, dtype, offset


def _check_array(shape: tuple[int, ...], dtype: np.dtype, source: str) -> None:
    if dtype.kind not in "iu":
        raise SaesiteError(f"{source}: dtype {dtype}; expected an integer array of token ids")
    if len(shape) != 2:
        raise SaesiteError(
            f"{source}: shape {shape} (rank {len(shape)}); expected [n_seq, seq_len]"
        )
    if math.prod(shape) == 0:
        raise SaesiteError(f"{source}: empty array {shape}; expected at least one sequence")


def tokens_from_array(array, source: str = "tokens") -> Int[Tensor, "n_seq seq_len"]:
    """A numpy array or torch tensor of token ids ``[n_seq, seq_len]`` as int64 on the CPU."""
    array = array.detach().cpu().numpy() if isinstance(array, Tensor) else np.asarray(array)
    _check_array(array.shape, array.dtype, source)
    return torch.from_numpy(array.astype(np.int64))


def _load_npy(path: Path, n_tokens: int | None = None) -> Tensor:
    """The array, memory-mapped and cut to ``n_tokens`` (whole rows) before it is copied."""
    shape, dtype, _ = _npy_header(path)
    _check_array(shape, dtype, str(path))
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise SaesiteError(f"{path}: cannot be read as .npy ({err})") from None
    if n_tokens is not None:
        array = array[: max(1, n_tokens // shape[1])]
    return torch.from_numpy(np.array(array, dtype=np.int64))


def _text_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)
    if not files:
        raise SaesiteError(
            f"--dataset {folder}: folder holds no {'/'.join(TEXT_SUFFIXES)} "
            "files; expected text files"
        )
    return files


def _check_suffix(path: Path) -> None:
    if path.suffix not in (*TEXT_SUFFIXES, ".jsonl", ""):
        raise SaesiteError(
            f"--dataset {path}: unknown file type {path.suffix!r}; expected .npy, "
            ".txt, .jsonl or a folder of text files"
        )


def _read_documents(path: Path) -> list[str]:
    if path.is_dir():
        return [p.read_text(encoding="utf-8", errors="replace") for p in _text_files(path)]
    if path.suffix == ".jsonl":
        docs = []
        for line_no, line in enumerate(_read_utf8(path).splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise SaesiteError(f"{path}:{line_no}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise SaesiteError(f"{path}:{line_no}: expected an object with a 'text' string")
            docs.append(row["text"])
        return docs
    _check_suffix(path)
    return [path.read_text(encoding="utf-8", errors="replace")]


DEFAULT_SEQ_LEN = 128


def _read_utf8(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise SaesiteError(
            f"{path}:{line}: invalid UTF-8 (byte {data[err.start]:#04x} at offset {err.start}); "
            "expected UTF-8 text"
        ) from None


def _load_hf(cfg: DataConfig, tokenizer: Tokenizer) -> Tensor:
    """A Hugging Face dataset, streamed: text packed like the text files, or ``input_ids``
    rows as they are; no row read past ``n_tokens``."""
    column, values = rows(str(cfg.dataset), cfg.text_column)
    if column != TOKENS_COLUMN:
        return _pack(_texts(values, cfg.dataset, column), tokenizer, cfg)
    seqs: list[list[int]] = []
    for row in values:
        if not isinstance(row, list) or not all(isinstance(t, int) for t in row) or not row:
            raise SaesiteError(
                f"--dataset {cfg.dataset}: row {len(seqs)} of {column} is {str(row):.40}; "
                "expected a list of token ids"
            )
        if seqs and len(row) != len(seqs[0]):
            raise SaesiteError(
                f"--dataset {cfg.dataset}: row {len(seqs)} has {len(row)} tokens, row 0 has "
                f"{len(seqs[0])}; expected pre-tokenised rows of one length"
            )
        seqs.append(row)
        if cfg.n_tokens is not None and len(seqs) >= max(1, cfg.n_tokens // len(row)):
            break
    return torch.tensor(seqs, dtype=torch.int64)


def _texts(values: Iterator[object], dataset: str | None, column: str) -> Iterator[str]:
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise SaesiteError(
                f"--dataset {dataset}: row {index} of column {column!r} is {str(value):.40}; "
                "expected text (--text-column names the text)"
            )
        yield value


def _pack(docs: Iterable[str], tokenizer: Tokenizer, cfg: DataConfig) -> Tensor:
    """Documents tokenised into one stream (end-of-text between them) and cut into sequences;
    documents are read only until the ``n_tokens`` worth of sequences is full."""
    bos = tokenizer.bos_id
    prepend_bos = cfg.prepend_bos is not False
    seq_len = cfg.seq_len or DEFAULT_SEQ_LEN
    if prepend_bos and bos is None:
        raise SaesiteError("the tokenizer has no BOS token; pass --no-bos")
    body = seq_len - 1 if prepend_bos else seq_len
    if body < 1:
        raise SaesiteError(
            f"--seq-len {seq_len} leaves no room for text after BOS in --dataset "
            f"{cfg.dataset}; expected --seq-len 2 or more (or --no-bos)"
        )
    enough = max(1, cfg.n_tokens // seq_len) * body if cfg.n_tokens is not None else None
    stream: list[int] = []
    for doc in docs:
        if doc:
            stream.extend(tokenizer.encode(doc))
            if bos is not None:
                stream.append(bos)
        if enough is not None and len(stream) >= enough:
            break
    n_seq = len(stream) // body if body > 0 else 0
    if n_seq == 0:
        raise SaesiteError(
            f"--dataset {cfg.dataset}: {len(stream)} tokens, shorter than one "
            f"sequence of {seq_len}; expected more text"
        )
    seqs = torch.tensor(stream[: n_seq * body], dtype=torch.int64).reshape(n_seq, body)
    if prepend_bos:
        seqs = torch.cat([torch.full((n_seq, 1), bos, dtype=torch.int64), seqs], dim=1)
    return seqs


def check_tokens(tokens: Tensor, d_vocab: int, n_ctx: int | None, source: str) -> None:
    """Refuse ids outside the vocabulary and sequences longer than the model's context."""
    low, high = int(tokens.min()), int(tokens.max())
    if low < 0 or high >= d_vocab:
        bad = int(((tokens < 0) | (tokens >= d_vocab)).sum())
        raise SaesiteError(
            f"{source}: {bad} token id(s) outside the vocabulary (min {low}, "
            f"max {high}); expected 0 <= id < {d_vocab}"
        )
    if n_ctx is not None and tokens.shape[1] > n_ctx:
        raise SaesiteError(
            f"{source}: sequences of {tokens.shape[1]} tokens; the model's context is {n_ctx}"
        )


def iter_batches(tokens: Tensor, batch_size: int):
    """Yield ``(first_seq, tokens[first_seq : first_seq + batch_size])``."""
    for start in range(0, len(tokens), batch_size):
        yield start, tokens[start : start + batch_size]
