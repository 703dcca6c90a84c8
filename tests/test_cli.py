"""The command line: every common mistake is one clear line and exit code 2, nothing written.

These run the real console entry point (`saesite.cli.main`) on real files; the failures happen
in the checks that precede the streaming pass.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from saesite.cli import main

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


def test_zero_page_workers_are_refused(capsys, base_args, tmp_path):
    code, err = run_cli(capsys, *base_args, "--workers", "0")
    assert_one_line_error(
        code, err, "--workers is 0; expected a positive number", tmp_path / "site"
    )


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


def test_render_relabels_a_built_site_without_importing_torch(tmp_path, tiny_site):
    import shutil
    import subprocess
    import sys

    site = tmp_path / "site"
    shutil.copytree(tiny_site, site)
    labels = tmp_path / "labels.csv"
    labels.write_text('id,label\n3,"closing </script> & quotes"\n7,loops\n')
    code = (
        "import sys; from saesite.cli import main; rc = main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules, 'render imported torch'; sys.exit(rc)"
    )
    subprocess.run(
        [sys.executable, "-c", code, "-q", "render", str(site), "--labels", str(labels)], check=True
    )
    meta = json.loads((site / "site.json").read_text())
    entry = meta["features"][3]
    assert entry["label"] == "closing </script> & quotes"
    page = (site / entry["html"]).read_text()
    assert "closing &lt;/script&gt; &amp; quotes" in page and "</script> &" not in page
    assert json.loads((site / entry["json"]).read_text())["label"] == entry["label"]
    index_js = "".join(p.read_text() for p in sorted((site / "search").glob("*.js")))
    assert "loops" in index_js and "</script>" not in index_js


def test_train_sae_command_writes_an_saelens_folder_that_builds_with_a_training_page(
    capsys, tmp_path, tiny_model_dir, tiny_tokens_npy
):
    from saesite.sae.load import load_sae

    out = tmp_path / "sae"
    code, _ = run_cli(
        capsys,
        "train-sae",
        "--model",
        str(tiny_model_dir),
        "--dataset",
        str(tiny_tokens_npy),
        "--out",
        str(out),
        "--d-sae",
        "48",
        "--steps",
        "30",
        "--sae-batch-size",
        "128",
        "--l1",
        "0.01",
        "--resample-every",
        "10",
        "--resample-window",
        "5",
        "--batch-size",
        "4",
    )
    assert code == 0
    sae = load_sae(out)
    assert sae.cfg.d_sae == 48 and sae.cfg.hook_name == "blocks.0.mlp.hook_post"
    log = json.loads((out / "training_log.json").read_text())
    assert log["steps"] and log["steps"][-1]["loss"] < log["steps"][0]["loss"]
    code, _ = run_cli(
        capsys,
        "build",
        "--model",
        str(tiny_model_dir),
        "--sae",
        str(out),
        "--dataset",
        str(tiny_tokens_npy),
        "--out",
        str(tmp_path / "site"),
        "--no-ce-loss",
    )
    assert code == 0
    assert (tmp_path / "site" / "training.html").is_file()
