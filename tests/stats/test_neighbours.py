import pytest
import torch
import torch.nn.functional as F

from saesite.stats.neighbours import DecoderNeighbours


def unit_rows(d_sae: int, d_in: int = 16, seed: int = 0) -> torch.Tensor:
    rows = torch.randn(d_sae, d_in, generator=torch.Generator().manual_seed(seed))
    return F.normalize(rows, dim=1)


def brute_force(unit: torch.Tensor, k: int):
    cosines = unit @ unit.T
    cosines.fill_diagonal_(float("-inf"))
    return cosines.topk(k, dim=1)


def run(unit: torch.Tensor, k: int, chunk: int):
    near = DecoderNeighbours(unit, k)
    for start in range(0, unit.shape[0], chunk):
        near.update(slice(start, min(start + chunk, unit.shape[0])))
    return near.finalize()


@pytest.mark.parametrize(("d_sae", "chunk", "k"), [(50, 7, 3), (50, 2, 5), (300, 64, 8), (9, 9, 8)])
def test_neighbours_from_half_the_cosine_matrix_equal_the_full_matrix_top_k(d_sae, chunk, k):
    unit = unit_rows(d_sae)
    values, ids = run(unit, k, chunk)
    top = brute_force(unit, k)
    assert torch.equal(ids, top.indices)
    assert torch.allclose(values, top.values, atol=1e-6)


def test_neighbours_never_list_the_feature_itself_even_with_duplicate_directions():
    unit = unit_rows(20).repeat(2, 1)  # feature f and f + 20 point the same way
    values, ids = run(unit, 4, 6)
    assert (ids != torch.arange(40)[:, None]).all()
    assert ids[:, 0].tolist() == [(f + 20) % 40 for f in range(40)]
    assert torch.allclose(values[:, 0], torch.ones(40))
    assert all(len(set(row)) == 4 for row in ids.tolist())


def test_neighbours_refuse_chunks_out_of_order_and_an_unfinished_finalize():
    near = DecoderNeighbours(unit_rows(10), 3)
    with pytest.raises(ValueError, match="in order"):
        near.update(slice(4, 8))
    near.update(slice(0, 4))
    with pytest.raises(ValueError, match="only 4 of 10"):
        near.finalize()
