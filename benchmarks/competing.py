"""A build alone, then the same build beside one CPU-bound process: how much slower it gets.

    .venv/bin/python benchmarks/competing.py --repeat 2 -- --no-ce-loss

Each round runs ``saesite build`` (the demo unless arguments after ``--`` say otherwise) alone,
then again while a busy-loop process (pure Python, one core) runs; the rounds interleave so
that slow spells of a shared machine fall on both. Prints each pair's wall times, their ratio
and the load average; saesite chooses its own thread count (``saesite.threads``). On 2 cores the
build's fair share beside one competitor is about half the machine, so proportional slowdown is
about 1.3-2x; OpenMP threads spinning against the competitor showed up as 10x before.

``--policies passive,default`` runs each round under both OpenMP wait policies: ``passive`` is
``OMP_WAIT_POLICY=PASSIVE`` (idle threads sleep), ``default`` is libgomp's own, what saesite runs
(throttled spinning; set here as an empty ``OMP_WAIT_POLICY``, which libgomp reports as an
invalid value and ignores).
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


POLICIES = {"passive": "PASSIVE", "default": ""}


def build_seconds(args: list[str], out: Path, policy: str = "passive") -> float:
    env = {**os.environ, "OMP_WAIT_POLICY": POLICIES[policy]}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "saesite", "-q", "build", "--out", str(out), *args],
        check=True,
        env=env,
        stderr=subprocess.DEVNULL if policy == "default" else None,  # libgomp's warning
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--policies", default="passive", help="passive, default or both")
    parser.add_argument("build_args", nargs="*", help="arguments for saesite build (after --)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.repeat):
            for policy in args.policies.split(","):
                out = Path(tmp) / f"{policy}-{round_}"
                alone = build_seconds(args.build_args, out / "alone", policy)
                load = os.getloadavg()[0]
                busy = subprocess.Popen([sys.executable, "-c", BUSY])
                try:
                    beside = build_seconds(args.build_args, out / "beside", policy)
                finally:
                    busy.kill()
                    busy.wait()
                print(
                    f"round {round_}, {policy} waits: alone {alone:.1f} s, beside one busy "
                    f"process {beside:.1f} s, ratio {beside / alone:.2f} (load average "
                    f"{load:.1f} -> {os.getloadavg()[0]:.1f})",
                    flush=True,
                )


if __name__ == "__main__":
    main()
