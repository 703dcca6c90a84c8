"""`saesite train-model`: a short run on local text lowers the loss and writes a loadable folder."""

from __future__ import annotations

import numpy as np

from saesite.cli import main
from saesite.config import TrainModelConfig
from saesite.lm.model import load_model
from saesite.train.model import is_held_out, pack, train_model
from tests.conftest import TINY_TEXT


def small_config(tmp_path, corpus) -> TrainModelConfig:
    return TrainModelConfig(
        out=str(tmp_path / "model"),
        corpus=str(corpus),
        vocab_size=300,
        d_model=32,
        n_heads=2,
        d_mlp=64,
        n_ctx=32,
        batch_size=8,
        lr=1e-2,
        steps=40,
        demo_tokens=256,
    )


def test_a_short_training_run_lowers_the_validation_loss_and_reloads(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT * 10)
    summary = train_model(small_config(tmp_path, corpus))
    assert summary["val_loss"] < summary["val_loss_start"] - 1.0
    loaded = load_model(str(tmp_path / "model"))
    assert loaded.model.cfg.d_vocab == loaded.tokenizer.vocab_size == 300
    demo = np.load(tmp_path / "model" / "demo_tokens.npy")
    assert demo.shape == (8, 32) and demo.dtype == np.int32
    assert (demo[:, 0] == loaded.tokenizer.bos_id).all()


def test_train_model_command_prints_a_summary(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT * 10)
    code = main(
        [
            "-q",
            "train-model",
            "--out",
            str(tmp_path / "m"),
            "--corpus",
            str(corpus),
            "--vocab-size",
            "300",
            "--d-model",
            "32",
            "--n-heads",
            "2",
            "--d-mlp",
            "64",
            "--n-ctx",
            "32",
            "--steps",
            "3",
            "--demo-tokens",
            "64",
        ]
    )
    assert code == 0
    assert "val_loss=" in capsys.readouterr().out


def test_pack_starts_every_sequence_with_bos_and_does_not_overlap():
    stream = np.arange(1, 20, dtype=np.int32)
    seqs = pack(stream, n_ctx=5, bos=0)
    assert seqs.tolist() == [
        [0, 1, 2, 3, 4],
        [0, 5, 6, 7, 8],
        [0, 9, 10, 11, 12],
        [0, 13, 14, 15, 16],
    ]


def test_held_out_split_depends_only_on_the_path():
    names = [f"pkg/module_{i}.py" for i in range(2000)]
    held = [n for n in names if is_held_out(n)]
    assert held == [n for n in names if is_held_out(n)]
    assert 0.02 < len(held) / len(names) < 0.08
