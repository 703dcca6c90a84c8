import numpy as np
import torch

from saesite.stats.windows import Window


def test_window_bounds_and_columns_of_an_array_equal_those_of_a_tensor():
    window, seq_len = Window(before=3, after=2), 7
    pos = np.array([[0, 1, 3], [5, 6, 2]])
    start, length = window.bounds(pos, seq_len)
    start_t, length_t = window.bounds(torch.from_numpy(pos), seq_len)
    assert isinstance(start, np.ndarray) and isinstance(start_t, torch.Tensor)
    assert start.tolist() == start_t.tolist() == [[0, 0, 0], [2, 3, 0]]
    assert length.tolist() == length_t.tolist() == [[3, 4, 6], [5, 4, 5]]
    columns = window.columns(pos, seq_len)
    assert columns.tolist() == window.columns(torch.from_numpy(pos), seq_len).tolist()
    assert columns[1, 1].tolist() == [3, 4, 5, 6, 6, 6]  # clamped to the sequence's last
