"""How input paths appear in a published site: never the maker's absolute local paths."""

from __future__ import annotations

from saesite.preflight import published_path


def test_local_paths_are_published_relative_to_the_working_folder_or_as_base_names(
    tmp_path, monkeypatch
):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    (work / "models" / "tiny").mkdir(parents=True)
    (elsewhere / "sae").mkdir(parents=True)
    monkeypatch.chdir(work)
    assert published_path(str(work / "models" / "tiny"), False) == "models/tiny"
    assert published_path("models/tiny", False) == "models/tiny"
    assert published_path(str(elsewhere / "sae"), False) == "sae"
    assert published_path(str(elsewhere / "sae"), True) == str(elsewhere / "sae")
    assert published_path("gpt2-small", False) == "gpt2-small"  # a hub name, not a path
    assert published_path(None, False) is None
