"""Hugging Face datasets through the datasets library, offline: a hub name from the datasets
cache, local parquet / arrow files, a saved dataset; streamed, only the rows needed are read."""

from __future__ import annotations

import json

import pytest

from saesite.config import DataConfig
from saesite.errors import SaesiteError
from saesite.lm.data import load_tokens
from saesite.lm.model import Tokenizer
from tests.conftest import TINY_TEXT
from tests.fixtures.hf_datasets import (
    PILE_10K,
    TOKENISED,
    add_cached_dataset,
    offline_datasets,
    write_parquet,
)

datasets = pytest.importorskip("datasets")

DOCS = [f"{i}: " + TINY_TEXT[i * 7 : i * 7 + 90] for i in range(40)]
IDS = [[(i * 7 + j) % 250 for j in range(12)] for i in range(30)]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir) -> Tokenizer:
    return Tokenizer.from_file(tiny_model_dir / "tokenizer.json")


@pytest.fixture(scope="module")
def datasets_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("hf-datasets")
    add_cached_dataset(
        home, PILE_10K, {"train": {"text": DOCS}, "validation": {"text": DOCS[::-1]}}
    )
    add_cached_dataset(home, TOKENISED, {"train": {"input_ids": IDS}})
    return home


@pytest.fixture
def offline(datasets_home):
    with offline_datasets(datasets_home):
        yield datasets_home


def tokens_of(tokenizer, **data):
    return load_tokens(DataConfig(**data), tokenizer, d_vocab=300, n_ctx=64)


@pytest.fixture
def docs_jsonl(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": doc}) + "\n" for doc in DOCS))
    return path


def test_a_hub_dataset_streams_from_the_offline_cache_and_packs_like_the_same_text(
    offline, tokenizer, docs_jsonl
):
    got = tokens_of(tokenizer, dataset=PILE_10K, seq_len=16)
    assert got.shape[1] == 16 and got.shape[0] > 10
    assert got.tolist() == tokens_of(tokenizer, dataset=str(docs_jsonl), seq_len=16).tolist()


def test_a_split_after_the_colon_is_the_one_read(offline, tokenizer, tmp_path):
    (tmp_path / "rev.jsonl").write_text(
        "".join(json.dumps({"text": doc}) + "\n" for doc in DOCS[::-1])
    )
    got = tokens_of(tokenizer, dataset=f"{PILE_10K}:validation", seq_len=16)
    expected = tokens_of(tokenizer, dataset=str(tmp_path / "rev.jsonl"), seq_len=16)
    assert got.tolist() == expected.tolist()


def test_pre_tokenised_input_ids_rows_are_the_sequences_as_they_are(offline, tokenizer):
    got = tokens_of(tokenizer, dataset=TOKENISED, n_tokens=5 * 12 + 7)
    assert got.tolist() == IDS[:5]  # nothing prepended, whole rows up to --n-tokens


def test_local_parquet_arrow_and_a_saved_dataset_give_the_same_tokens(
    tmp_path, tokenizer, docs_jsonl
):
    columns = {"content": DOCS, "n": list(range(len(DOCS)))}
    parquet = write_parquet(tmp_path / "docs.parquet", columns)
    saved = tmp_path / "saved"
    datasets.Dataset.from_dict(columns).save_to_disk(str(saved))
    arrow = next(saved.glob("*.arrow"))
    expected = tokens_of(tokenizer, dataset=str(docs_jsonl), seq_len=16).tolist()
    for source in (parquet, arrow, saved, tmp_path / "folder"):
        if source.name == "folder":  # a folder of parquet files, as a dataset repo on disk
            write_parquet(source / "data" / "train-00000-of-00001.parquet", columns)
        got = tokens_of(tokenizer, dataset=str(source), text_column="content", seq_len=16)
        assert got.tolist() == expected, source


def test_streaming_stops_once_n_tokens_are_packed(tmp_path, tokenizer):
    folder = tmp_path / "corpus"
    write_parquet(folder / "a-00000.parquet", {"text": DOCS})
    (folder / "b-00001.parquet").write_bytes(b"PAR1 not a parquet file PAR1")  # read last
    got = tokens_of(tokenizer, dataset=str(folder), seq_len=16, n_tokens=64)
    assert got.shape == (4, 16)  # the unreadable second file was never opened
    with pytest.raises(SaesiteError, match="cannot be read") as err:
        tokens_of(tokenizer, dataset=str(folder), seq_len=16)
    assert "\n" not in str(err.value)


def test_a_missing_text_column_names_the_columns_there(tmp_path, tokenizer):
    parquet = write_parquet(tmp_path / "d.parquet", {"content": DOCS, "id": list(range(40))})
    with pytest.raises(SaesiteError, match="no column 'text'; expected one of content, id"):
        tokens_of(tokenizer, dataset=str(parquet))
    with pytest.raises(SaesiteError, match="no --text-column 'body'"):
        tokens_of(tokenizer, dataset=str(parquet), text_column="body")
    with pytest.raises(SaesiteError, match="row 0 of column 'id' is 0; expected text"):
        tokens_of(tokenizer, dataset=str(parquet), text_column="id")


def test_a_dataset_missing_from_the_offline_cache_says_how_offline_works(offline, tokenizer):
    with pytest.raises(SaesiteError, match="HF_DATASETS_OFFLINE=1") as err:
        tokens_of(tokenizer, dataset="NeelNanda/not-in-the-cache")
    assert "\n" not in str(err.value)


def test_a_build_reads_a_parquet_text_column_end_to_end(
    tmp_path, tiny_model_dir, tiny_sae_dir, capsys
):
    from saesite.cli import main

    parquet = write_parquet(tmp_path / "d.parquet", {"content": DOCS})
    args = ["-q", "build", "--model", str(tiny_model_dir), "--sae", str(tiny_sae_dir)]
    args += ["--dataset", str(parquet), "--text-column", "content", "--seq-len", "16"]
    args += ["--n-tokens", "256", "--top-k", "3", "--n-bins", "8", "--n-intervals", "2"]
    assert main([*args, "--workers", "1", "--out", str(tmp_path / "site")]) == 0
    site = json.loads((tmp_path / "site" / "site.json").read_text())
    assert (site["n_seq"], site["seq_len"]) == (16, 16)
    assert site["config"]["data"]["text_column"] == "content"
