"""Never lose a user's file: what `build`, `render`, `toy` and the train commands may replace.

Every case runs the real command line on a real project folder holding a `.git`, a README and
the build's inputs, and compares every byte of it before and after.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from saesite.cli import main
from saesite.site.out_folder import MANIFEST, TMP_MARKERS, read_manifest
from tests.conftest import make_tiny_sae_dir


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (links as their target's text), by relative path."""
    found = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            found[rel] = os.readlink(path).encode()
        elif path.is_file():
            found[rel] = path.read_bytes()
    return found


def debris(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if any(t in p.name for t in TMP_MARKERS))


@pytest.fixture
def project(tmp_path, tiny_sae_dir, tiny_tokens_npy, monkeypatch) -> Path:
    """``work/proj``: a git repository with a README and the build's inputs under ``in/``; the
    working folder is ``proj``, and the home folder is ``work/home``."""
    proj = tmp_path / "work" / "proj"
    (proj / ".git" / "objects").mkdir(parents=True)
    (proj / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (proj / ".git" / "objects" / "ab").write_bytes(b"\x00blob")
    (proj / "README.md").write_text("# my project\n")
    shutil.copytree(tiny_sae_dir, proj / "in" / "sae")
    shutil.copy(tiny_tokens_npy, proj / "in" / "tokens.npy")
    (proj / "in" / "labels.csv").write_text("id,label\n1,one\n")
    (tmp_path / "work" / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "work" / "home"))
    monkeypatch.chdir(proj)
    return proj


def build_args(tiny_model_dir: Path, *extra: str) -> list[str]:
    return [
        "-q",
        "build",
        "--model",
        str(tiny_model_dir),
        "--sae",
        "in/sae",
        "--dataset",
        "in/tokens.npy",
        "--no-ce-loss",
        *extra,
    ]


def copy_site(tiny_site: Path, to: Path) -> Path:
    shutil.copytree(tiny_site, to, symlinks=True)
    return to


def _copied_site_json(proj: Path, tiny_site: Path) -> list[str]:
    (proj / "docs").mkdir()
    shutil.copy(tiny_site / "site.json", proj / "docs" / "site.json")
    (proj / "docs" / "notes.md").write_text("notes")
    return ["--out", "docs"]


def _project_from_its_parent(proj: Path, tiny_site: Path) -> list[str]:
    os.chdir(proj.parent)  # the fixture's monkeypatch.chdir restores the working folder
    return ["--out", "proj", "--force"]


def _dot_without_inputs(proj: Path, tiny_site: Path) -> list[str]:
    (proj / "paper").mkdir()
    (proj / "paper" / "draft.tex").write_text("precious")
    os.chdir(proj / "paper")
    inputs = ["--sae", "../in/sae", "--dataset", "../in/tokens.npy"]
    return [*inputs, "--out", ".", "--replace-folder", "."]


REFUSED = [
    # (case id, extra build arguments or a function of (project, tiny_site) giving them, message)
    ("dot-force", ["--out", ".", "--force"], "--out '.' holds the input 'in/sae'"),
    ("dot-replace", _dot_without_inputs, "is the working folder and holds files"),
    ("project-force", _project_from_its_parent, "saesite did not write (.git, README.md, in)"),
    ("sae-input", ["--out", "in/sae", "--force"], "holds the input 'in/sae'"),
    (
        "sae-input-named",
        ["--out", "in/sae", "--replace-folder", "in/sae"],
        "holds the input 'in/sae'",
    ),
    ("inputs-parent", ["--out", "in", "--replace-folder", "in"], "holds the input"),
    ("parent", ["--out", "..", "--force"], "is a folder above the working folder"),
    ("home", ["--out", "../home"], "is your home folder"),
    ("root", ["--out", "/", "--replace-folder", "/"], "is the filesystem root"),
    ("copied-site-json", _copied_site_json, "saesite did not write (notes.md, site.json)"),
    ("mismatched-replace", ["--out", "new", "--replace-folder", "."], "expected the same path"),
]


@pytest.mark.parametrize(
    ("extra", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_a_build_into_a_folder_it_may_not_replace_is_one_line_and_touches_nothing(
    capsys, project, tiny_model_dir, tiny_site, extra, message
):
    if callable(extra):
        extra = extra(project, tiny_site)
    parent = project.parent
    before = snapshot(parent)
    code = main(build_args(tiny_model_dir, *extra))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("saesite: error:") == 1 and message in err, err
    assert "Traceback" not in err
    assert snapshot(parent) == before
    assert debris(parent) == []


def test_render_refuses_a_folder_holding_a_copied_site_json(capsys, project, tiny_site):
    _copied_site_json(project, tiny_site)
    before = snapshot(project)
    assert main(["-q", "render", "docs"]) == 2
    assert f"no {MANIFEST}" in capsys.readouterr().err
    assert snapshot(project) == before


def test_replace_folder_naming_the_output_twice_deletes_a_foreign_folder(
    capsys, project, tiny_model_dir
):
    (project / "old").mkdir()
    (project / "old" / "scratch.txt").write_text("x")
    code = main(build_args(tiny_model_dir, "--out", "old", "--replace-folder", "./old/"))
    assert code == 0, capsys.readouterr().err
    assert not (project / "old" / "scratch.txt").exists()
    assert read_manifest(project / "old") is not None
    assert (project / ".git" / "HEAD").is_file() and (project / "README.md").is_file()


def test_the_manifest_lists_exactly_the_files_the_build_wrote(tiny_site):
    listed = read_manifest(tiny_site)
    on_disk = {p.relative_to(tiny_site).as_posix() for p in tiny_site.rglob("*") if p.is_file()}
    assert listed == on_disk - {MANIFEST}
    assert {"index.html", "site.json", ".nojekyll"} <= listed


def test_a_rebuild_keeps_files_the_user_added_and_says_so(tmp_path, tiny_site, caplog):
    site = copy_site(tiny_site, tmp_path / "site")
    (site / "CNAME").write_text("features.example.org\n")
    (site / "notes").mkdir()
    (site / "notes" / "todo.md").write_text("relabel 3")
    (site / ".git").mkdir()
    (site / ".git" / "HEAD").write_text("ref: refs/heads/gh-pages\n")
    (site / "features" / "extra.txt").write_text("mine")
    (site / "index.html").write_text("edited by hand")  # a file saesite wrote: replaced
    os.symlink("notes/todo.md", site / "latest")
    with caplog.at_level(logging.INFO, logger="saesite"):
        assert main(["render", str(site), "--title", "again"]) == 0
    assert (site / "CNAME").read_text() == "features.example.org\n"
    assert (site / "notes" / "todo.md").read_text() == "relabel 3"
    assert (site / ".git" / "HEAD").read_text() == "ref: refs/heads/gh-pages\n"
    assert (site / "features" / "extra.txt").read_text() == "mine"
    assert os.readlink(site / "latest") == "notes/todo.md"
    assert "again" in (site / "index.html").read_text()
    assert "kept 5 file(s) saesite did not write" in caplog.text and "CNAME" in caplog.text
    assert "CNAME" not in read_manifest(site)
    assert main(["-q", "render", str(site)]) == 0  # and again: still kept, still not listed
    assert (site / "CNAME").is_file() and "CNAME" not in read_manifest(site)
    assert debris(tmp_path) == []


def test_a_user_file_where_the_new_site_writes_one_is_refused_before_the_swap(
    capsys, tmp_path, tiny_site
):
    site = copy_site(tiny_site, tmp_path / "site")
    manifest = json.loads((site / MANIFEST).read_text())
    manifest["files"].remove("index.html")  # as if an older site had no index.html
    (site / MANIFEST).write_text(json.dumps(manifest))
    before = snapshot(site)
    assert main(["-q", "render", str(site)]) == 2
    assert "index.html' is not a file saesite wrote" in capsys.readouterr().err
    assert snapshot(site) == before and debris(tmp_path) == []


def test_a_symlinked_output_is_rebuilt_at_its_target_and_stays_a_link(tmp_path, tiny_site):
    target = copy_site(tiny_site, tmp_path / "www" / "features")
    (target / "CNAME").write_text("x.org")
    link = tmp_path / "public"
    link.symlink_to(target)
    assert main(["-q", "render", str(link), "--title", "linked"]) == 0
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert "linked" in (target / "index.html").read_text()
    assert (target / "CNAME").read_text() == "x.org"
    assert debris(tmp_path) == []


def test_an_output_path_ending_in_dotdot_builds_in_the_folder_it_names(
    capsys, project, tiny_model_dir
):
    code = main(build_args(tiny_model_dir, "--out", "fresh/b/.."))
    assert code == 0, capsys.readouterr().err
    assert read_manifest(project / "fresh") is not None
    assert debris(project.parent) == []


def test_train_sae_refuses_to_overwrite_an_sae_and_force_replaces_only_its_files(
    capsys, tmp_path, tiny_model_dir, tiny_tokens_npy
):
    out = make_tiny_sae_dir(tmp_path / "sae", d_sae=40)
    (out / "notes.txt").write_text("keep me")
    before = snapshot(out)
    args = [
        "-q",
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
        "5",
        "--sae-batch-size",
        "64",
        "--batch-size",
        "4",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "already holds cfg.json, sae_weights.safetensors" in err and "--force" in err
    assert snapshot(out) == before
    assert main([*args, "--force"]) == 0
    assert json.loads((out / "cfg.json").read_text())["d_sae"] == 48
    assert (out / "notes.txt").read_text() == "keep me"


def test_train_model_refuses_to_overwrite_a_model_folder(capsys, tmp_path, tiny_model_dir):
    out = shutil.copytree(tiny_model_dir, tmp_path / "model")
    before = snapshot(out)
    assert main(["-q", "train-model", "--out", str(out), "--steps", "1"]) == 2
    assert "already holds config.json, model.safetensors" in capsys.readouterr().err
    assert snapshot(out) == before


def _run_unprivileged(*argv: str) -> subprocess.CompletedProcess:
    """The command line as a user without root's power to write anywhere (as nobody when the
    tests run as root), so read-only folders are read-only."""
    command = [sys.executable, "-m", "saesite", "-q", *argv]
    if os.geteuid() == 0:
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.fixture
def open_tmp():
    """A temporary folder any user can enter (pytest's tmp_path is private to its owner)."""
    folder = Path(tempfile.mkdtemp(prefix="saesite-ro-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    shutil.rmtree(folder)


@pytest.mark.skipif(
    os.geteuid() == 0 and shutil.which("setpriv") is None, reason="needs setpriv as root"
)
def test_read_only_output_folders_are_one_line_for_render_and_build(
    open_tmp, tiny_site, tiny_model_dir, tiny_sae_dir
):
    site = copy_site(tiny_site, open_tmp / "site")
    for path in [site, *site.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    site.chmod(0o555)
    before = snapshot(site)
    done = _run_unprivileged("render", str(site))
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("saesite: error:") == 1 and "is read-only" in done.stderr
    assert "Traceback" not in done.stderr
    assert snapshot(site) == before and debris(open_tmp) == []

    locked = open_tmp / "locked"
    locked.mkdir(mode=0o555)
    locked.chmod(0o555)
    done = _run_unprivileged(
        "build",
        "--model",
        str(tiny_model_dir),
        "--sae",
        str(tiny_sae_dir),
        "--out",
        str(locked / "site"),
    )
    assert done.returncode == 2, done.stderr
    assert "is read-only" in done.stderr and "Traceback" not in done.stderr
    assert list(locked.iterdir()) == []
