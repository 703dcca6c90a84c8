from pathlib import Path

import orjson

from saesite.site.intake import Intake, range_source, take_records, take_records_in_workers
from saesite.site.labels import Labels
from tests.fixtures.sample_records import sample_site
from saesite.site.writer import SiteWriter
from saesite.site.token_markup import TokenDisplay


def _intake(site: dict, n: int) -> Intake:
    return Intake(
        Labels(site, None, n),
        TokenDisplay(site.get("token_bytes")),
        features_per_folder=5,
        folder_width=3,
    )


def _json_files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.json")}


def test_records_taken_by_workers_equal_records_taken_here(tmp_path):
    site, features = sample_site(23, seed=3)
    with SiteWriter(tmp_path / "here") as writer:
        here, here_entries, held = take_records(iter(features), _intake(site, 23), writer)
        for summary in here:
            writer.write(summary.json, held[summary.index])
        writer.commit()
    with SiteWriter(tmp_path / "workers") as writer:
        there, there_entries = take_records_in_workers(
            range_source(features), 23, _intake(site, 23), writer, workers=2
        )
        assert writer.n_files == 23  # counted once, though written by other processes
        writer.commit()
    assert there == here and there_entries == here_entries
    assert [s.json for s in here][:6] == [f"features/{i // 5:03d}/{i}.json" for i in range(6)]
    assert _json_files(tmp_path / "workers") == _json_files(tmp_path / "here")
    assert orjson.loads((tmp_path / "here" / here[7].json).read_bytes())["index"] == 7


def test_only_sources_that_give_any_range_are_taken_by_range():
    class Ranged:
        def between(self, start, stop):
            return range(start, stop)

    assert list(range_source([10, 11, 12, 13])(1, 3)) == [11, 12]
    assert list(range_source(Ranged())(2, 5)) == [2, 3, 4]
    assert range_source(iter([1, 2])) is None
