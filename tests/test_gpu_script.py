"""benchmarks/gpu.sh runs on a GPU machine; here its commands and their arguments are checked."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_script_dry_run_checks_both_shapes_arguments():
    env = {**os.environ, "GPU_SH_DRY": "1", "PYTHON": sys.executable}
    run = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu.sh")], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert "arguments ok: gpt2, 24576 features, cuda, bfloat16" in run.stdout
    assert "arguments ok: gemma, 65536 features, cuda, bfloat16" in run.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
def test_scale_benchmark_refuses_cuda_without_a_gpu_in_one_line():
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_scale.py"), "--device", "cuda"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert "--device cuda: no CUDA device here" in run.stderr
