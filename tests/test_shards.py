"""Sharded builds: ``build --shard I/N --state-out`` then ``merge`` give the one-process site."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from saesite.cli import main
from tests.conftest import TINY_D_SAE
from tests.conftest import shard_build_args as build_args
from tests.test_pipeline import tree_digest


@pytest.fixture(scope="module")
def inputs(tiny_model_dir, tiny_sae_dir, tiny_tokens_npy):
    return tiny_model_dir, tiny_sae_dir, tiny_tokens_npy


def shard_states(inputs, root: Path, n_shards: int) -> list[Path]:
    dirs = []
    for shard in range(n_shards):
        state = root / f"state-{shard}"
        args = [*build_args(*inputs), "--shard", f"{shard}/{n_shards}", "--state-out", str(state)]
        assert main(args) == 0
        dirs.append(state)
    return dirs


@pytest.fixture(scope="module")
def states(tmp_path_factory, inputs):
    """Shard states by shard count, computed once per module."""
    cache: dict[int, list[Path]] = {}

    def get(n_shards: int) -> list[Path]:
        if n_shards not in cache:
            cache[n_shards] = shard_states(inputs, tmp_path_factory.mktemp("states"), n_shards)
        return cache[n_shards]

    return get


@pytest.mark.parametrize("n_shards", [1, 2, 5])
def test_sites_merged_from_token_shards_are_byte_identical_to_the_one_process_site(
    tmp_path, states, one_process_site, n_shards
):
    dirs = states(n_shards)
    # Given in reverse: the merge order is fixed by the shards' positions, not by the arguments.
    out = tmp_path / "merged"
    args = ["-q", "merge", *map(str, reversed(dirs)), "--out", str(out), "--workers", "1"]
    assert main(args) == 0
    expected = tree_digest(one_process_site)
    assert len(expected) > 100
    assert tree_digest(out) == expected


def test_sites_merged_from_token_and_feature_shards_are_byte_identical_to_one_process(
    tmp_path, inputs, one_process_site
):
    # 2 token shards × 2 feature shards: each state holds half the features' accumulators
    dirs = []
    for shard in range(2):
        for part in range(2):
            state = tmp_path / f"state-{shard}-{part}"
            args = [*build_args(*inputs), "--shard", f"{shard}/2", "--feature-shard", f"{part}/2"]
            assert main([*args, "--state-out", str(state)]) == 0
            dirs.append(state)
    header = json.loads((dirs[1] / "stats.json").read_text())
    d_sae = header["range"]["d_sae"]
    assert (header["range"]["first_feature"], header["range"]["stop_feature"]) == (
        d_sae // 2,
        d_sae,
    )
    out = tmp_path / "merged"
    assert main(["-q", "merge", *map(str, reversed(dirs)), "--out", str(out)]) == 0
    assert tree_digest(out) == tree_digest(one_process_site)


def test_merge_refuses_feature_shards_that_leave_features_out_with_one_line(
    tmp_path, inputs, capsys
):
    state = tmp_path / "half"
    args = [*build_args(*inputs), "--shard", "0/1", "--feature-shard", "1/2"]
    assert main([*args, "--state-out", str(state)]) == 0
    assert main(["merge", str(state), "--out", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err
    half, last = TINY_D_SAE // 2, TINY_D_SAE - 1
    assert f"features {half}..{last}" in err and f"covering 0..{last}" in err
    assert err.count("\n") == 1
    assert not (tmp_path / "site").exists()


def test_merge_refuses_a_missing_or_repeated_shard_with_one_line(tmp_path, states, capsys):
    dirs = states(5)
    for given in ([dirs[0], dirs[2]], [dirs[0], dirs[1], dirs[1], dirs[2]]):
        out = tmp_path / "site"
        assert main(["merge", *map(str, given), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("saesite: error: ") and "\n" not in err
        assert "sequences" in err and not out.exists()


def test_merge_refuses_states_of_different_builds(tmp_path, inputs, states, capsys):
    first = states(2)[0]
    other = tmp_path / "b"
    args = [*build_args(*inputs), "--top-k", "4", "--shard", "1/2", "--state-out", str(other)]
    assert main(args) == 0
    assert main(["merge", str(first), str(other), "--out", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err
    assert "statistics config" in err and err.count("\n") == 1


def test_shard_without_state_out_is_refused_before_any_compute(inputs, capsys):
    assert main([*build_args(*inputs), "--shard", "0/2"]) == 2
    assert "--state-out" in capsys.readouterr().err
    assert main([*build_args(*inputs), "--shard", "2/2", "--state-out", "x"]) == 2
    assert "0 <= I < N" in capsys.readouterr().err


def test_state_out_refuses_a_folder_saesite_did_not_write(tmp_path, inputs, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    assert main([*build_args(*inputs), "--shard", "0/2", "--state-out", str(folder)]) == 2
    assert "did not write" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_a_state_header_names_what_it_was_computed_from(inputs, states):
    (state,) = states(1)
    header = json.loads((state / "stats.json").read_text())
    prov = header["provenance"]
    assert header["format"] == "saesite-stats" and header["format_version"] == 2
    assert prov["model"] == str(inputs[0]) and prov["hook"] == "blocks.0.mlp.hook_post"
    assert len(prov["sae_fingerprint"]) == 64 and prov["tokens"]["n_seq"] == 24
    assert header["range"] == {
        "first_seq": 0,
        "stop_seq": 24,
        "first_feature": 0,
        "stop_feature": TINY_D_SAE,
        "d_sae": TINY_D_SAE,
    }
    assert prov["config"]["stats"]["top_k"] == 5


class Part:
    """Stands in for a shard state: records how it was merged."""

    def __init__(self, name: str):
        self.name = name

    def merge(self, other: "Part") -> None:
        self.name = f"({self.name}+{other.name})"


@pytest.mark.parametrize("n_shards", [1, 2, 5, 8])
def test_tree_merger_builds_the_same_tree_whatever_order_the_shards_arrive_in(n_shards):
    import random

    from saesite.shards import TreeMerger

    trees = set()
    for seed in range(6):
        order = list(range(n_shards))
        random.Random(seed).shuffle(order)
        merger = TreeMerger(n_shards)
        for index in order:
            merger.add(index, Part(str(index)))
        trees.add(merger.result().name)
    assert len(trees) == 1
    (tree,) = trees
    assert [int(c) for c in tree if c.isdigit()] == list(range(n_shards))
