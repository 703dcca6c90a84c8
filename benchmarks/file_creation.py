"""What creating a file costs, and how deleting files nearby changes it.

    .venv/bin/python benchmarks/file_creation.py [--dir DIR] [--files 4000] [--wait 70]

Creates ``--files`` empty files in a fresh folder under ``--dir``, deletes them, creates them
again at once, deletes them, waits ``--wait`` seconds and creates them a third time. Prints the
wall and kernel (system) time per file of each round. A site build creates a file per page and
per feature JSON (4,111 for 2,048 features), so this is the disk's share of a build;
bench_pass.py measures the same floor after each build ("the same files written alone").
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path


def create(folder: Path, n: int) -> tuple[float, float]:
    """(wall, system) milliseconds per file to create ``n`` empty files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    start, before = time.perf_counter(), os.times()
    for i in range(n):
        (folder / f"{i}.html").touch()
    wall = time.perf_counter() - start
    return wall / n * 1e3, (os.times().system - before.system) / n * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="where to create (default: the system's tmp)")
    parser.add_argument("--files", type=int, default=4000)
    parser.add_argument("--wait", type=int, default=70, help="seconds before the third round")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(dir=args.dir)) / "files"
    rounds = [("fresh folder", 0), ("right after deleting them", 0), (f"{args.wait} s later", 1)]
    try:
        for label, wait in rounds:
            time.sleep(args.wait * wait)
            wall, system = create(folder, args.files)
            print(f"{label:28s} {wall:.3f} ms per file ({system:.3f} ms in the kernel)")
            shutil.rmtree(folder)
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
