"""How many torch threads saesite runs: the CPUs it may actually use, shared by its processes.

torch's default is one OpenMP thread per CPU it can see, but a container limited by a cgroup
quota (``cpu.max``) sees every CPU of the host, and two processes with a thread per CPU each
oversubscribe them: OpenMP threads spin-wait on each other, measured 10x slower on 2 cores.

    available_cpus()      min(CPUs in the affinity mask, ceil(cgroup quota / period))
    torch_threads(n)      threads for each of n processes sharing them: available // n, >= 1
    use_available_cpus()  set torch's thread count to torch_threads(1), unless the user chose
                          one with OMP_NUM_THREADS / MKL_NUM_THREADS
    one_thread()          a block of many tiny torch calls run on one thread (see there)
    sleep_when_waiting()  OpenMP threads sleep instead of spinning while they wait for work
                          (OMP_WAIT_POLICY=PASSIVE), set by the CLI before torch is imported

Forked worker processes (records and pages) run torch on one thread each; the streaming pass
runs alone in the main process with every available CPU.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
USER_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
WAIT_POLICY_VARIABLE = "OMP_WAIT_POLICY"


def affinity_cpus() -> int:
    """CPUs this process may be scheduled on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs' worth of time the cgroup quota allows (cgroup v2 ``cpu.max``, v1
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), None when there is no quota."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def available_cpus(root: Path = CGROUP_ROOT) -> int:
    """CPUs saesite may keep busy: the affinity mask, capped by a cgroup quota (rounded up)."""
    cpus = affinity_cpus()
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        cpus = min(cpus, max(1, math.ceil(limit)))
    return max(1, cpus)


def torch_threads(processes: int = 1, root: Path = CGROUP_ROOT) -> int:
    """Threads for each of ``processes`` torch processes sharing the available CPUs."""
    return max(1, available_cpus(root) // max(1, processes))


def use_available_cpus(processes: int = 1) -> int:
    """Set torch's intra-op thread count for ``processes`` concurrent processes; returns it.

    An explicit ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` wins: the user knows the machine.
    """
    import torch

    if any(os.environ.get(name) for name in USER_THREAD_VARIABLES):
        return torch.get_num_threads()
    threads = torch_threads(processes)
    if threads != torch.get_num_threads():
        log.debug("torch threads %d -> %d", torch.get_num_threads(), threads)
        torch.set_num_threads(threads)
    return threads


def sleep_when_waiting() -> bool:
    """Make OpenMP's idle threads sleep rather than spin (``OMP_WAIT_POLICY=PASSIVE``) for
    this process and those it starts (record/page workers, Ray workers); True if in effect.

    By default an OpenMP thread that finishes its share of an op spins for a while waiting for
    the next one. On a machine shared with another CPU-bound process that spinning takes the
    cores the other threads of the same op need, and every op waits for its slowest,
    descheduled thread. Measured on 2 cores (``benchmarks/competing.py``, benchmarks/README.md):
    the demo beside one busy process 3.1–3.4x slower than alone with libgomp's default waits,
    1.2–1.4x with sleeping threads, which cost 4–6% alone (GPT-2 shape and demo). The
    runtime reads the variable
    once, when torch loads it, so this works only before ``import torch`` (the CLI calls it
    first); a policy the user set wins.
    """
    if WAIT_POLICY_VARIABLE in os.environ:
        return os.environ[WAIT_POLICY_VARIABLE].upper() == "PASSIVE"
    if "torch" in sys.modules:
        return False
    os.environ[WAIT_POLICY_VARIABLE] = "PASSIVE"
    return True


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block with one torch intra-op thread, then restore the count.

    For loops of many small calls (a ``bincount`` per feature row, a toy SAE's steps): each call
    would fork and join the OpenMP team, and on a busy machine the join waits for a descheduled
    thread. Measured for the logit histograms (166 rows × 50,257 logits per chunk, 2 threads,
    load ~8): 1,001 ms per chunk with the team, 179 ms on one thread; the toy SAE steps 20x.
    """
    import torch

    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
