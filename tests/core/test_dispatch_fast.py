"""The eager fast path of dispatch (meta cache) and of the autograd engine (in-place gradient
accumulation): same results, same errors as the general path."""

from __future__ import annotations

import weakref

import numpy as np
import pytest

import kiln
import kiln.core.dispatch as dispatch
from kiln.errors import KilnError, TraceError


def test_cached_metas_keep_types_apart():
    # 0 and 0.0 (and True) hash alike; their results' dtypes must not be confused.
    for _ in range(2):
        assert kiln.full((2,), 0).dtype == kiln.int64
        assert kiln.full((2,), 0.0).dtype == kiln.float32
        assert kiln.full((2,), True).dtype == kiln.bool_
        i = kiln.tensor([1, 2])
        assert (i + 1).dtype == kiln.int64 and (i + 1.0).dtype == kiln.float32
        assert (i + True).dtype == kiln.int64
        assert kiln.ones(2, dtype=kiln.float64).sum().dtype == kiln.float64


def test_cached_metas_still_refuse_bad_arguments():
    x = kiln.ones(2, 3)
    for _ in range(3):
        with pytest.raises(KilnError, match="broadcast"):
            x + kiln.ones(4)
        with pytest.raises(KilnError):
            x.sum(dim=5)
        assert (x + kiln.ones(3)).shape == (2, 3)


def test_numpy_scalars_and_odd_attrs_take_the_general_path():
    x = kiln.ones(2, 3)
    assert (x * np.float32(2.0)).tolist() == [[2.0] * 3] * 2
    for _ in range(2):  # NumPy ints and lists in attrs are normalized (ints, tuples)
        assert kiln.ops.reshape(x, shape=(np.int64(3), 2)).shape == (3, 2)
        assert kiln.ops.sum(x, dims=[0, np.int64(1)]).item() == 6.0


def test_meta_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(dispatch, "_META_CACHE_MAX", 8)
    dispatch._META_CACHE.clear()
    for n in range(1, 30):
        assert (kiln.ones(n) * 2.0).shape == (n,)
    assert len(dispatch._META_CACHE) <= 8


def test_stale_tracer_still_refused():
    kept = []
    kiln.trace(lambda x: kept.append(x * 2) or x, kiln.ones(2))
    with pytest.raises(TraceError, match="after its trace ended"):
        kept[0] + 1


def test_gradients_accumulate_in_place_only_when_unobserved():
    w = kiln.tensor([1.0, 2.0], requires_grad=True)
    (w * 3).sum().backward()
    array = weakref.ref(w.grad._data)  # a weak reference does not count as a holder
    (w * 3).sum().backward()
    assert w.grad._data is array() and w.grad.tolist() == [6.0, 6.0]
    held = w.grad
    held_array = held.numpy()
    (w * 3).sum().backward()
    assert held.tolist() == [6.0, 6.0] and held_array.tolist() == [6.0, 6.0]
    assert w.grad is not held and w.grad.tolist() == [9.0, 9.0]
    view = w.grad.numpy()[:1]
    (w * 3).sum().backward()
    assert view.tolist() == [9.0] and w.grad.tolist() == [12.0, 12.0]


def test_engine_buffers_accumulate_correctly():
    x = kiln.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    (y * y + y + y.exp()).sum().backward()
    xs = np.array([1.0, 2.0])
    want = 8 * xs + 2 + 2 * np.exp(2 * xs)
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-6)
    # create_graph keeps every accumulation on the tape
    x.grad = None
    (g,) = kiln.autograd.grad((x * x * x).sum(), [x], create_graph=True)
    (g2,) = kiln.autograd.grad(g.sum(), [x])
    np.testing.assert_allclose(g2.numpy(), 6 * xs, rtol=1e-6)
