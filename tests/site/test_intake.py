import os
import time
from pathlib import Path

import orjson
import pytest
import torch
from torch.overrides import TorchFunctionMode

from saesite.config import BuildConfig, DataConfig, RenderConfig, StatsConfig, WeightStatsConfig
from saesite.lm.model import Tokenizer
from saesite.pipeline import compute, load, write_records
from saesite.records.build import FeatureRecords
from saesite.site import intake, parallel
from saesite.site.intake import Intake, take_records, write_folder
from saesite.site.labels import Labels
from saesite.site.records_file import unpack
from saesite.site.render import write_site
from saesite.site.token_markup import TokenDisplay
from saesite.site.writer import SiteWriter
from tests.conftest import TINY_D_SAE, TINY_HOOK
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


@pytest.fixture(scope="module")
def tiny_records(tiny_model_dir, tiny_sae_dir, tiny_tokens_npy):
    """A build's records of the tiny model: ``FeatureRecords`` over real statistics."""
    data = DataConfig(dataset=str(tiny_tokens_npy))
    loaded = load(str(tiny_model_dir), str(tiny_sae_dir), hook=TINY_HOOK, data=data)
    stats = StatsConfig(batch_size=8, top_k=5, n_bins=16, n_intervals=4, interval_samples=3)
    config = BuildConfig(hook=TINY_HOOK, stats=stats, weights=WeightStatsConfig())
    return write_records(compute(loaded, stats, config.weights), loaded, config)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


class _NoTorch(TorchFunctionMode):
    """Any torch function or tensor method called (``.tolist()``, indexing, even ``.shape``)
    raises."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        raise RuntimeError(f"torch called in a forked worker: {func}")


def _no_tokenizer(*args, **kwargs):
    raise RuntimeError("the tokenizer called in a forked worker")


def _guard_workers(monkeypatch) -> None:
    """Forked workers (``parallel.map_ranges``) start with torch and the tokenizer made to
    raise: for the rest of the worker's life, every job it runs is under the guard."""
    start = parallel._die_with_parent

    def guarded_start(parent: int) -> None:
        start(parent)
        _NoTorch().__enter__()
        for name in ("decode_token", "piece", "invalid_utf8_bytes", "encode"):
            setattr(Tokenizer, name, _no_tokenizer)

    monkeypatch.setattr(parallel, "_die_with_parent", guarded_start)


def test_the_worker_guard_fails_a_job_that_touches_a_tensor(monkeypatch):
    _guard_workers(monkeypatch)
    table = torch.arange(8)
    with pytest.raises(RuntimeError, match="torch called in a forked worker"):
        list(parallel.map_ranges(lambda start, stop: table[start:stop].tolist(), 8, 2))
    assert list(parallel.map_ranges(lambda start, stop: stop - start, 8, 2))  # torch-free: fine


def test_a_builds_records_are_built_and_taken_in_forked_workers_without_torch_or_tokenizer(
    tmp_path, monkeypatch, tiny_records
):
    _guard_workers(monkeypatch)
    built_in = tmp_path / "pids"
    built_in.mkdir()
    build_range = FeatureRecords.build_range

    def noted(self, start, stop):
        (built_in / str(os.getpid())).touch()
        return build_range(self, start, stop)

    monkeypatch.setattr(FeatureRecords, "build_range", noted)
    cfg = RenderConfig(out=str(tmp_path / "site"), workers=2, features_per_folder=7)
    out = write_site(tiny_records.site, tiny_records.features, cfg)  # pages: guarded too
    pids = {int(p.name) for p in built_in.iterdir()}
    assert pids and os.getpid() not in pids
    assert len(orjson.loads((out / "site.json").read_bytes())["features"]) == TINY_D_SAE


@pytest.mark.parametrize(
    "held_bytes, feature_json",
    [(intake.HELD_JSON_BYTES, False), (0, False), (intake.HELD_JSON_BYTES, True)],
)
def test_a_builds_records_taken_in_two_workers_make_the_bytes_of_one_process(
    tmp_path, monkeypatch, tiny_records, held_bytes, feature_json
):
    monkeypatch.setattr(intake, "HELD_JSON_BYTES", held_bytes)  # 0: every folder spilled
    sites = [
        write_site(
            tiny_records.site,
            tiny_records.features,
            RenderConfig(
                out=str(tmp_path / str(workers)),
                workers=workers,
                features_per_folder=7,  # 14 folders: ranges of 1 folder each
                feature_json=feature_json,
            ),
        )
        for workers in (1, 2)
    ]
    assert len(_files(sites[0])) > 2 * TINY_D_SAE // 7
    assert _files(sites[1]) == _files(sites[0])


def test_records_taken_by_ranges_come_in_index_order_whichever_range_ends_first(monkeypatch):
    site, features = sample_site(30, seed=5)
    done_first = {0: 0.3, 5: 0.1}  # the first ranges end last

    def build_range(start: int, stop: int) -> list[dict]:
        time.sleep(done_first.get(start, 0.0))
        return features[start:stop]

    taken = list(
        intake.taken_by_ranges(30, build_range, _intake(site, 30), intake.local_folders(2))
    )
    assert [summary.index for summary, _, _ in taken] == list(range(30))
