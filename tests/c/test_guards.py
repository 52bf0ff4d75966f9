"""Bad inputs raise GuardError naming the argument before native code runs; the process
survives every one of them."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from kiln.errors import GuardError
from tests.c.conftest import compile_fn


@pytest.fixture(scope="module")
def fn():
    x, w = kiln.randn(4, 8), kiln.randn(8, 3)
    idx = kiln.tensor([0, 2, 1, 2])
    _, f = compile_fn(lambda x, w, idx: F.cross_entropy(x @ w, idx), x, w, idx,
                      dynamic={"x": {0: kiln.Dim("B", min=2, max=16)},
                               "idx": {0: kiln.Dim("B", min=2, max=16)}})
    return f


GOOD = (lambda: kiln.randn(4, 8), lambda: kiln.randn(8, 3), lambda: kiln.tensor([0, 2, 1, 2]))

BAD = [
    ("x", "rank", lambda: (kiln.randn(4, 8, 1), None, None)),
    ("w", "shape", lambda: (None, kiln.randn(8, 4), None)),
    ("x", "dtype", lambda: (kiln.randn(4, 8).double(), None, None)),
    ("idx", "dtype", lambda: (None, None, kiln.tensor([0.0, 1.0, 2.0, 0.0]))),
    ("x", "contiguous", lambda: (kiln.Tensor(np.ones((8, 4), np.float32).T), None, None)),
    ("x", r"\[2, 16\]", lambda: (kiln.randn(17, 8), None, kiln.tensor([0] * 17))),
    ("x", r"\[2, 16\]", lambda: (kiln.randn(1, 8), None, kiln.tensor([0]))),
    ("idx", "B=4", lambda: (None, None, kiln.tensor([0, 1, 2]))),
    ("x", "kiln.Tensor", lambda: (np.ones((4, 8), np.float32), None, None)),
]


@pytest.mark.parametrize("arg, what, make", BAD, ids=[f"{a}-{w}" for a, w, _ in BAD])
def test_bad_input_raises_guard_error_naming_the_argument(fn, arg, what, make):
    args = [b if b is not None else g() for b, g in zip(make(), GOOD, strict=True)]
    with pytest.raises(GuardError, match=what) as info:
        fn(*args)
    assert f"input {arg}" in str(info.value)


def test_wrong_count_and_survival(fn):
    with pytest.raises(GuardError, match="expected 3 tensor inputs"):
        fn(kiln.randn(4, 8))
    with pytest.raises(GuardError, match="expected 3"):
        fn(*[g() for g in GOOD], kiln.randn(1))
    out = fn(*[g() for g in GOOD])  # still works after every refusal
    assert out[0].shape == ()


def test_out_of_range_index_is_an_error_not_a_crash(fn):
    from kiln.errors import IndexError_

    with pytest.raises(IndexError_, match="out of bounds"):
        fn(kiln.randn(4, 8), kiln.randn(8, 3), kiln.tensor([0, 3, 1, 2]))


def test_changed_constant_is_a_guard_error():
    w = kiln.randn(3)
    _, f = compile_fn(lambda x: x * w, kiln.randn(3))
    w._data = np.ones(4, np.float32)
    with pytest.raises(GuardError, match="constant"):
        f(kiln.randn(3))


def test_max_over_an_empty_dynamic_dim_is_refused():
    _, f = compile_fn(lambda x: x.amax(0), kiln.randn(3, 2),
                      dynamic={"x": {0: kiln.Dim("N", min=0, max=8)}})
    assert f(kiln.randn(5, 2))[0].shape == (2,)
    with pytest.raises(GuardError, match="max"):
        f(kiln.randn(0, 2))


def test_integer_value_errors_are_raised_like_eager():
    from kiln.errors import ValueArgumentError

    floordiv = kiln.compile(lambda a, b: a // b, backend="c")
    assert floordiv(kiln.tensor([7, -7]), kiln.tensor([2, 2])).tolist() == [3, -4]
    with pytest.raises(ValueArgumentError, match="integer division by zero"):
        floordiv(kiln.tensor([7, -7]), kiln.tensor([2, 0]))
    power = kiln.compile(lambda a, b: a ** b, backend="c")
    assert power(kiln.tensor([2, 3]), kiln.tensor([3, 0])).tolist() == [8, 1]
    with pytest.raises(ValueArgumentError, match="negative integer powers"):
        power(kiln.tensor([2, 3]), kiln.tensor([1, -1]))
    # the process and the functions survive
    assert floordiv(kiln.tensor([9]), kiln.tensor([-2])).tolist() == [-5]
