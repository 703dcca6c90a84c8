"""Which output folder a site may replace, and what of it survives: the site's manifest.

A site is identified by its manifest, ``.saesite-manifest.json`` at its root, listing every file
the build wrote (``{"saesite_manifest": 1, "files": [...]}``). Replacing a site removes exactly
those files; anything else in the folder (a ``CNAME``, notes, a ``.git``) is carried over into
the new site and logged. A folder that holds files but no manifest is never replaced, unless
the user names it for deletion with ``--replace-folder PATH`` repeating the output path. Some
folders are refused even then: ``/``, the home folder, any folder above the working folder, the
working folder when it holds anything but a site, and any folder holding one of the inputs.
See docs/output-folder.md.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import orjson

from saesite.errors import SaesiteError

log = logging.getLogger(__name__)

MANIFEST = ".saesite-manifest.json"
MANIFEST_VERSION = 1
TMP_MARKERS = (".saesite-tmp-", ".saesite-old-")
SHOWN_NAMES = 4


def manifest_bytes(files: Iterable[str]) -> bytes:
    """The manifest of a site whose files are ``files`` (``/``-separated, relative)."""
    listed = sorted(set(files) - {MANIFEST})
    return orjson.dumps({"saesite_manifest": MANIFEST_VERSION, "files": listed}) + b"\n"


def _is_relative_name(name: object) -> bool:
    if not isinstance(name, str) or not name or "\\" in name:
        return False
    parts = PurePosixPath(name).parts
    return not PurePosixPath(name).is_absolute() and ".." not in parts and ".git" not in parts


def read_manifest(folder: Path) -> frozenset[str] | None:
    """The files a site's manifest lists, or None when ``folder`` is not a saesite site."""
    path = folder / MANIFEST
    if not path.is_file() or path.is_symlink():
        return None
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("saesite_manifest") != MANIFEST_VERSION:
        return None
    files = data.get("files")
    if not isinstance(files, list) or not all(_is_relative_name(f) for f in files):
        return None
    return frozenset(files)


def is_site(folder: Path) -> bool:
    """A folder saesite wrote: it has a valid manifest."""
    return read_manifest(folder) is not None


def files_under(folder: Path) -> list[str]:
    """Every file and link under ``folder``, relative and ``/``-separated, sorted."""
    found = []
    for root, dirs, files in os.walk(folder):
        rel_root = Path(root).relative_to(folder)
        found.extend((rel_root / name).as_posix() for name in files)
        found.extend((rel_root / d).as_posix() for d in dirs if (Path(root) / d).is_symlink())
    return sorted(found)


def user_entries(folder: Path, manifest: frozenset[str]) -> list[str]:
    """What ``folder`` holds beyond its manifest's files: files, links, and whole folders
    holding no listed file (a ``.git`` is one entry). Relative, ``/``-separated, sorted."""
    listed_dirs = {str(PurePosixPath(f).parent) for f in manifest}
    listed_dirs |= {str(p) for f in manifest for p in PurePosixPath(f).parents}
    kept = []
    for root, dirs, files in os.walk(folder):
        rel_root = PurePosixPath(Path(root).relative_to(folder).as_posix())
        for d in list(dirs):
            rel = (rel_root / d).as_posix()
            if (Path(root) / d).is_symlink() or rel not in listed_dirs:
                dirs.remove(d)
                if not _is_debris(d):
                    kept.append(rel)
        for name in files:
            rel = (rel_root / name).as_posix()
            if rel not in manifest and rel != MANIFEST and not _is_debris(name):
                kept.append(rel)
    return sorted(kept)


def _is_debris(name: str) -> bool:
    return any(marker in name for marker in TMP_MARKERS)


def _shown(names: Sequence[str]) -> str:
    more = f", … ({len(names)} in all)" if len(names) > SHOWN_NAMES else ""
    return ", ".join(names[:SHOWN_NAMES]) + more


def real_path(path: str | Path) -> Path:
    """``path`` absolute with links and ``..`` resolved (a link to a folder: the folder)."""
    return Path(os.path.realpath(os.path.abspath(path)))


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


@dataclass(frozen=True, kw_only=True)
class OutputPlan:
    """Where a site goes and what of the folder there survives the swap."""

    out: Path
    """The real output folder (a link given as ``--out`` resolved to its target)."""
    keep: tuple[str, ...] = ()
    """Entries of the previous folder that are not the site's: carried over into the new one."""


def plan_output(
    out: str | Path, *, replace_folder: str | None = None, inputs: Iterable[str | Path] = ()
) -> OutputPlan:
    """Check that a site may be written at ``out``; raise a one-line ``SaesiteError`` if not.

    ``inputs``: files and folders the build reads (model, SAE, dataset, labels); a folder
    holding one is never replaced. ``replace_folder``: the user's explicit consent to delete a
    folder saesite did not write; it must name the same folder as ``out``.
    """
    given = str(out)
    target = real_path(out)
    home = real_path(Path.home())
    cwd = real_path(Path.cwd())
    if target == Path(target.anchor):
        raise SaesiteError(
            f"--out {given!r} is the filesystem root; expected a folder for the site"
        )
    if target == home:
        raise SaesiteError(f"--out {given!r} is your home folder; expected a folder for the site")
    if target in cwd.parents:
        raise SaesiteError(
            f"--out {given!r} is a folder above the working folder; expected a folder for the site"
        )
    for item in inputs:
        if item is not None and os.path.exists(item) and _inside(real_path(item), target):
            raise SaesiteError(
                f"--out {given!r} holds the input {str(item)!r}; expected an output folder that "
                "holds none of the inputs"
            )
    named = None
    if replace_folder is not None:
        named = real_path(replace_folder)
        if named != target:
            raise SaesiteError(
                f"--replace-folder {replace_folder!r} is not the output folder {given!r}; "
                "expected the same path twice"
            )
    if not target.exists():
        return OutputPlan(out=target)
    if not target.is_dir():
        raise SaesiteError(
            f"output {given!r} exists and is not a folder; expected a folder path for the site"
        )
    try:
        entries = sorted(p.name for p in target.iterdir() if not _is_debris(p.name))
    except PermissionError:
        raise SaesiteError(
            f"output folder {given!r} cannot be read; expected a folder you own"
        ) from None
    if not entries:
        return OutputPlan(out=target)
    manifest = read_manifest(target)
    keep = entries if manifest is None else user_entries(target, manifest)
    if target == cwd and keep:
        raise SaesiteError(
            f"--out {given!r} is the working folder and holds files saesite did not write "
            f"({_shown(keep)}); expected a folder of its own for the site"
        )
    if named is not None:
        return OutputPlan(out=target)
    if manifest is None:
        raise SaesiteError(
            f"output folder {given!r} holds files saesite did not write ({_shown(keep)}) and no "
            f"{MANIFEST}; --force does not replace it: choose another --out, or to delete "
            f"this folder and everything in it pass --replace-folder {given}"
        )
    return OutputPlan(out=target, keep=tuple(keep))
