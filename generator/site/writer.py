"""Writing a site atomically: build into a temporary folder beside the target, then swap it in.

A build killed at any moment leaves the previous site intact: files are written into
``.<name>.saesite-tmp-<pid>`` next to the output folder, and only a finished build is swapped
in (one ``renameat2(RENAME_EXCHANGE)`` on Linux, else two renames). Debris of killed builds is
removed by the next one. Which folder may be replaced, and which of its files are carried over
into the new site, is ``out_folder.plan_output``'s decision: a site is the files its manifest
lists, and saesite never deletes a file it did not write.

Also the one JSON helper for anything that ends up inside a page or a ``.js`` file.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import orjson

from saesite.errors import SaesiteError
from saesite.site.out_folder import (
    MANIFEST,
    files_under,
    is_site,
    manifest_bytes,
    plan_output,
    real_path,
)

log = logging.getLogger(__name__)

TMP_TAG = "saesite-tmp"
OLD_TAG = "saesite-old"
_SCRIPT_UNSAFE = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def dumps_json(obj: object) -> bytes:
    """Deterministic JSON bytes for data files: sorted keys, orjson's shortest float form."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def json_for_script(obj: object) -> str:
    """JSON safe to embed in a ``<script>`` element or a classic ``.js`` file.

    ``<``, ``>`` and ``&`` become ``\\u003c``-style escapes, so a string holding ``</script>`` or
    ``<!--`` cannot end or comment out the script; U+2028 and U+2029 are escaped because older
    JavaScript parsers treat them as line ends inside string literals.
    """
    return dumps_json(obj).decode("utf-8").translate(_SCRIPT_UNSAFE)


def is_saesite_build(folder: Path) -> bool:
    """A folder saesite wrote: it holds a valid ``.saesite-manifest.json``."""
    return is_site(folder)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_debris(out: Path) -> list[Path]:
    """Remove temporary folders left beside ``out`` by builds that were killed."""
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.(?:{TMP_TAG}|{OLD_TAG})-(\d+)$")
    removed = []
    if not out.parent.is_dir():
        return removed
    for entry in sorted(out.parent.iterdir()):
        match = pattern.match(entry.name)
        if not (match and entry.is_dir()) or _pid_alive(int(match.group(1))):
            continue
        if OLD_TAG in entry.name and not out.exists():
            # killed between the two renames of a swap: the previous site goes back in place
            entry.rename(out)
            log.warning("restored the previous site from %s", entry.name)
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    if removed:
        log.info("removed %d temporary folder(s) of earlier killed builds", len(removed))
    return removed


def check_output_folder(
    out: str | Path, *, replace_folder: str | None = None, inputs: Iterable[str | Path] = ()
) -> None:
    """Refuse early, before any work, an output path the site may not be written to."""
    _check_writable(plan_output(out, replace_folder=replace_folder, inputs=inputs).out)


def _unwritable(err: OSError, out: Path) -> SaesiteError:
    return SaesiteError(
        f"cannot write the site at {str(out)!r} ({err.strerror}: {err.filename}); expected a "
        "folder you can write to, in a folder you can write to"
    )


WRITE_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux ``renameat2(RENAME_EXCHANGE)``; False if unsupported.

    For correctness, not speed: with it, the output folder names the whole old site or the whole
    new one at every instant (a reader or a killed build never sees it missing); the fallback,
    two renames, leaves a moment in which it does not exist.
    """
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return result == 0


class SiteWriter:
    """Collects a site's files in a temporary folder; ``commit`` swaps it in place of ``out``.

    Use as a context manager: leaving the block with an exception deletes the temporary folder
    and leaves ``out`` untouched; a full disk becomes a one-line ``SaesiteError``.
    """

    def __init__(
        self,
        out: str | Path,
        *,
        replace_folder: str | None = None,
        inputs: Iterable[str | Path] = (),
    ):
        try:
            clean_debris(real_path(out))
            plan = plan_output(out, replace_folder=replace_folder, inputs=inputs)
            self.out, self.keep = plan.out, plan.keep
            _check_writable(self.out)
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = self.out.parent / f".{self.out.name}.{TMP_TAG}-{os.getpid()}"
            if self.tmp.exists():
                shutil.rmtree(self.tmp)
            self.tmp.mkdir()
        except OSError as err:
            if err.errno in WRITE_DENIED:
                raise _unwritable(err, real_path(out)) from None
            raise
        self.n_files = 0
        self.n_bytes = 0

    def __enter__(self) -> SiteWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise SaesiteError(
                    f"disk full while writing the site into {str(self.out)!r} "
                    f"({self.n_bytes:,} bytes written); the previous site is unchanged"
                ) from exc
            if isinstance(exc, OSError) and exc.errno in WRITE_DENIED:
                raise _unwritable(exc, self.out) from None

    def write(self, rel_path: str, data: bytes | str) -> None:
        """Write one file at ``rel_path`` (``/``-separated, relative to the site root)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        path = self.tmp / rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(path, data)
        self.n_files += 1
        self.n_bytes += len(data)

    def mark(self) -> tuple[int, int, int]:
        """``(process id, files, bytes)`` so far, for ``written_since``."""
        return os.getpid(), self.n_files, self.n_bytes

    def written_since(self, mark: tuple[int, int, int]) -> tuple[int, int, int]:
        """``(process id, files, bytes)`` written since ``mark``, for ``count``."""
        pid, files, size = mark
        return pid, self.n_files - files, self.n_bytes - size

    def count(self, written: tuple[int, int, int]) -> None:
        """Add what a forked worker wrote (``written_since`` there) to this process's count;
        what this process wrote itself is counted already."""
        pid, files, size = written
        if pid != os.getpid():
            self.n_files += files
            self.n_bytes += size

    def read(self, rel_path: str) -> bytes:
        """The bytes written at ``rel_path`` in this build."""
        return (self.tmp / rel_path).read_bytes()

    def copy_tree(
        self, source: Path, rel_dir: str, suffixes: Iterable[str], skip: Iterable[str] = ()
    ) -> None:
        """Copy the files of ``source`` whose names end in ``suffixes`` into ``rel_dir``, but
        those under the subfolders ``skip``."""
        skip = set(skip)
        for path in sorted(source.rglob("*")):
            if path.relative_to(source).parts[0] in skip:
                continue
            if path.is_file() and path.suffix in suffixes:
                self.write(f"{rel_dir}/{path.relative_to(source).as_posix()}", path.read_bytes())

    def commit(self) -> Path:
        """Write the manifest, carry the user's files over, swap the finished build in; the
        previous site (if any) is deleted afterwards."""
        self.write(MANIFEST, manifest_bytes(files_under(self.tmp)))
        carry_over(self.out, self.tmp, self.keep)
        if self.out.exists():
            if _exchange(self.tmp, self.out):
                shutil.rmtree(self.tmp)
            else:
                old = self.out.parent / f".{self.out.name}.{OLD_TAG}-{os.getpid()}"
                self.out.rename(old)
                self.tmp.rename(self.out)
                shutil.rmtree(old)
        else:
            self.tmp.rename(self.out)
        log.info("wrote %d files (%.1f MB) to %s", self.n_files, self.n_bytes / 1e6, self.out)
        return self.out


def _check_writable(out: Path) -> None:
    """Refuse before building a site that could not be swapped in or whose old copy could not
    be removed: the output folder (if it exists) and the folder holding it must be writable."""
    folder = out
    while not folder.exists():
        folder = folder.parent
    for path in (out, out.parent) if out.exists() else (folder,):
        if not os.access(path, os.W_OK | os.X_OK):
            raise SaesiteError(
                f"cannot write the site at {str(out)!r}: {str(path)!r} is read-only; expected "
                "a folder you can write to, in a folder you can write to"
            )


def carry_over(out: Path, tmp: Path, keep: Iterable[str]) -> None:
    """Copy the files a user added to the previous site (``keep``) into the new build ``tmp``;
    refuse, before anything is swapped, a file the new build also writes."""
    keep = list(keep)
    for rel in keep:
        source = out / rel
        if source.is_dir() and not source.is_symlink():
            names = [f"{rel}/{name}" for name in files_under(source)]
        else:
            names = [rel]
        clash = [name for name in names if os.path.lexists(tmp / name)]
        if clash:
            raise SaesiteError(
                f"{str(out / clash[0])!r} is not a file saesite wrote, and the new site writes "
                "a file of that name; expected it moved out of the site folder"
            )
        target = tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            os.symlink(os.readlink(source), target)
        elif source.is_dir():
            shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
    if keep:
        shown = ", ".join(keep[:8]) + (f", … ({len(keep)} in all)" if len(keep) > 8 else "")
        log.info("kept %d file(s) saesite did not write in the new site: %s", len(keep), shown)


def write_bytes(path: Path, data: bytes) -> None:
    """The single place files are written (tests simulate a full disk by replacing it)."""
    path.write_bytes(data)
