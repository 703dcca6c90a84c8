from pathlib import Path

import orjson

from saesite.site.intake import Intake, take_records
from saesite.site.labels import Labels
from saesite.site.token_markup import TokenDisplay
from saesite.site.writer import SiteWriter
from tests.fixtures.sample_records import sample_site


def _intake(site: dict, n: int) -> Intake:
    return Intake(
        Labels(site, None, n),
        TokenDisplay(site.get("token_bytes")),
        features_per_folder=5,
        folder_width=3,
    )


def _json_files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.json")}


def test_records_are_taken_in_index_order_into_their_folders_with_json_held_for_the_pages(
    tmp_path,
):
    site, features = sample_site(23, seed=3)
    with SiteWriter(tmp_path / "here") as writer:
        summaries, entries, held = take_records(iter(features), _intake(site, 23), writer)
        assert writer.n_files == 0  # every JSON held in memory for the page workers
        for summary in summaries:
            writer.write(summary.json, held[summary.index])
        writer.commit()
    assert [s.index for s in summaries] == [e["index"] for e in entries] == list(range(23))
    assert [s.json for s in summaries][:6] == [f"features/{i // 5:03d}/{i}.json" for i in range(6)]
    assert len([p for p in _json_files(tmp_path / "here") if p.startswith("features/")]) == 23
    assert orjson.loads((tmp_path / "here" / summaries[7].json).read_bytes())["index"] == 7
