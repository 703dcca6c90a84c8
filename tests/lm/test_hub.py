"""Models by TransformerLens name or Hugging Face folder, from an offline Hugging Face cache."""

from __future__ import annotations

import pytest
import torch

from saesite.errors import SaesiteError
from saesite.lm.model import load_model
from tests.fixtures.hf_cache import TINY_STORIES


def test_a_transformerlens_name_resolves_from_the_offline_cache(offline_hf):
    loaded = load_model("tiny-stories-1M")
    assert (loaded.model.cfg.d_model, loaded.model.cfg.n_layers) == (16, 2)
    assert loaded.tokenizer.vocab_size == loaded.model.cfg.d_vocab
    ids = loaded.tokenizer.encode("def add(a, b):")
    assert torch.isfinite(loaded.model(torch.tensor([ids]))).all()


def test_a_hub_snapshot_folder_loads_through_transformerlens_with_hf_model(offline_hf):
    snapshot = next((offline_hf / "hub").glob("models--roneneldan--TinyStories-1M/snapshots/*"))
    by_folder = load_model(str(snapshot))
    by_name = load_model("tiny-stories-1M")
    assert by_folder.name == TINY_STORIES
    tokens = torch.tensor([by_name.tokenizer.encode("class Point:")])
    with torch.no_grad():
        torch.testing.assert_close(by_folder.model(tokens), by_name.model(tokens))


def test_bfloat16_forward_runs_in_bfloat16(offline_hf):
    loaded = load_model("tiny-stories-1M", dtype="bfloat16")
    assert loaded.model.W_E.dtype == torch.bfloat16


@pytest.mark.parametrize("name", ["pythia-1.4b", "Qwen/Qwen2.5-0.5B"])
def test_names_with_dots_go_to_the_hub_and_say_how_offline_works(offline_hf, name):
    with pytest.raises(SaesiteError, match="HF_HUB_OFFLINE=1") as err:
        load_model(name)
    message = str(err.value)
    assert "not a model folder" not in message and "\n" not in message


def test_a_missing_path_is_named_as_a_path(tmp_path):
    with pytest.raises(SaesiteError, match="not a model folder"):
        load_model(str(tmp_path / "nope") + "/")
