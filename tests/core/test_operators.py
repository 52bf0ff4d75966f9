"""Python operators on tensors follow torch: & | ^ ~ are bitwise (logical on bool), their
reflected and in-place forms included; floats are refused naming the argument."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kiln
from kiln.errors import DTypeError

A, B = [1, 2, 6, -3], [2, 2, 3, 5]


@pytest.mark.parametrize("dtype", ["int64", "int32", "bool"])
def test_bitwise_operators_match_torch(dtype):
    a, b = kiln.tensor(A).to(dtype), kiln.tensor(B).to(dtype)
    ta, tb = torch.tensor(A).to(getattr(torch, dtype)), torch.tensor(B).to(getattr(torch, dtype))
    pairs = [(a & b, ta & tb), (a | b, ta | tb), (a ^ b, ta ^ tb), (~a, ~ta),
             (a & 3, ta & 3), (3 | a, 3 | ta), (5 ^ a, 5 ^ ta), (a & True, ta & True),
             (kiln.bitwise_and(a, b), torch.bitwise_and(ta, tb)),
             (a.bitwise_xor(b), ta.bitwise_xor(tb)), (kiln.bitwise_not(a), torch.bitwise_not(ta))]
    for got, want in pairs:
        assert str(got.dtype) == str(want.dtype).replace("torch.", "")
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_bitwise_in_place_forms():
    for op in ("__iand__", "__ior__", "__ixor__"):
        a, ta = kiln.tensor(A), torch.tensor(A)
        alias = a
        a = getattr(a, op)(kiln.tensor(B))
        getattr(ta, op)(torch.tensor(B))
        assert a is alias and a.tolist() == ta.tolist()
    a = kiln.tensor(A)
    a.bitwise_not_()
    assert a.tolist() == (~torch.tensor(A)).tolist()
    m = kiln.tensor([True, False])
    m |= kiln.tensor([False, False])
    m &= kiln.tensor([True, True])
    assert m.tolist() == [True, False]


def test_bitwise_on_floats_is_refused_naming_the_argument():
    x = kiln.ones(2)
    with pytest.raises(DTypeError, match="bitwise_and: input must be an integer or bool"):
        _ = x & kiln.tensor([1, 2])
    with pytest.raises(DTypeError, match="bitwise_xor: other must be .* got float32"):
        _ = kiln.tensor([1, 2]) ^ x
    with pytest.raises(DTypeError, match="bitwise_or: other must be .* got float"):
        _ = kiln.tensor([1, 2]) | 0.5
    with pytest.raises(DTypeError, match="bitwise_not: input must be an integer or bool"):
        _ = ~x


@pytest.mark.parametrize("backend", ["interpret", "c"])
def test_bitwise_operators_trace_and_compile(backend):
    def f(x, y, m):
        return x & y, x | 4, y ^ x, ~x, ~m, m & (x > 1)

    x, y, m = kiln.tensor(A), kiln.tensor(B), kiln.tensor([True, False, True, False])
    want = f(x, y, m)
    got = kiln.compile(f, backend=backend)(x, y, m)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.tolist() == w.tolist()
