"""The command line: every common mistake is one clear line and exit code 2, nothing written.

These run the real console entry point (`generator.cli.main`) on real files; the failures happen
in the checks that precede the streaming pass.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from generator.cli import main
from tests.conftest import make_tiny_sae_dir


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(["-q", *argv])
    captured = capsys.readouterr()
    return code, captured.err


@pytest.fixture
def base_args(tiny_model_dir, tiny_sae_dir, tiny_tokens_npy, tmp_path):
    return [
        "build",
        "--model",
        str(tiny_model_dir),
        "--sae",
        str(tiny_sae_dir),
        "--dataset",
        str(tiny_tokens_npy),
        "--out",
        str(tmp_path / "site"),
    ]


def replace(args: list[str], flag: str, value: str) -> list[str]:
    out = list(args)
    out[out.index(flag) + 1] = value
    return out


def assert_one_line_error(code: int, err: str, fragment: str, out_dir) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("saesite: error:")]
    assert len(lines) == 1, err
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in err
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_sae_width_different_from_the_hook_is_refused(capsys, base_args, tmp_path):
    code, err = run_cli(capsys, *base_args, "--hook", "blocks.0.hook_resid_pre")
    assert_one_line_error(
        code,
        err,
        "SAE d_in is 64 but hook 'blocks.0.hook_resid_pre' has width 32",
        tmp_path / "site",
    )


def test_unknown_hook_suggests_close_names(capsys, base_args, tmp_path):
    code, err = run_cli(capsys, *base_args, "--hook", "blocks.0.mlp.hook_pst")
    assert_one_line_error(code, err, "did you mean 'blocks.0.mlp.hook_post'", tmp_path / "site")


def test_sae_with_unknown_architecture_is_refused(capsys, base_args, tmp_path):
    sae_dir = make_tiny_sae_dir(tmp_path / "sae")
    cfg = json.loads((sae_dir / "cfg.json").read_text())
    (sae_dir / "cfg.json").write_text(json.dumps({**cfg, "architecture": "gated"}))
    code, err = run_cli(capsys, *replace(base_args, "--sae", str(sae_dir)))
    assert_one_line_error(code, err, "architecture 'gated' is not supported", tmp_path / "site")


def test_token_ids_beyond_the_vocabulary_are_refused(capsys, base_args, tmp_path):
    np.save(tmp_path / "big.npy", np.full((2, 16), 100000, dtype=np.int32))
    code, err = run_cli(capsys, *replace(base_args, "--dataset", str(tmp_path / "big.npy")))
    assert_one_line_error(code, err, "outside the vocabulary", tmp_path / "site")


def test_top_k_zero_is_refused(capsys, base_args, tmp_path):
    code, err = run_cli(capsys, *base_args, "--top-k", "0")
    assert_one_line_error(code, err, "--top-k is 0; expected a positive number", tmp_path / "site")


def test_negative_batch_size_is_refused(capsys, base_args, tmp_path):
    code, err = run_cli(capsys, *base_args, "--batch-size", "-3")
    assert_one_line_error(code, err, "--batch-size is -3", tmp_path / "site")


def test_output_folder_with_foreign_files_is_refused_and_left_untouched(
    capsys, base_args, tmp_path
):
    out = tmp_path / "site"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    code, err = run_cli(capsys, *base_args)
    assert code == 2
    assert "holds files saesite did not write" in err and "--force" in err
    assert (out / "thesis.tex").read_text() == "precious"


def test_missing_model_folder_file_is_named(capsys, base_args, tmp_path, tiny_model_dir):
    model = tmp_path / "model"
    model.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (model / name).write_bytes((tiny_model_dir / name).read_bytes())
    code, err = run_cli(capsys, *replace(base_args, "--model", str(model)))
    assert_one_line_error(code, err, "model.safetensors missing", tmp_path / "site")


def test_debug_flag_shows_the_traceback(base_args):
    with pytest.raises(Exception, match="did you mean"):
        main(["--debug", "-q", *base_args, "--hook", "blocks.0.mlp.hook_pst"])
