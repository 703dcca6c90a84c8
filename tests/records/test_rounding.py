"""One rounding for every record: the double nearest the decimal with that many digits."""

from __future__ import annotations

import random

import torch

from saesite.records.rounding import rounded


def test_rounded_is_the_float_of_the_decimal_that_format_prints():
    rng = random.Random(0)
    for _ in range(20000):
        value = rng.random() * 10.0 ** rng.randint(-9, 9) * rng.choice((1, -1))
        for digits in (3, 4, 6):
            assert rounded(value, digits) == float(f"{value:.{digits}g}"), (value, digits)


def test_rounded_takes_tensors_of_any_dtype_and_keeps_their_shape():
    table = torch.tensor([[1.23456, 0.0], [-7.654321e-5, 3.0]])
    assert rounded(table) == [[1.235, 0.0], [-7.654e-5, 3.0]]
    assert rounded(table.to(torch.bfloat16), 2) == [[1.2, 0.0], [-7.7e-5, 3.0]]
    assert rounded(torch.tensor(0.1 + 0.2, dtype=torch.float64), 6) == 0.3
    # a tensor is read at float32, as the records always have: 0.0108750001 is 0.0108749997
    # in float32; a list keeps float64
    assert rounded([0.0108750001], 4) == [0.01088]
    assert rounded(torch.tensor([0.0108750001], dtype=torch.float64), 4) == [0.01087]
    assert rounded([float("inf"), float("-inf")]) == [float("inf"), float("-inf")]
