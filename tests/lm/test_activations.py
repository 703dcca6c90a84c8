"""The shuffled activation stream serves real activations, mixed, and resumes where it stopped."""

from __future__ import annotations

import pytest
import torch

from saesite.lm.activations import ActivationStream, hook_activations, sample_activations
from saesite.lm.model import build_model
from tests.conftest import TINY_MODEL

HOOK = "blocks.0.mlp.hook_post"
N_SEQ, SEQ_LEN = 12, 16


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model({**TINY_MODEL, "n_layers": 2, "n_ctx": 16, "d_vocab": 50})


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(0, 50, (N_SEQ, SEQ_LEN), generator=torch.Generator().manual_seed(0))


def stream(model, tokens, seed=0, **kwargs) -> ActivationStream:
    options = dict(batch_size=24, model_batch_size=3, buffer_batches=2)
    options.update(kwargs)
    return ActivationStream(
        model, tokens, HOOK, generator=torch.Generator().manual_seed(seed), **options
    )


def exact_cdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def test_hook_activations_match_run_with_cache(model, tokens):
    _, cache = model.run_with_cache(tokens, names_filter=[HOOK, "blocks.1.attn.hook_z"])
    torch.testing.assert_close(hook_activations(model, tokens, HOOK), cache[HOOK])
    z = hook_activations(model, tokens, "blocks.1.attn.hook_z")
    torch.testing.assert_close(z, cache["blocks.1.attn.hook_z"].flatten(2))


def test_every_served_row_is_the_activation_of_one_token(model, tokens):
    table = sample_activations(model, tokens, HOOK, model_batch_size=5)
    served = stream(model, tokens, seed=1)
    rows = torch.cat([next(served) for _ in range(12)])  # 1.5 epochs
    distance = exact_cdist(rows, table).min(dim=1).values
    assert distance.max() < 1e-4


def test_rows_served_before_the_first_refill_are_distinct_tokens_from_many_sequences(model, tokens):
    table = sample_activations(model, tokens, HOOK)
    s = stream(model, tokens, buffer_batches=4)  # 12 sequences = the whole dataset
    first_half = torch.cat([next(s) for _ in range(4)])  # 96 of 192 rows
    nearest = exact_cdist(first_half, table).argmin(dim=1)
    assert len(set(nearest.tolist())) == len(nearest)
    first_batch_sequences = set((nearest[:24] // SEQ_LEN).tolist())
    assert len(first_batch_sequences) >= 4


def test_stream_scales_activations(model, tokens):
    plain = next(stream(model, tokens))
    scaled = next(stream(model, tokens, scale=0.5))
    torch.testing.assert_close(scaled, plain * 0.5)


def test_stream_resumes_from_its_state_dict(model, tokens):
    first = stream(model, tokens)
    for _ in range(5):
        next(first)
    state = first.state_dict()
    expected = [next(first) for _ in range(10)]  # crosses refills and an epoch boundary
    second = stream(model, tokens, seed=123)
    second.load_state_dict(state)
    for want, got in zip(expected, (next(second) for _ in range(10))):
        torch.testing.assert_close(got, want)


def test_stream_of_an_empty_dataset_is_refused(model):
    with pytest.raises(ValueError, match="at least one sequence"):
        stream(model, torch.zeros(0, SEQ_LEN, dtype=torch.long))
