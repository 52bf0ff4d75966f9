"""Python operators on tensors follow torch: & | ^ ~ are bitwise (logical on bool), their
reflected and in-place forms included; floats are refused naming the argument. Functions
under kiln.* with torch's signatures (max, gather, scatter_add...) agree with torch."""

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


def test_torch_style_functions_at_top_level():
    x = kiln.tensor([[1.0, 5.0, 5.0], [7.0, 2.0, 7.0]])
    t = torch.tensor(x.numpy())
    idx, tidx = kiln.tensor([[2, 0], [1, 1]]), torch.tensor([[2, 0], [1, 1]])
    pairs = [
        (kiln.max(x), torch.max(t)), (kiln.max(x, 1), torch.max(t, 1)),
        (kiln.min(x, 0, True), torch.min(t, 0, True)),
        (kiln.max(x, x * 0 + 3), torch.max(t, t * 0 + 3)),
        (kiln.argmax(x), torch.argmax(t)), (kiln.argmin(x, 1, keepdim=True),
                                            torch.argmin(t, 1, keepdim=True)),
        (kiln.prod(x), torch.prod(t)), (kiln.prod(x, 1), torch.prod(t, 1)),
        (kiln.gather(x, 1, idx), torch.gather(t, 1, tidx)),
        (kiln.scatter_add(x, 1, idx, kiln.ones(2, 2)),
         torch.scatter_add(t, 1, tidx, torch.ones(2, 2))),
        (x.scatter_add(0, idx % 2, x[:, :2]), t.scatter_add(0, tidx % 2, t[:, :2])),
    ]
    for got, want in pairs:
        got = got if isinstance(got, tuple) else (got,)
        want = want if isinstance(want, tuple) else (want,)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g.numpy(), w.numpy())
    values, indices = kiln.max(x, dim=1)
    assert values.tolist() == [5.0, 7.0] and indices.tolist() == [1, 0]
