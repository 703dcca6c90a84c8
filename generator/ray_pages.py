"""Feature records and pages as Ray tasks over feature ranges (``saesite build --ray``).

Each task runs the one range job the local renderer runs (``site.feature_pages.PageJob.files``)
and returns the range's files as ``(relative path, bytes)``; the driver writes them into the
build's temporary folder (``site.writer.SiteWriter``), which is swapped in at the end as in any
build. So the workers need no shared file system for the output, a task killed half-way has
written nothing (Ray runs it again), and a range that keeps failing ends the build before the
swap, with one line naming its features. The job (summaries, token store, settings) goes into
the object store once; each task also gets its range's records (JSON, one folder of features).
At most ``IN_FLIGHT_PER_CPU`` tasks per CPU run or wait at once, so the object store holds that
many folders' JSON and files, not the whole site. No torch here.

The records are built and taken the same way before the pages (``RayPages.map_folders``, the
``intake.MapFolders`` of a Ray build): the job that builds a range's records and their JSON
(``intake.taken_by_ranges``: the statistics' arrays, the token store) goes into the object store
once, each task returns one folder's summaries, site.json entries and JSON, and the driver
takes them in index order. A Ray driver is not forked (its gRPC threads would not survive it),
so without this the records were built on the driver alone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from saesite.errors import SaesiteError
from saesite.site.feature_pages import FeatureJson, PageJob, Source
from saesite.site.intake import folder_ranges
from saesite.site.writer import SiteWriter

log = logging.getLogger(__name__)

R = TypeVar("R")

IN_FLIGHT_PER_CPU = 2
"""Tasks submitted and not yet written, per CPU of the cluster: enough to keep every CPU busy
while the driver writes, few enough to bound the object store."""


def _pages_task(
    job: PageJob, start: int, stop: int, sources: Sequence[FeatureJson]
) -> tuple[int, list[tuple[str, bytes]]]:
    """Body of the Ray task: the worker's process id, and the files of features start..stop-1."""
    return os.getpid(), list(job.files(start, stop, sources))


def _range_task(job: Callable[[int, int], R], start: int, stop: int) -> tuple[int, R]:
    """Body of a records task: the worker's process id, and ``job(start, stop)``."""
    return os.getpid(), job(start, stop)


class RayPages:
    """A ``feature_pages.PageRunner`` on a connected Ray instance."""

    def __init__(self, ray: Any, max_retries: int, num_cpus: float = 1):
        self.ray, self.max_retries, self.num_cpus = ray, max_retries, num_cpus

    def __repr__(self) -> str:
        return f"RayPages(max_retries={self.max_retries})"

    def __call__(self, job: PageJob, writer: SiteWriter, source: Source) -> Iterator[int]:
        # one folder per task (500 features by default, ~0.5 s of rendering): fine enough to
        # balance and to retry cheaply, coarse enough that a task's overhead (~ms) is lost
        chunks = job.ranges(len(job.summaries))
        pids: set[int] = set()
        ran = self._tasks(
            _pages_task, job, chunks, "pages", lambda start, stop: (source(start, stop),)
        )
        for (start, stop), (pid, files) in ran:
            for rel_path, data in files:
                writer.write(rel_path, data)
            pids.add(pid)
            yield stop - start
        self._log("feature pages", len(job.summaries), len(chunks), pids)

    def map_folders(
        self, job: Callable[[int, int], R], n: int, features_per_folder: int
    ) -> Iterator[R]:
        """``intake.MapFolders`` as Ray tasks, one per folder of features: ``job(start, stop)``
        for each, the results in completion order."""
        chunks = folder_ranges(n, features_per_folder, -(-n // features_per_folder))
        pids: set[int] = set()
        for _, (pid, result) in self._tasks(_range_task, job, chunks, "records", lambda *_: ()):
            pids.add(pid)
            yield result
        self._log("feature records", n, len(chunks), pids)

    def _tasks(
        self,
        body: Callable[..., tuple[int, Any]],
        job: Any,
        chunks: Sequence[tuple[int, int]],
        what: str,
        extra: Callable[[int, int], tuple],
    ) -> Iterator[tuple[tuple[int, int], Any]]:
        """``body(job, start, stop, *extra(start, stop))`` per chunk as a Ray task named
        ``saesite-<what>-<start>-<last>``, the job put in the object store once; yields
        ``((start, stop), result)`` in completion order, at most ``IN_FLIGHT_PER_CPU`` per CPU
        in flight."""
        ray = self.ray
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        task = ray.remote(max_retries=self.max_retries, num_cpus=self.num_cpus)(body)
        job_ref = ray.put(job)
        todo = list(reversed(chunks))
        pending: dict[Any, tuple[int, int]] = {}
        try:
            while todo or pending:
                while todo and len(pending) < IN_FLIGHT_PER_CPU * cpus:
                    start, stop = todo.pop()
                    name = f"saesite-{what}-{start}-{stop - 1}"
                    ref = task.options(name=name).remote(job_ref, start, stop, *extra(start, stop))
                    pending[ref] = (start, stop)
                done, _ = ray.wait(list(pending), num_returns=1)
                start, stop = pending.pop(done[0])
                try:
                    result = ray.get(done[0])
                except ray.exceptions.RayError as err:
                    raise self._failure(err, what, start, stop) from None
                yield (start, stop), result
        except BaseException:
            for ref in pending:  # on a cluster that outlives this build, stop what is left
                ray.cancel(ref, force=True)
            raise

    @staticmethod
    def _log(what: str, n: int, n_tasks: int, pids: set[int]) -> None:
        log.info(
            "%s of %d features by %d Ray tasks in worker processes %s",
            what,
            n,
            n_tasks,
            ", ".join(str(pid) for pid in sorted(pids)),
        )

    def _failure(self, err: Exception, what: str, start: int, stop: int) -> SaesiteError:
        lines = str(err).strip().splitlines()
        cause = lines[-1] if lines else type(err).__name__
        how = (
            "raised"
            if isinstance(err, self.ray.exceptions.RayTaskError)
            else f"failed after {self.max_retries} retries"
        )
        return SaesiteError(f"feature {what} {start}..{stop - 1} {how}: {cause}"[:400])
