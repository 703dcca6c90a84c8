import pytest
import torch

from saesite.stats.row_topk import GROUP_SIZE, row_topk


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("width", [GROUP_SIZE * 200, GROUP_SIZE * 200 + 17])
def test_row_topk_equals_torch_topk_on_wide_rows_with_and_without_leftover_columns(largest, width):
    x = torch.randn(9, width, generator=torch.Generator().manual_seed(0))
    values, ids = row_topk(x, 10, largest=largest)
    top = x.topk(10, dim=1, largest=largest)
    assert torch.equal(values, top.values) and torch.equal(ids, top.indices)


def test_row_topk_finds_extremes_in_the_leftover_columns():
    x = torch.zeros(3, GROUP_SIZE * 50 + 5)
    x[:, -3:] = torch.tensor([3.0, 2.0, 1.0])
    values, ids = row_topk(x, 3)
    assert ids.tolist() == [[x.shape[1] - 3, x.shape[1] - 2, x.shape[1] - 1]] * 3
    assert values.tolist() == [[3.0, 2.0, 1.0]] * 3


@pytest.mark.parametrize("largest", [True, False])
def test_row_topk_with_ties_keeps_torch_topk_values_at_distinct_columns_deterministically(
    largest,
):
    x = torch.randint(0, 4, (6, GROUP_SIZE * 100), generator=torch.Generator().manual_seed(1))
    x = x.float()
    values, ids = row_topk(x, 12, largest=largest)
    assert torch.equal(values, x.topk(12, dim=1, largest=largest).values)
    assert torch.equal(x.gather(1, ids), values)
    assert all(len(set(row)) == 12 for row in ids.tolist())
    again = row_topk(x, 12, largest=largest)
    assert torch.equal(again[1], ids)


def test_row_topk_on_narrow_rows_is_torch_topk():
    x = torch.randn(4, 50, generator=torch.Generator().manual_seed(2))
    values, ids = row_topk(x, 5)
    assert torch.equal(ids, x.topk(5, dim=1).indices) and torch.equal(values, x.topk(5).values)
