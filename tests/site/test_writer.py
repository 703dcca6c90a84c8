import errno
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

import saesite.site.writer as site_writer
from saesite.config import RenderConfig
from saesite.errors import SaesiteError
from saesite.site.render import write_site
from saesite.site.writer import SiteWriter, clean_debris, is_saesite_build, json_for_script
from tests.fixtures.sample_records import sample_site

WRITE_SCRIPT = """
import sys
from saesite.config import RenderConfig
from saesite.site.render import write_site
from tests.fixtures.sample_records import sample_site
site, features = sample_site(int(sys.argv[2]), seed=int(sys.argv[3]))
write_site(site, features, RenderConfig(out=sys.argv[1], workers=int(sys.argv[4])))
"""


def _write(out: Path, n: int = 6, seed: int = 0, **cfg) -> Path:
    site, features = sample_site(n, seed=seed)
    return write_site(site, features, RenderConfig(out=str(out), **cfg))


def _seed_of(out: Path) -> int:
    return orjson.loads((out / "site.json").read_bytes())["config"]["seed"]


def _is_complete(out: Path) -> bool:
    site = orjson.loads((out / "site.json").read_bytes())
    return (
        all(
            (out / f["html"]).is_file() and (out / f["records"]).is_file() for f in site["features"]
        )
        and (out / "index.html").is_file()
    )


def _debris(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if "saesite-" in p.name)


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_json_for_script_escapes_what_could_end_a_script():
    text = json_for_script({"k": "</script><!-- & \u2028\u2029"})
    assert text == '{"k":"\\u003c/script\\u003e\\u003c!-- \\u0026 \\u2028\\u2029"}'
    assert orjson.loads(text) == {"k": "</script><!-- & \u2028\u2029"}


def test_a_folder_saesite_did_not_write_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"jpeg")
    with pytest.raises(SaesiteError, match="--force"):
        _write(out)
    assert (out / "holiday.jpg").read_bytes() == b"jpeg"
    assert _debris(tmp_path) == []


def test_replace_folder_naming_the_output_replaces_a_foreign_folder(tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"jpeg")
    _write(out, replace_folder=str(out))
    assert is_saesite_build(out) and not (out / "holiday.jpg").exists()


def test_an_empty_folder_and_a_previous_build_are_accepted(tmp_path):
    out = tmp_path / "site"
    out.mkdir()
    _write(out, seed=1)
    assert _seed_of(out) == 1
    _write(out, seed=2)
    assert _seed_of(out) == 2
    assert _debris(tmp_path) == []


def test_an_output_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "site").write_text("x")
    with pytest.raises(SaesiteError, match="not a folder"):
        _write(tmp_path / "site")


def _fail_after(monkeypatch, n_files: int, error: Exception) -> None:
    real = site_writer.write_bytes
    calls = {"n": 0}

    def flaky(path, data):
        calls["n"] += 1
        if calls["n"] > n_files:
            raise error
        real(path, data)

    monkeypatch.setattr(site_writer, "write_bytes", flaky)


def test_a_full_disk_is_one_clear_error_and_the_previous_site_survives(tmp_path, monkeypatch):
    out = _write(tmp_path / "site", seed=1)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    _fail_after(monkeypatch, 10, OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(SaesiteError, match="disk full"):
        _write(out, seed=2)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert _debris(tmp_path) == []


def test_a_full_disk_in_a_page_worker_is_the_same_clear_error(tmp_path, monkeypatch):
    out = _write(tmp_path / "site", seed=1)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real = site_writer.write_bytes

    def full_for_pages(path, data):
        if path.suffix == ".html" and "features" in path.parts:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(site_writer, "write_bytes", full_for_pages)
    with pytest.raises(SaesiteError, match="disk full"):
        _write(out, seed=2, workers=2)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert _debris(tmp_path) == []


def test_any_failure_while_writing_removes_the_temporary_folder(tmp_path, monkeypatch):
    _fail_after(monkeypatch, 3, RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        _write(tmp_path / "site")
    assert not (tmp_path / "site").exists()
    assert _debris(tmp_path) == []


def test_debris_of_killed_builds_is_removed_by_the_next_build(tmp_path):
    out = _write(tmp_path / "site", seed=1)
    stale = tmp_path / f".site.saesite-tmp-{_dead_pid()}"
    stale.mkdir()
    (stale / "index.html").write_text("half")
    _write(out, seed=2)
    assert _debris(tmp_path) == []


def test_a_temporary_folder_of_a_running_build_is_left_alone(tmp_path):
    live = tmp_path / f".site.saesite-tmp-{os.getppid()}"
    live.mkdir()
    clean_debris(tmp_path / "site")
    assert live.exists()


def test_a_swap_interrupted_between_its_two_renames_restores_the_previous_site(tmp_path):
    out = _write(tmp_path / "site", seed=1)
    moved = tmp_path / f".site.saesite-old-{_dead_pid()}"
    out.rename(moved)  # the state after "rename old away", before "rename new in"
    clean_debris(out)
    assert _seed_of(out) == 1 and _is_complete(out)
    assert _debris(tmp_path) == []


def test_the_writer_swaps_atomically_even_without_renameat2(tmp_path, monkeypatch):
    out = _write(tmp_path / "site", seed=1)
    monkeypatch.setattr(site_writer, "_exchange", lambda a, b: False)
    _write(out, seed=2)
    assert _seed_of(out) == 2 and _debris(tmp_path) == []


def test_killing_a_real_build_at_random_moments_never_loses_the_previous_site(tmp_path):
    out = _write(tmp_path / "site", n=40, seed=100)
    rng = random.Random(0)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    seeds_seen = set()
    for attempt in range(4):
        process = subprocess.Popen(
            # odd attempts render pages in two forked workers, which must die with the build
            [
                sys.executable,
                "-c",
                WRITE_SCRIPT,
                str(out),
                "150",
                str(attempt),
                str(1 + attempt % 2),
            ],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.4, 2.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert is_saesite_build(out) or any("saesite-old" in d for d in _debris(tmp_path))
        clean_debris(out)
        assert _is_complete(out), f"attempt {attempt}: incomplete site"
        seeds_seen.add(_seed_of(out))
    _write(out, seed=7)
    assert _seed_of(out) == 7 and _is_complete(out)
    assert _debris(tmp_path) == []
    assert seeds_seen <= {100, 0, 1, 2, 3}


def test_site_writer_refuses_nothing_when_the_output_does_not_exist(tmp_path):
    with SiteWriter(tmp_path / "new" / "site") as writer:
        writer.write("a/b.txt", "x")
        out = writer.commit()
    assert (out / "a/b.txt").read_text() == "x"
