"""The command line: every common mistake is one clear line and exit code 2, nothing written.

These run the real console entry point (`saesite.cli.main`) on real files; the failures happen
in the checks that precede the streaming pass.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from saesite.cli import main
from saesite.site.records_file import pack, site_records, unpack
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
    assert site_records(site)[3]["label"] == entry["label"]
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


# The bad-input matrix: each case edits real inputs (tmp_path, the tiny model / SAE / tokens)
# and returns extra `build` arguments; every one must be one line, exit code 2, nothing
# written, and refused before the statistics pass (which the fixture makes fail if entered).


def _sae_cfg(tmp_path, tiny_sae_dir, **edits):
    import shutil

    sae = shutil.copytree(tiny_sae_dir, tmp_path / "edited-sae")
    cfg = json.loads((sae / "cfg.json").read_text())
    (sae / "cfg.json").write_text(json.dumps({**cfg, **edits}))
    return sae


def _with_training_log(tmp_path, tiny_sae_dir, log):
    sae = _sae_cfg(tmp_path, tiny_sae_dir)
    (sae / "training_log.json").write_text(json.dumps(log))
    return ["--sae", str(sae)]


def _npy_with_header(tmp_path, shape):
    path = tmp_path / "claims.npy"
    with path.open("wb") as handle:
        header = {"descr": "<i4", "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(handle, header)
        handle.write(np.zeros(64, dtype=np.int32).tobytes())
    return ["--dataset", str(path)]


def _npz_as_npy(tmp_path):
    path = tmp_path / "tokens.npy"
    with path.open("wb") as handle:
        np.savez(handle, tokens=np.zeros((2, 8), dtype=np.int32))
    return ["--dataset", str(path)]


def _model_config(tmp_path, tiny_model_dir, **edits):
    import shutil

    model = shutil.copytree(tiny_model_dir, tmp_path / "edited-model")
    cfg = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**cfg, **edits}))
    return ["--model", str(model)]


def _write(tmp_path, name, data: bytes, *flags):
    (tmp_path / name).write_bytes(data)
    return [*flags, str(tmp_path / name)]


BAD_BUILD_INPUTS = [
    (
        "sae-cfg-claims-1e12-features",
        lambda t, m, s: ["--sae", str(_sae_cfg(t, s, d_sae=1e12))],
        "tensor 'W_enc' has shape (64, 96); expected (64, 1000000000000)",
    ),
    (
        "sae-metadata-is-a-string",
        lambda t, m, s: ["--sae", str(_sae_cfg(t, s, metadata="str"))],
        "metadata is a str; expected an object",
    ),
    ("top-k-1e9", lambda t, m, s: ["--top-k", "1000000000"], "the dataset has 768 tokens"),
    (
        "context-before-1e9",
        lambda t, m, s: ["--context-before", "1000000000"],
        "sequences have 32 tokens; expected at most 31",
    ),
    (
        "interval-samples-1e9",
        lambda t, m, s: ["--interval-samples", "1000000000"],
        "--interval-samples is 1,000,000,000 but the dataset has 768 tokens",
    ),
    (
        "npy-header-claims-1e11-rows",
        lambda t, m, s: _npy_with_header(t, (100_000_000_000, 32)),
        "header claims shape (100000000000, 32)",
    ),
    ("npz-named-npy", lambda t, m, s: _npz_as_npy(t), "a zip archive (an .npz?)"),
    ("device-tpu", lambda t, m, s: ["--device", "tpu:7"], "--device 'tpu:7' is not a torch"),
    (
        "unknown-act-fn",
        lambda t, m, s: _model_config(t, m, act_fn="swishy"),
        "act_fn 'swishy' is not supported; expected one of gelu",
    ),
    (
        "training-log-is-a-list",
        lambda t, m, s: _with_training_log(t, s, [1, 2]),
        "training_log.json: the file is a list; expected an object",
    ),
    (
        "training-log-string-loss",
        lambda t, m, s: _with_training_log(t, s, {"steps": [{"step": 1, "loss": "low"}]}),
        "training_log.json: steps[0].loss is 'low'; expected a number",
    ),
    (
        "labels-missing",
        lambda t, m, s: ["--labels", str(t / "nope.csv")],
        "nope.csv' does not exist",
    ),
    (
        "labels-id-out-of-range",
        lambda t, m, s: _write(t, "l.csv", b"id,label\n500,far\n", "--labels"),
        "labels feature 500, but the site has 96 features",
    ),
    (
        "labels-unclosed-quote",
        lambda t, m, s: _write(t, "l.csv", b'id,label\n1,"open\n2,two\n', "--labels"),
        "l.csv' line 2: not valid CSV",
    ),
    (
        "jsonl-invalid-utf8",
        lambda t, m, s: _write(t, "d.jsonl", b'{"text": "ok"}\n{"text": "\xff"}\n', "--dataset"),
        "d.jsonl:2: invalid UTF-8 (byte 0xff",
    ),
    (
        "seq-len-1-on-text",
        lambda t, m, s: [*_write(t, "d.txt", b"x = 1\n" * 50, "--dataset"), "--seq-len", "1"],
        "--seq-len 1 leaves no room for text after BOS in --dataset",
    ),
]


@pytest.fixture
def pass_never_entered(monkeypatch):
    """Every input check runs before the statistics pass: entering it fails the test."""
    import saesite.stats.pass_

    def entered(*args, **kwargs):
        pytest.fail("the statistics pass was entered before the input was refused")

    monkeypatch.setattr(saesite.stats.pass_, "run_pass", entered)


@pytest.mark.parametrize(
    ("make_args", "message"),
    [case[1:] for case in BAD_BUILD_INPUTS],
    ids=[case[0] for case in BAD_BUILD_INPUTS],
)
def test_bad_build_input_is_one_line_before_the_pass(
    capsys,
    base_args,
    tmp_path,
    tiny_model_dir,
    tiny_sae_dir,
    pass_never_entered,
    make_args,
    message,
):
    extra = make_args(tmp_path, tiny_model_dir, tiny_sae_dir)
    code, err = run_cli(capsys, *base_args, *extra)
    assert_one_line_error(code, err, message, tmp_path / "site")


def test_cuda_on_a_cpu_only_torch_is_one_line(capsys, base_args, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, err = run_cli(capsys, *base_args, "--device", "cuda")
    assert_one_line_error(code, err, "runs without CUDA; expected --device cpu", tmp_path / "site")


def test_running_out_of_memory_is_one_line_saying_how_to_lower_the_batch(
    capsys, base_args, tmp_path, monkeypatch
):
    import saesite.stats.pass_

    def out_of_memory(*args, **kwargs):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate "
            "memory: you tried to allocate 68719476736 bytes. Error code 12"
        )

    monkeypatch.setattr(saesite.stats.pass_, "run_pass", out_of_memory)
    code, err = run_cli(capsys, *base_args, "--batch-size", "8")
    assert_one_line_error(code, err, "out of memory", tmp_path / "site")
    assert "lower --batch-size (now 8)" in err


def test_published_site_names_inputs_without_their_absolute_paths(tiny_site, tiny_model_dir):
    site = (tiny_site / "site.json").read_text()
    index = (tiny_site / "index.html").read_text()
    for text in (site, index):
        assert str(tiny_model_dir) not in text and str(tiny_model_dir.parent) not in text
    config = json.loads(site)["config"]
    assert config["model"] == tiny_model_dir.name
    assert config["data"]["dataset"] == "tokens.npy"


def test_record_paths_publishes_the_full_paths(capsys, base_args, tmp_path, tiny_model_dir):
    code, err = run_cli(capsys, *base_args, "--no-ce-loss", "--record-paths")
    assert code == 0, err
    config = json.loads((tmp_path / "site" / "site.json").read_text())["config"]
    assert config["model"] == str(tiny_model_dir)


# `render` of a hand-edited site: (case id, edit of the copied site, message)
def _edit_json(site, rel, edit):
    path = site / rel
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _edit_first_record(site, edit):
    path = site / json.loads((site / "site.json").read_text())["features"][0]["records"]
    lines = unpack(path.read_bytes())
    data = json.loads(lines[0])
    edit(data)
    path.write_bytes(pack([json.dumps(data).encode(), *lines[1:]]))


BAD_SITE_EDITS = [
    (
        "string-metric",
        lambda s: _edit_json(s, "site.json", lambda d: d["metrics"].update(mse="low")),
        "site.json: metrics.mse is 'low'; expected a number",
    ),
    (
        "excluded-token-ids-not-integers",
        lambda s: _edit_json(
            s, "site.json", lambda d: d["metrics"].update(excluded_token_ids=["<bos>"])
        ),
        "site.json: metrics.excluded_token_ids is ['<bos>']; expected a list of integers",
    ),
    (
        "feature-entry-index-string",
        lambda s: _edit_json(s, "site.json", lambda d: d["features"][0].update(index="zero")),
        "site.json: features[0].index is 'zero'; expected an integer",
    ),
    (
        "site-json-is-a-list",
        lambda s: (s / "site.json").write_text("[1, 2]"),
        "site.json: the file is a list; expected an object",
    ),
    (
        "training-steps-not-a-list",
        lambda s: _edit_json(s, "site.json", lambda d: d.update(training={"steps": 3})),
        "site.json: training.steps is 3; expected a list",
    ),
    (
        "feature-density-string",
        lambda s: _edit_first_record(s, lambda d: d.update(density="high")),
        "records.jsonl.gz, line 1: density is 'high'; expected a number",
    ),
    (
        "feature-example-tokens-number",
        lambda s: _edit_first_record(s, lambda d: d["top_examples"][0].update(tokens=5)),
        "records.jsonl.gz, line 1: top_examples[0].tokens is 5",
    ),
    (
        "feature-top-examples-not-a-list",
        lambda s: _edit_first_record(s, lambda d: d.update(top_examples="many")),
        "records.jsonl.gz, line 1: top_examples is 'many'; expected a list",
    ),
    (
        "records-file-not-gzip",
        lambda s: (s / "features/000/records.jsonl.gz").write_text('{"index": 0}\n'),
        "records.jsonl.gz' is not valid gzip",
    ),
]


@pytest.mark.parametrize(
    ("edit", "message"),
    [case[1:] for case in BAD_SITE_EDITS],
    ids=[case[0] for case in BAD_SITE_EDITS],
)
def test_render_of_a_hand_edited_site_is_one_line_and_leaves_it_alone(
    capsys, tmp_path, tiny_site, edit, message
):
    import shutil

    site = shutil.copytree(tiny_site, tmp_path / "site")
    edit(site)
    before = {p: p.read_bytes() for p in site.rglob("*") if p.is_file()}
    code, err = run_cli(capsys, "render", str(site), "--workers", "1")
    assert code == 2 and err.count("saesite: error:") == 1 and message in err, err
    assert "Traceback" not in err
    assert {p: p.read_bytes() for p in site.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


def test_ce_tokens_zero_is_refused(capsys, base_args, tmp_path):
    code, err = run_cli(capsys, *base_args, "--ce-tokens", "0")
    assert_one_line_error(
        code, err, "--ce-tokens is 0; expected a positive number", tmp_path / "site"
    )


def test_ce_tokens_all_computes_the_losses_on_every_sequence(
    capsys, base_args, tmp_path, tiny_tokens_npy
):
    code, err = run_cli(capsys, *base_args, "--ce-tokens", "all", "--workers", "1")
    assert code == 0, err
    site = json.loads((tmp_path / "site" / "site.json").read_text())
    n_seq, seq_len = np.load(tiny_tokens_npy).shape
    assert site["config"]["stats"]["ce_tokens"] is None
    assert site["metrics"]["ce_loss_tokens"] == n_seq * (seq_len - 1)
    assert site["metrics"]["ce_loss_recovered_se"] > 0
