"""Feature pages as Ray tasks over feature ranges (``saesite build --ray``).

Each task runs the one range job the local renderer runs (``site.feature_pages.PageJob.files``)
and returns the range's files as ``(relative path, bytes)``; the driver writes them into the
build's temporary folder (``site.writer.SiteWriter``), which is swapped in at the end as in any
build. So the workers need no shared file system for the output, a task killed half-way has
written nothing (Ray runs it again), and a range that keeps failing ends the build before the
swap, with one line naming its features. The job (summaries, token store, settings) goes into
the object store once; each task also gets its range's records (JSON, one folder of features).
At most ``IN_FLIGHT_PER_CPU`` tasks per CPU run or wait at once, so the object store holds that
many folders' JSON and files, not the whole site. No torch here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

from saesite.errors import SaesiteError
from saesite.site.feature_pages import FeatureJson, PageJob, Source
from saesite.site.writer import SiteWriter

log = logging.getLogger(__name__)

IN_FLIGHT_PER_CPU = 2
"""Tasks submitted and not yet written, per CPU of the cluster: enough to keep every CPU busy
while the driver writes, few enough to bound the object store."""


def _pages_task(
    job: PageJob, start: int, stop: int, sources: Sequence[FeatureJson]
) -> tuple[int, list[tuple[str, bytes]]]:
    """Body of the Ray task: the worker's process id, and the files of features start..stop-1."""
    return os.getpid(), list(job.files(start, stop, sources))


class RayPages:
    """A ``feature_pages.PageRunner`` on a connected Ray instance."""

    def __init__(self, ray: Any, max_retries: int, num_cpus: float = 1):
        self.ray, self.max_retries, self.num_cpus = ray, max_retries, num_cpus

    def __repr__(self) -> str:
        return f"RayPages(max_retries={self.max_retries})"

    def __call__(self, job: PageJob, writer: SiteWriter, source: Source) -> Iterator[int]:
        ray = self.ray
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        # one folder per task (500 features by default, ~0.5 s of rendering): fine enough to
        # balance and to retry cheaply, coarse enough that a task's overhead (~ms) is lost
        chunks = job.ranges(len(job.summaries))
        task = ray.remote(max_retries=self.max_retries, num_cpus=self.num_cpus)(_pages_task)
        job_ref = ray.put(job)
        todo = list(reversed(chunks))
        pending: dict[Any, tuple[int, int]] = {}
        pids: set[int] = set()
        try:
            while todo or pending:
                while todo and len(pending) < IN_FLIGHT_PER_CPU * cpus:
                    start, stop = todo.pop()
                    name = f"saesite-pages-{start}-{stop - 1}"
                    ref = task.options(name=name).remote(job_ref, start, stop, source(start, stop))
                    pending[ref] = (start, stop)
                done, _ = ray.wait(list(pending), num_returns=1)
                start, stop = pending.pop(done[0])
                try:
                    pid, files = ray.get(done[0])
                except ray.exceptions.RayError as err:
                    raise self._failure(err, start, stop) from None
                for rel_path, data in files:
                    writer.write(rel_path, data)
                pids.add(pid)
                yield stop - start
        except BaseException:
            for ref in pending:  # on a cluster that outlives this build, stop what is left
                ray.cancel(ref, force=True)
            raise
        log.info(
            "feature pages of %d features by %d Ray tasks in worker processes %s",
            len(job.summaries),
            len(chunks),
            ", ".join(str(pid) for pid in sorted(pids)),
        )

    def _failure(self, err: Exception, start: int, stop: int) -> SaesiteError:
        lines = str(err).strip().splitlines()
        cause = lines[-1] if lines else type(err).__name__
        how = (
            "raised"
            if isinstance(err, self.ray.exceptions.RayTaskError)
            else f"failed after {self.max_retries} retries"
        )
        return SaesiteError(f"feature pages {start}..{stop - 1} {how}: {cause}"[:400])
