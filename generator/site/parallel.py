"""Run a job over index ranges in forked worker processes (rendering is CPU-bound Python).

    results = map_ranges(job, n, workers)      # job(start, stop) over [0, n) in chunks
    results = map_ranges(job, [(0, 500), (500, 1000)], workers)   # over the chunks given

Workers are forked, so ``job`` may be a closure over anything the parent holds (templates,
summaries, a ``SiteWriter``): nothing is pickled but the ``(start, stop)`` bounds and each
chunk's return value. Jobs must not use torch (its thread pool does not survive a fork); the
renderer's do not import it. A worker dies with its parent (``PR_SET_PDEATHSIG`` on Linux), so a
build killed mid-way leaves no process writing into its temporary folder. An exception in a
worker is raised in the parent. With ``workers <= 1`` the job runs inline, in order.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from saesite.threads import available_cpus

R = TypeVar("R")

CHUNKS_PER_WORKER = 8
"""Chunks handed to each worker on average: small enough to balance, large enough to amortise."""
PR_SET_PDEATHSIG = 1

_job: Callable[[int, int], object] | None = None


def worker_count(requested: int | None, n_items: int, min_items: int) -> int:
    """``requested`` if given, else the CPUs this process may use (affinity and cgroup quota,
    ``saesite.threads``; at most 8) when there are at least ``min_items`` items, else 1."""
    if requested is not None:
        return max(1, requested)
    if n_items < min_items:
        return 1
    return max(1, min(available_cpus(), 8))


def ranges(n: int, n_chunks: int) -> list[tuple[int, int]]:
    """``[0, n)`` cut into at most ``n_chunks`` contiguous ranges of near-equal size."""
    size = max(1, -(-n // max(1, n_chunks)))
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def _die_with_parent(parent: int) -> None:
    """For correctness, not speed: a worker of a killed build must not go on writing into the
    build's temporary folder (Linux ``prctl(PR_SET_PDEATHSIG)``; elsewhere workers end when
    their queue closes)."""
    # Ctrl-C reaches the whole process group: the parent alone handles it (and terminates the
    # pool), so workers print no "Process ForkPoolWorker-N:" traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: workers end when their queue closes
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _call(bounds: tuple[int, int]) -> tuple[int, object]:
    assert _job is not None
    return bounds[1] - bounds[0], _job(*bounds)


def map_ranges(
    job: Callable[[int, int], R], n: int | Sequence[tuple[int, int]], workers: int
) -> Iterator[tuple[int, R]]:
    """Yield ``(items done, job(start, stop))`` per chunk of ``[0, n)`` (or per chunk of ``n``,
    a list of ``(start, stop)``), in completion order (in order with one worker)."""
    global _job
    if isinstance(n, int):
        chunks = ranges(n, workers * CHUNKS_PER_WORKER if workers > 1 and n > 1 else 1)
    else:
        chunks = list(n)
    if workers <= 1 or len(chunks) <= 1:
        for start, stop in chunks:
            yield stop - start, job(start, stop)
        return
    _job = job
    try:
        context = multiprocessing.get_context("fork")
        with context.Pool(
            min(workers, len(chunks)), initializer=_die_with_parent, initargs=(os.getpid(),)
        ) as pool:
            yield from pool.imap_unordered(_call, chunks)
    finally:
        _job = None
