"""``saesite build --ray``: token shards and page ranges as Ray tasks, on a local instance bound
to 127.0.0.1.

One Ray instance for the whole session (starting one takes ~9 s); it never listens on another
address. The site must be byte for byte the one ``--shard``/``merge`` and one process write.
Builds with ``--features-per-folder 32`` have three folders of the 96 features, so three page
ranges (one Ray task each).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

ray = pytest.importorskip("ray")

from saesite.cli import main  # noqa: E402
from saesite.ray_pages import RayPages  # noqa: E402
from saesite.site.render import rerender_site  # noqa: E402
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


SMALL_FOLDERS = ["--features-per-folder", "32"]


@pytest.fixture(scope="module")
def one_process_small_folders(tmp_path_factory, inputs):
    """The one-process site with three feature folders (three page ranges)."""
    out = tmp_path_factory.mktemp("one-process-32") / "site"
    assert main([*build_args(*inputs, out), *SMALL_FOLDERS]) == 0
    return out


KILLER = r"""
import json, os, signal, sys, time
report, mode, tasks = sys.argv[1], sys.argv[2], sys.argv[3:]
killed, titles = {}, set()
while not os.path.exists(report + ".stop") and (mode == "every" or len(killed) < len(tasks)):
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().split(b"\0")[0].decode(errors="replace").strip()
        except (OSError, ValueError):
            continue
        if not title.startswith("ray::"):
            continue
        titles.add(title)
        for task in tasks:
            wanted = mode == "every" or task not in killed
            if wanted and title.startswith(f"ray::saesite-{task}-"):
                try:
                    os.kill(int(pid), signal.SIGKILL)
                    killed.setdefault(task, int(pid))
                except ProcessLookupError:
                    pass
    time.sleep(0.002)
with open(report, "w") as f:
    json.dump({"killed": killed, "titles": sorted(titles)}, f)
"""


@contextlib.contextmanager
def killing(mode: str, *tasks: str) -> Iterator[dict]:
    """Kill the Ray workers running ``tasks`` tasks (``shard``, ``pages``: their process title
    names the task) while inside: the first of each (``mode="first"``) or every one
    (``"every"``). The killer is its own process reading ``/proc``, so a busy test process
    (the Ray driver writing pages) cannot slow it down enough to miss a short page task.
    Yields a dict that afterwards holds ``killed`` ({task: pid}) and ``titles`` (Ray's seen)."""
    report = Path(tempfile.mkdtemp()) / "killer.json"
    killer = subprocess.Popen([sys.executable, "-c", KILLER, str(report), mode, *tasks])
    seen: dict = {}
    try:
        yield seen
    finally:
        report.with_suffix(".json.stop").touch()
        killer.wait(timeout=60)
        seen.update(orjson.loads(report.read_bytes()))


def test_a_ray_build_writes_its_records_and_pages_in_ray_tasks_and_the_bytes_of_one_process(
    tmp_path, inputs, ray_local, one_process_small_folders, caplog
):
    # tests/test_shards.py shows --shard/merge writes the one-process bytes for 1, 2 and 5
    # shards; here 3 Ray shards do too, so --ray and --shard/merge write the same bytes.
    ray_site = tmp_path / "ray"
    args = [*build_args(*inputs, ray_site), *SMALL_FOLDERS, "--ray", "--shards", "3"]
    with caplog.at_level(logging.INFO, logger="saesite.ray_pages"):
        assert main(args) == 0
    expected = tree_digest(one_process_small_folders)
    assert len(expected) > 100
    assert tree_digest(ray_site) == expected
    # the driver's count of the records' and the pages' tasks, and the processes they ran
    # in: Ray workers, not the driver
    lines = [r.getMessage() for r in caplog.records if r.name == "saesite.ray_pages"]
    assert len(lines) == 2, lines
    for what, line in zip(("records", "pages"), lines, strict=True):
        found = re.fullmatch(
            rf"feature {what} of 96 features by (\d+) Ray tasks in worker processes (.*)", line
        )
        assert found, line
        assert int(found.group(1)) == 3  # one per folder of 32 features
        pids = {int(pid) for pid in found.group(2).split(", ")}
        assert pids and os.getpid() not in pids


def test_a_ray_build_over_token_and_feature_shards_writes_the_one_process_bytes(
    tmp_path, inputs, ray_local, one_process_site
):
    ray_site = tmp_path / "ray"
    args = [*build_args(*inputs, ray_site), "--ray", "--shards", "2", "--feature-shards", "2"]
    assert main(args) == 0
    assert tree_digest(ray_site) == tree_digest(one_process_site)


def test_a_shard_a_records_and_a_page_task_killed_mid_task_are_retried_and_the_site_is_unchanged(
    tmp_path, inputs, ray_local, one_process_small_folders
):
    out = tmp_path / "site"
    args = [*build_args(*inputs, out), *SMALL_FOLDERS, "--ray", "--shards", "2"]
    with killing("first", "shard", "records", "pages") as seen:
        code = main([*args, "--max-retries", "2"])
    assert set(seen["killed"]) == {"shard", "records", "pages"}, seen
    assert code == 0
    assert tree_digest(out) == tree_digest(one_process_small_folders)


def test_a_shard_that_keeps_failing_ends_the_build_in_one_line_and_keeps_the_old_site(
    tmp_path, inputs, ray_local, capsys
):
    out = tmp_path / "site"
    assert main([*build_args(*inputs, out), "--ray", "--shards", "2"]) == 0
    before = tree_digest(out)
    with killing("every", "shard"):
        code = main([*build_args(*inputs, out), "--ray", "--shards", "2", "--max-retries", "1"])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert code == 2
    assert len(errors) == 1 and errors[0].startswith("saesite: error: shard ")
    assert "retries" in errors[0]
    assert tree_digest(out) == before


@pytest.mark.parametrize("what", ["records", "pages"])
def test_a_records_or_pages_range_that_keeps_failing_ends_the_build_in_one_line_keeping_the_site(
    tmp_path, inputs, ray_local, capsys, what
):
    out = tmp_path / "site"
    args = [*build_args(*inputs, out), *SMALL_FOLDERS, "--ray", "--shards", "2"]
    assert main(args) == 0
    before = tree_digest(out)
    with killing("every", what):
        code = main([*args, "--max-retries", "1"])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert code == 2
    assert len(errors) == 1, errors
    failed = rf"saesite: error: feature {what} (0\.\.31|32\.\.63|64\.\.95) failed "
    assert re.match(failed, errors[0])
    assert "after 1 retries" in errors[0]
    assert tree_digest(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["site"]  # no temporary folder left behind


def test_a_rerender_by_ray_tasks_reads_its_records_files_here_and_renders_the_same_bytes(
    tmp_path, ray_local, one_process_small_folders, caplog
):
    # the records files are on this machine's disk, which another node would not have: they
    # are read here; only the pages are Ray tasks
    site = tmp_path / "site"
    shutil.copytree(one_process_small_folders, site)
    with caplog.at_level(logging.INFO, logger="saesite.ray_pages"):
        rerender_site(site, pages=RayPages(ray, max_retries=1))
    lines = [r.getMessage() for r in caplog.records if r.name == "saesite.ray_pages"]
    assert len(lines) == 1 and lines[0].startswith("feature pages of 96 features by 3 "), lines
    assert tree_digest(site) == tree_digest(one_process_small_folders)
