"""A build alone, then the same build beside one CPU-bound process: how much slower it gets.

    .venv/bin/python benchmarks/competing.py --repeat 2 -- --no-ce-loss

Each round runs ``saesite build`` (the demo unless arguments after ``--`` say otherwise) alone,
then again while a busy-loop process (pure Python, one core) runs; the rounds interleave so
that slow spells of a shared machine fall on both. Prints each pair's wall times, their ratio
and the load average; saesite chooses its own thread count (``saesite.threads``). On 2 cores the
build's fair share beside one competitor is about half the machine, so proportional slowdown is
about 1.3-2x; OpenMP threads spinning against the competitor showed up as 10x before.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUSY = "while True: pass"


def build_seconds(args: list[str], out: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "saesite", "-q", "build", "--out", str(out), *args], check=True
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("build_args", nargs="*", help="arguments for saesite build (after --)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.repeat):
            alone = build_seconds(args.build_args, Path(tmp) / f"alone-{round_}")
            load = os.getloadavg()[0]
            busy = subprocess.Popen([sys.executable, "-c", BUSY])
            try:
                beside = build_seconds(args.build_args, Path(tmp) / f"beside-{round_}")
            finally:
                busy.kill()
                busy.wait()
            print(
                f"round {round_}: alone {alone:.1f} s, beside one busy process {beside:.1f} s, "
                f"ratio {beside / alone:.2f} (load average {load:.1f} -> "
                f"{os.getloadavg()[0]:.1f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
