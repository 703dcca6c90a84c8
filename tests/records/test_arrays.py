import numpy as np
import torch

from saesite.records.arrays import as_array, as_float32


def test_a_cpu_tensor_becomes_an_array_over_the_same_memory_not_a_copy():
    tensor = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    array = as_array(tensor)
    tensor[1, 2] = -1.0  # seen through the array: the workers share the parent's pages
    assert array[1, 2] == -1.0 and array.dtype == np.float32
    assert as_float32(tensor)[1, 2] == -1.0  # float32 already: a view too
    windows = torch.zeros(2, 3, dtype=torch.float16)
    assert np.shares_memory(as_array(windows), windows.numpy())


def test_tensors_numpy_cannot_view_or_read_wider_are_read_at_float32_as_records_round_them():
    values = torch.tensor([0.1, 1 / 3, 2.5e-8], dtype=torch.float64)
    assert as_float32(values).tolist() == values.float().tolist() != values.tolist()
    brain = torch.tensor([0.1, 3.0], dtype=torch.bfloat16)
    assert as_array(brain).tolist() == brain.float().tolist()
