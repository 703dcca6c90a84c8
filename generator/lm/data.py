"""Token datasets: `.npy` token ids used verbatim, or text tokenised and packed into sequences.

- ``.npy``: an integer array ``[n_seq, seq_len]``; row i is sequence i, nothing is prepended.
- text (``.txt`` file, a folder of ``.txt``/``.md``/``.py`` files, or ``.jsonl`` with a ``text``
  field per line): documents are tokenised in sorted-file / line order and joined into one stream
  with the end-of-text token between documents; the stream is cut into sequences of
  ``seq_len`` tokens, each starting with BOS (the end-of-text token for GPT-2 style tokenizers)
  unless ``prepend_bos`` is off. The incomplete tail is dropped.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Int
from saesite.config import DataConfig
from saesite.errors import SaesiteError
from saesite.lm.model import DEMO_TOKENS, Tokenizer
from torch import Tensor

log = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".md", ".py")


def load_tokens(
    cfg: DataConfig, tokenizer: Tokenizer, d_vocab: int, n_ctx: int | None = None
) -> Int[Tensor, "n_seq seq_len"]:
    """The dataset as an int64 tensor, validated against the model's vocabulary and context."""
    if cfg.dataset is None:
        tokens = _load_npy(DEMO_TOKENS)
        source = "the bundled demo tokens"
    else:
        path = Path(cfg.dataset)
        source = f"--dataset {path}"
        if not path.exists():
            raise SaesiteError(f"{source}: no such file or folder")
        if path.suffix == ".npy":
            tokens = _load_npy(path)
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
    _validate(tokens, d_vocab, n_ctx, source)
    return tokens


def _load_npy(path: Path) -> Tensor:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise SaesiteError(f"{path}: cannot be read as .npy ({err})") from None
    if array.dtype.kind not in "iu":
        raise SaesiteError(f"{path}: dtype {array.dtype}; expected an integer array of token ids")
    if array.ndim != 2:
        raise SaesiteError(
            f"{path}: shape {array.shape} (rank {array.ndim}); expected [n_seq, seq_len]"
        )
    if array.size == 0:
        raise SaesiteError(f"{path}: empty array {array.shape}; expected at least one sequence")
    return torch.from_numpy(array.astype(np.int64, copy=False))


def _read_documents(path: Path) -> list[str]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)
        if not files:
            raise SaesiteError(
                f"--dataset {path}: folder holds no {'/'.join(TEXT_SUFFIXES)} "
                "files; expected text files"
            )
        return [p.read_text(encoding="utf-8", errors="replace") for p in files]
    if path.suffix == ".jsonl":
        docs = []
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
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
    if path.suffix in TEXT_SUFFIXES or path.suffix == "":
        return [path.read_text(encoding="utf-8", errors="replace")]
    raise SaesiteError(
        f"--dataset {path}: unknown file type {path.suffix!r}; expected .npy, "
        ".txt, .jsonl or a folder of text files"
    )


DEFAULT_SEQ_LEN = 128


def _pack(docs: list[str], tokenizer: Tokenizer, cfg: DataConfig) -> Tensor:
    bos = tokenizer.bos_id
    prepend_bos = cfg.prepend_bos is not False
    seq_len = cfg.seq_len or DEFAULT_SEQ_LEN
    if prepend_bos and bos is None:
        raise SaesiteError("the tokenizer has no BOS token; pass --no-bos")
    stream: list[int] = []
    for doc in docs:
        if doc:
            stream.extend(tokenizer.encode(doc))
            if bos is not None:
                stream.append(bos)
    body = seq_len - 1 if prepend_bos else seq_len
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


def _validate(tokens: Tensor, d_vocab: int, n_ctx: int | None, source: str) -> None:
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
