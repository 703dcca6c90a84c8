import pickle
from pathlib import Path

import pytest

from saesite.config import RenderConfig
from saesite.site import intake
from saesite.site.feature_pages import LocalPages, PageJob
from saesite.site.page_context import FeatureSummary
from saesite.site.render import write_site
from saesite.site.token_markup import TokenDisplay
from saesite.site.token_store import ExampleTokens
from tests.fixtures.sample_records import sample_site, with_token_store
from tests.test_pipeline import tree_digest


def _job(n: int, features_per_folder: int) -> PageJob:
    summaries = [
        FeatureSummary(
            index=i, html=f"{i}.html", records=f"{i // features_per_folder}.gz", label="", row=[]
        )
        for i in range(n)
    ]
    return PageJob(
        summaries=summaries,
        features_per_folder=features_per_folder,
        display=TokenDisplay(None),
        tokens=ExampleTokens(None),
        n_tokens=None,
        per_shard=0,
        title="t",
        nav=(),
        base_url=None,
    )


@pytest.mark.parametrize(
    "n, fpf, chunks", [(0, 5, 4), (12, 5, 1), (12, 5, 2), (12, 5, 9), (1000, 32, 8)]
)
def test_page_ranges_are_whole_folders_covering_every_feature_once(n, fpf, chunks):
    cut = _job(n, fpf).ranges(chunks)
    assert [i for start, stop in cut for i in range(start, stop)] == list(range(n))
    assert len(cut) <= chunks
    assert all(start % fpf == 0 and (stop % fpf == 0 or stop == n) for start, stop in cut)


class PickledReversed:
    """A page runner as a remote one sees the job: pickled, ranges run last first, files
    returned and written by the caller (as ray_pages.RayPages does)."""

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int]] = []

    def __call__(self, job, writer, source):
        for start, stop in reversed(job.ranges(3)):
            remote = pickle.loads(pickle.dumps(job))
            for rel_path, data in list(remote.files(start, stop, source(start, stop))):
                writer.write(rel_path, data)
            self.ranges.append((start, stop))
            yield stop - start


def test_pages_from_a_pickled_job_in_any_range_order_are_the_local_bytes(tmp_path, monkeypatch):
    site, features = with_token_store(*sample_site(40, seed=3))
    # part of the JSON past the held budget: written at intake, read back for its page
    monkeypatch.setattr(intake, "HELD_JSON_BYTES", 200_000)

    def build(name: str, pages=None) -> Path:
        cfg = RenderConfig(out=str(tmp_path / name), features_per_folder=8, workers=2)
        return write_site(site, features, cfg, pages=pages)

    runner = PickledReversed()
    assert tree_digest(build("remote", runner)) == tree_digest(build("local"))
    assert runner.ranges == [(32, 40), (16, 32), (0, 16)]
    assert tree_digest(build("inline", LocalPages(workers=1))) == tree_digest(tmp_path / "local")
