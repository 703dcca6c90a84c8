"""Datasets: .npy used verbatim, text packed with BOS, and every bad input named clearly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from saesite.config import DataConfig
from saesite.errors import SaesiteError
from saesite.lm.data import load_tokens
from saesite.lm.model import Tokenizer


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir) -> Tokenizer:
    return Tokenizer.from_file(tiny_model_dir / "tokenizer.json")


def test_npy_rows_are_used_verbatim_with_nothing_prepended(tmp_path, tokenizer):
    array = np.arange(40, dtype=np.int32).reshape(4, 10)
    np.save(tmp_path / "t.npy", array)
    tokens = load_tokens(DataConfig(dataset=str(tmp_path / "t.npy")), tokenizer, d_vocab=300)
    assert tokens.tolist() == array.tolist()


def test_n_tokens_keeps_whole_sequences(tmp_path, tokenizer):
    np.save(tmp_path / "t.npy", np.zeros((5, 10), dtype=np.int64))
    cfg = DataConfig(dataset=str(tmp_path / "t.npy"), n_tokens=25)
    assert tuple(load_tokens(cfg, tokenizer, d_vocab=300).shape) == (2, 10)


def test_text_is_packed_into_sequences_that_start_with_bos(tmp_path, tokenizer):
    (tmp_path / "a.txt").write_text("def add(a, b):\n    return a + b\n" * 20)
    tokens = load_tokens(
        DataConfig(dataset=str(tmp_path / "a.txt"), seq_len=8), tokenizer, d_vocab=300
    )
    assert tokens.shape[1] == 8
    assert (tokens[:, 0] == tokenizer.bos_id).all()
    stream = tokenizer.encode("def add(a, b):\n    return a + b\n" * 20)
    assert tokens[0, 1:].tolist() == stream[:7]
    assert tokens[1, 1:].tolist() == stream[7:14]


def test_jsonl_folder_and_txt_give_the_same_stream_for_the_same_documents(tmp_path, tokenizer):
    docs = ["for i in range(10):\n    print(i)\n" * 5, "import os\nimport sys\n" * 5]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps({"text": d}) for d in docs))
    folder = tmp_path / "docs"
    folder.mkdir()
    for i, doc in enumerate(docs):
        (folder / f"{i}.txt").write_text(doc)
    a = load_tokens(DataConfig(dataset=str(tmp_path / "d.jsonl"), seq_len=8), tokenizer, 300)
    b = load_tokens(DataConfig(dataset=str(folder), seq_len=8), tokenizer, 300)
    assert a.tolist() == b.tolist()


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((0, 8), dtype=np.int32), "empty array"),
        (np.zeros((4, 8), dtype=np.float32), "dtype float32; expected an integer array"),
        (np.zeros(8, dtype=np.int32), r"rank 1\); expected \[n_seq, seq_len\]"),
        (np.full((2, 8), 300, dtype=np.int32), "16 token id\\(s\\) outside the vocabulary"),
        (np.full((2, 8), -1, dtype=np.int32), "outside the vocabulary"),
        (np.zeros((2, 64), dtype=np.int32), "the model's context is 32"),
    ],
)
def test_bad_npy_datasets_are_refused_with_what_was_expected(tmp_path, tokenizer, array, message):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(SaesiteError, match=message):
        load_tokens(DataConfig(dataset=str(tmp_path / "bad.npy")), tokenizer, 300, n_ctx=32)


def test_text_shorter_than_one_sequence_is_refused(tmp_path, tokenizer):
    (tmp_path / "short.txt").write_text("x = 1")
    with pytest.raises(SaesiteError, match="shorter than one sequence of 128"):
        load_tokens(DataConfig(dataset=str(tmp_path / "short.txt")), tokenizer, 300)


def test_empty_text_dataset_is_refused(tmp_path, tokenizer):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(SaesiteError, match="0 tokens"):
        load_tokens(DataConfig(dataset=str(tmp_path / "empty.txt")), tokenizer, 300)


def test_missing_dataset_and_unknown_suffix_are_named(tmp_path, tokenizer):
    with pytest.raises(SaesiteError, match="no such file"):
        load_tokens(DataConfig(dataset=str(tmp_path / "nope.npy")), tokenizer, 300)
    (tmp_path / "x.csv").write_bytes(b"a,b")
    with pytest.raises(SaesiteError, match="unknown file type '.csv'"):
        load_tokens(DataConfig(dataset=str(tmp_path / "x.csv")), tokenizer, 300)
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    with pytest.raises(SaesiteError, match="x.parquet: cannot be opened .*ArrowInvalid"):
        load_tokens(DataConfig(dataset=str(tmp_path / "x.parquet")), tokenizer, 300)


def test_jsonl_line_without_text_field_is_named_by_line_number(tmp_path, tokenizer):
    (tmp_path / "d.jsonl").write_text('{"text": "a"}\n{"body": "b"}\n')
    with pytest.raises(SaesiteError, match=r"d.jsonl:2: expected an object with a 'text'"):
        load_tokens(DataConfig(dataset=str(tmp_path / "d.jsonl")), tokenizer, 300)


@pytest.mark.parametrize("field", ["n_tokens", "seq_len"])
def test_negative_sizes_are_refused_by_the_config(field):
    with pytest.raises(ValueError, match=f"--{field.replace('_', '-')} is -5"):
        DataConfig(**{field: -5})


def test_a_large_npy_is_memory_mapped_and_cut_to_n_tokens_before_it_is_copied(tmp_path, tokenizer):
    import tracemalloc

    path = tmp_path / "big.npy"
    rows = np.lib.format.open_memmap(path, mode="w+", dtype=np.int32, shape=(160_000, 64))
    rows[:] = 7  # 41 MB of token ids
    rows.flush()
    del rows
    tracemalloc.start()
    try:
        tokens = load_tokens(DataConfig(dataset=str(path), n_tokens=4096), tokenizer, 300)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert tuple(tokens.shape) == (64, 64) and tokens.dtype == torch.int64
    assert peak < 1 << 20, f"peak {peak:,} bytes: the whole file was read"
