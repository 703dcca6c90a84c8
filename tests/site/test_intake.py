import orjson

from saesite.site.intake import Intake, take_records, write_folder
from saesite.site.labels import Labels
from saesite.site.records_file import unpack
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


def test_records_are_taken_in_index_order_into_their_folders_with_json_held_for_the_pages(
    tmp_path,
):
    site, features = sample_site(23, seed=3)
    with SiteWriter(tmp_path / "here") as writer:
        summaries, entries, held = take_records(iter(features), _intake(site, 23), writer)
        assert writer.n_files == 0  # every JSON held in memory for the page workers
        for first in range(0, 23, 5):
            folder = summaries[first : first + 5]
            write_folder(writer, folder, [held[s.index] for s in folder])
        writer.commit()
    assert [s.index for s in summaries] == [e["index"] for e in entries] == list(range(23))
    assert [s.records for s in summaries][4:6] == [
        "features/000/records.jsonl.gz",
        "features/001/records.jsonl.gz",
    ]
    assert [s.json for s in summaries] == [""] * 23  # no per-feature JSON by default
    written = sorted(
        p.relative_to(tmp_path / "here").as_posix() for p in (tmp_path / "here").rglob("*")
    )
    assert [p for p in written if p.startswith("features/") and "." in p] == [
        f"features/{k:03d}/records.jsonl.gz" for k in range(5)
    ]
    lines = unpack((tmp_path / "here" / summaries[7].records).read_bytes())
    assert [orjson.loads(line)["index"] for line in lines] == [5, 6, 7, 8, 9]
    assert lines == [held[i] for i in range(5, 10)]
