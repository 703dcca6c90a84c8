import os

import pytest

from saesite.site.parallel import map_ranges, ranges, worker_count


@pytest.mark.parametrize("n, chunks", [(0, 4), (1, 4), (10, 3), (10, 10), (10, 32), (1000, 16)])
def test_ranges_cover_every_index_once_in_at_most_the_chunks_asked_for(n, chunks):
    cut = ranges(n, chunks)
    assert [i for start, stop in cut for i in range(start, stop)] == list(range(n))
    assert len(cut) <= chunks and all(stop > start for start, stop in cut)


def test_worker_count_is_one_for_small_jobs_and_what_was_asked_otherwise():
    assert worker_count(None, 10, min_items=256) == 1
    assert 1 <= worker_count(None, 1000, min_items=256) <= 8
    assert worker_count(3, 10, min_items=256) == 3


@pytest.mark.parametrize("workers", [1, 2])
def test_map_ranges_runs_the_job_on_every_chunk_in_forked_workers(workers):
    parent = os.getpid()

    def job(start, stop):
        return list(range(start, stop)), os.getpid()

    results = list(map_ranges(job, 50, workers))
    assert sum(done for done, _ in results) == 50
    assert sorted(i for _, (items, _) in results for i in items) == list(range(50))
    pids = {pid for _, (_, pid) in results}
    assert (pids == {parent}) if workers == 1 else (parent not in pids)


def test_an_exception_in_a_worker_is_raised_in_the_parent():
    def job(start, stop):
        if start > 0:
            raise RuntimeError(f"chunk at {start} failed")
        return stop - start

    with pytest.raises(RuntimeError, match="chunk at"):
        list(map_ranges(job, 20, 2))


# The script starts as a terminal's foreground job does, with Python's own SIGINT handler: a
# test runner started in the background by a non-interactive shell (CI) passes SIGINT down
# ignored, and a process that ignores SIGINT rightly goes on after Ctrl-C.
INTERRUPTED_SCRIPT = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
from saesite.site.parallel import map_ranges

def job(start, stop):
    open(os.path.join(sys.argv[1], str(os.getpid())), "w").close()  # inside the job now
    time.sleep(60)

try:
    for _ in map_ranges(job, 8, 2):
        pass
except KeyboardInterrupt:
    print("saesite: interrupted", file=sys.stderr)
    sys.exit(130)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux /proc")
def test_ctrl_c_with_workers_running_prints_only_the_parents_line(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    process = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_SCRIPT, str(tmp_path)],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a shell gives a foreground job
    )
    deadline = time.monotonic() + 60
    # both workers inside the job (however loaded the machine), not still starting up
    while len(list(tmp_path.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(list(tmp_path.iterdir())) == 2, "the workers never started the job"
    time.sleep(0.5)  # and the parent back in its wait for results, out of the pool's set-up
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert err.strip() == "saesite: interrupted", err
