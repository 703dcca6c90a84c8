"""One rounding for every record: the double nearest the decimal with that many digits."""

from __future__ import annotations

import random
import warnings

import numpy as np
import torch

from saesite.records.rounding import round_significant, rounded


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


def test_a_scalar_rounds_to_the_same_double_as_the_same_value_in_an_array():
    # scalars skip numpy (round_scalar); they must give the array path's bytes, at powers of
    # ten and their neighbours (where floor(log10) turns), at halves, and past 10**±22, where
    # the power of ten is no longer exact and the scalar path hands over to numpy
    rng = np.random.default_rng(0)
    values = [0.5, 1.5, 2.5, 0.125, -0.0, 5e-324, 1e-310, 1.7976931348623157e308]
    for k in range(-40, 41):
        p = 10.0**k
        values += [p, np.nextafter(p, 0.0), np.nextafter(p, np.inf), -p, 0.5 * p, 2.5 * p]
    values += list(rng.standard_normal(20000) * 10.0 ** rng.integers(-40, 40, 20000))
    values += [float("inf"), float("-inf"), float("nan"), 7, -123456789, True]
    for digits in (3, 4, 7):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no overflow on the way (subnormals gave NaN)
            array = round_significant(np.asarray(values, dtype=np.float64), digits)
        for value, expected in zip(values, array.tolist(), strict=True):
            got = rounded(value, digits)
            assert type(got) is float
            assert got == expected or (got != got and expected != expected), (value, digits)


def test_the_extremes_of_float64_round_to_their_decimal_and_stay_finite():
    assert rounded(5e-324, 3) == 5e-324  # the smallest subnormal: was NaN
    assert rounded(1.234567e-310, 4) == 1.235e-310
    assert rounded(-2.345e-320, 2) == float("-2.3e-320")
    assert rounded(1.7976931348623157e308, 3) == 1.7976931348623157e308  # 1.80e308 overflows
    assert rounded([3.14159e305, 2.5e-300], 3) == [3.14e305, 2.5e-300]
