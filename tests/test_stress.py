"""A small stress build: many features over few tokens. The full-size run (65,536 features, with
browser timings) is benchmarks/stress.py."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest

from tests.conftest import make_tiny_sae_dir

D_SAE = 4096


@pytest.mark.slow
def test_a_4096_feature_sae_builds_with_bounded_folders_and_memory(
    tmp_path, tiny_model_dir, tiny_tokens_npy
):
    sae_dir = make_tiny_sae_dir(tmp_path / "sae", d_sae=D_SAE, bias=-1.0)  # L0 ~ 70
    out = tmp_path / "site"
    code = (
        "import resource, sys; from saesite.cli import main; rc = main(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "-q",
            "build",
            "--model",
            str(tiny_model_dir),
            "--sae",
            str(sae_dir),
            "--dataset",
            str(tiny_tokens_npy),
            "--out",
            str(out),
            "--top-k",
            "5",
            "--no-ce-loss",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    peak_mib = int(proc.stdout.split()[-1]) / 1024
    site = json.loads((out / "site.json").read_text())
    assert len(site["features"]) == D_SAE
    assert sum(not f["dead"] for f in site["features"]) > D_SAE // 2
    folders = [d for d in out.rglob("*") if d.is_dir()]
    assert max(len(list(d.iterdir())) for d in folders) <= 1000
    assert not any(p.name.startswith("_") for p in out.rglob("*"))
    assert peak_mib < 1500, f"peak RSS {peak_mib:.0f} MiB"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # the parent stayed small too
