import os
import subprocess
import sys

import pytest
import torch

from saesite.threads import (
    WAIT_POLICY_VARIABLE,
    available_cpus,
    cgroup_cpu_limit,
    one_thread,
    torch_threads,
)


def test_cgroup_v2_quota_caps_the_cpus_and_max_means_no_quota(tmp_path, monkeypatch):
    monkeypatch.setattr("saesite.threads.affinity_cpus", lambda: 64)
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == pytest.approx(1.5)
    assert available_cpus(tmp_path) == 2  # 1.5 CPUs' worth of time: two threads, rounded up
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None
    assert available_cpus(tmp_path) == 64


def test_cgroup_v1_quota_is_read_when_there_is_no_cpu_max(tmp_path, monkeypatch):
    monkeypatch.setattr("saesite.threads.affinity_cpus", lambda: 16)
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("400000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert available_cpus(tmp_path) == 4
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # v1's "no quota"
    assert available_cpus(tmp_path) == 16


def test_threads_are_shared_between_processes_and_never_zero(tmp_path, monkeypatch):
    monkeypatch.setattr("saesite.threads.affinity_cpus", lambda: 2)
    assert torch_threads(1, tmp_path) == 2
    assert torch_threads(2, tmp_path) == 1
    assert torch_threads(8, tmp_path) == 1  # more processes than CPUs: one thread each


def test_one_thread_runs_the_block_on_one_thread_and_restores_the_count():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with one_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), one_thread():
            raise RuntimeError("inside")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def _run_python(code: str, **env: str) -> list[str]:
    """Run ``code`` in a fresh interpreter (torch not yet loaded); its printed lines."""
    clean = {k: v for k, v in os.environ.items() if k != WAIT_POLICY_VARIABLE}
    out = subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_idle_openmp_threads_sleep_when_set_before_torch_loads_and_a_users_policy_wins():
    check = (
        "from saesite.threads import sleep_when_waiting as s; import os; a = s(); "
        "import torch; print(a, os.environ.get('OMP_WAIT_POLICY'))"
    )
    assert _run_python(check) == ["True", "PASSIVE"]
    assert _run_python(check, OMP_WAIT_POLICY="active") == ["False", "active"]
    late = "import torch, os; from saesite.threads import sleep_when_waiting as s; "
    late += "print(s(), os.environ.get('OMP_WAIT_POLICY'))"
    assert _run_python(late) == ["False", "None"]  # too late: the runtime has read it


def test_the_command_line_sets_the_wait_policy_before_it_imports_torch():
    code = (
        "import os, sys\nfrom saesite import cli\ntry:\n    cli.main(['build', '--help'])\n"
        "except SystemExit:\n    pass\n"
        "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"
    )
    assert _run_python(code)[-2:] == ["PASSIVE", "False"]
