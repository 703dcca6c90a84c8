"""``saesite build --ray``: token shards as Ray tasks, on a local instance bound to 127.0.0.1.

One Ray instance for the whole session (starting one takes ~9 s); it never listens on another
address. The site must be byte for byte the one ``--shard``/``merge`` and one process write.
"""

from __future__ import annotations

import threading
import time

import pytest

ray = pytest.importorskip("ray")

from saesite.cli import main  # noqa: E402
from tests.conftest import shard_build_args as build_args  # noqa: E402
from tests.test_pipeline import tree_digest  # noqa: E402


@pytest.fixture(scope="session")
def ray_local():
    # log_to_driver=False: the workers' log lines stay in Ray's log files, not in this output.
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tiny_model_dir, tiny_sae_dir, tiny_tokens_npy):
    return tiny_model_dir, tiny_sae_dir, tiny_tokens_npy


def shard_workers() -> list:
    """Ray worker processes running a shard task now (their title names the task)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if cmdline and cmdline[0].startswith("ray::saesite-shard-"):
            found.append(proc)
    return found


def test_a_ray_build_writes_the_bytes_of_shard_and_merge_and_of_one_process(
    tmp_path, inputs, ray_local, one_process_site
):
    # tests/test_shards.py shows --shard/merge writes the one-process bytes for 1, 2 and 5
    # shards; here 3 Ray shards do too, so --ray and --shard/merge write the same bytes.
    ray_site = tmp_path / "ray"
    assert main([*build_args(*inputs, ray_site), "--ray", "--shards", "3"]) == 0
    expected = tree_digest(one_process_site)
    assert len(expected) > 100
    assert tree_digest(ray_site) == expected


def test_a_ray_build_over_token_and_feature_shards_writes_the_one_process_bytes(
    tmp_path, inputs, ray_local, one_process_site
):
    ray_site = tmp_path / "ray"
    args = [*build_args(*inputs, ray_site), "--ray", "--shards", "2", "--feature-shards", "2"]
    assert main(args) == 0
    assert tree_digest(ray_site) == tree_digest(one_process_site)


def test_a_shard_task_killed_mid_shard_is_retried_and_the_site_is_unchanged(
    tmp_path, inputs, ray_local, one_process_site
):
    out = tmp_path / "site"
    killed: list[int] = []

    def kill_first_shard_task() -> None:
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            for proc in shard_workers():
                proc.kill()
                killed.append(proc.pid)
                return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_first_shard_task)
    killer.start()
    code = main([*build_args(*inputs, out), "--ray", "--shards", "2", "--max-retries", "2"])
    killer.join()
    assert killed, "no shard task was seen running"
    assert code == 0
    assert tree_digest(out) == tree_digest(one_process_site)


def test_a_shard_that_keeps_failing_ends_the_build_in_one_line_and_keeps_the_old_site(
    tmp_path, inputs, ray_local, capsys
):
    out = tmp_path / "site"
    assert main([*build_args(*inputs, out), "--ray", "--shards", "2"]) == 0
    before = tree_digest(out)
    stop = threading.Event()

    def kill_every_shard_task() -> None:
        while not stop.is_set():
            for proc in shard_workers():
                proc.kill()
            time.sleep(0.005)

    killer = threading.Thread(target=kill_every_shard_task)
    killer.start()
    try:
        code = main([*build_args(*inputs, out), "--ray", "--shards", "2", "--max-retries", "1"])
    finally:
        stop.set()
        killer.join()
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert code == 2
    assert len(errors) == 1 and errors[0].startswith("saesite: error: shard ")
    assert "retries" in errors[0]
    assert tree_digest(out) == before
