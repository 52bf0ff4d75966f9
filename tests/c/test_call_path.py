"""The per-call fast paths around compiled code (precomputed guards and call plans, cached
addresses, reused arenas, kiln.compile's call key) keep every check and every result."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
from kiln.errors import GuardError
from tests.c.conftest import compile_fn


@pytest.fixture(scope="module")
def static_fn():
    w = kiln.randn(8, 3)
    _, f = compile_fn(lambda x, idx: (x @ w).relu().sum(1) + idx.float(), kiln.randn(4, 8),
                      kiln.tensor([0, 1, 2, 3]))
    return f, w


def _good():
    return kiln.randn(4, 8), kiln.tensor([0, 1, 2, 3])


BAD = [
    ("x", "rank", lambda: (kiln.randn(4, 8, 1), None)),
    ("x", "shape", lambda: (kiln.randn(5, 8), None)),
    ("x", "dtype", lambda: (kiln.randn(4, 8).double(), None)),
    ("idx", "dtype", lambda: (None, kiln.tensor([0.0, 1.0, 2.0, 3.0]))),
    ("x", "contiguous", lambda: (kiln.Tensor._wrap(np.ones((8, 4), np.float32).T), None)),
    ("x", "kiln.Tensor", lambda: (np.ones((4, 8), np.float32), None)),
]


@pytest.mark.parametrize("arg, what, make", BAD, ids=[f"{a}-{w}" for a, w, _ in BAD])
def test_guards_fire_after_warm_calls(static_fn, arg, what, make):
    f, w = static_fn
    for _ in range(3):  # warm: the fast bind and the call plan are in place
        x, idx = _good()
        want = np.maximum(x.numpy() @ w.numpy(), 0).sum(1) + idx.numpy()
        np.testing.assert_allclose(f(x, idx)[0].numpy(), want, rtol=1e-5)
    args = [b if b is not None else g for b, g in zip(make(), _good(), strict=True)]
    with pytest.raises(GuardError, match=what) as info:
        f(*args)
    assert f"input {arg}" in str(info.value)
    with pytest.raises(GuardError, match="expected 2 tensor inputs"):
        f(args[0])
    x, idx = _good()
    assert f(x, idx)[0].shape == (4,)


def test_cached_addresses_follow_new_arrays_and_in_place_updates(static_fn):
    f, w = static_fn
    x, idx = _good()
    first = f(x, idx)[0].numpy().copy()
    x._data = np.ascontiguousarray(x._data * 2.0)  # same tensor, new array
    w._data *= 0.5  # the constant changed in place
    second = f(x, idx)[0].numpy()
    want = np.maximum(x.numpy() @ w.numpy(), 0).sum(1) + idx.numpy()
    np.testing.assert_allclose(second, want, rtol=1e-5)
    np.testing.assert_allclose(second - idx.numpy(), first - idx.numpy(), rtol=1e-5)
    w._data = np.ones((8, 4), np.float32)  # replaced by another shape: refused
    with pytest.raises(GuardError, match="constant"):
        f(x, idx)
    w._data = np.ones((8, 3), np.float32)
    assert f(x, idx)[0].shape == (4,)


def test_arena_is_reused_across_calls():
    _, f = compile_fn(lambda x: (x.exp() @ x.T).softmax(-1).sum(0), kiln.randn(16, 16))
    assert f._temps
    f(kiln.randn(16, 16))
    (arena, _), = f._arenas._free
    for _ in range(3):
        x = kiln.randn(16, 16)
        e = np.exp(x.numpy()) @ x.numpy().T
        s = np.exp(e - e.max(-1, keepdims=True))
        np.testing.assert_allclose(f(x)[0].numpy(), (s / s.sum(-1, keepdims=True)).sum(0),
                                   rtol=1e-4)
    assert [a for a, _ in f._arenas._free] == [arena]


def test_symbolic_fast_bind_checks_ranges_and_consistency():
    _, f = compile_fn(lambda x, y: x * 2.0 + y, kiln.randn(4, 3), kiln.randn(4, 3),
                      dynamic={"x": {0: kiln.Dim("B", min=2, max=8)},
                               "y": {0: kiln.Dim("B", min=2, max=8)}})
    for n in (2, 5, 8, 5):
        x, y = kiln.randn(n, 3), kiln.randn(n, 3)
        np.testing.assert_allclose(f(x, y)[0].numpy(), x.numpy() * 2 + y.numpy(), rtol=1e-6)
    with pytest.raises(GuardError, match=r"input y: dim 0 is B=5"):
        f(kiln.randn(5, 3), kiln.randn(4, 3))
    with pytest.raises(GuardError, match=r"\[2, 8\]"):
        f(kiln.randn(9, 3), kiln.randn(9, 3))


def test_compiled_call_key_tracks_what_the_trace_depends_on():
    model = kiln.nn.Sequential(kiln.nn.Linear(3, 4), kiln.nn.Dropout(0.5), kiln.nn.Linear(4, 2))
    compiled = kiln.compile(model, backend="c")
    x = kiln.randn(5, 3)
    with kiln.no_grad():
        model.eval()
        a = compiled(x)
        np.testing.assert_allclose(a.numpy(), model(x).numpy(), rtol=1e-5)
        compiled(kiln.randn(5, 3))
        assert compiled.cache_info()["traces"] == 1
        compiled(kiln.randn(6, 3))  # new shape: new signature
        model.train()  # training flags are part of the key
        compiled(x)
        assert compiled.cache_info()["traces"] == 3
        model.eval()
        compiled(x)
        assert compiled.cache_info()["traces"] == 3
    f = kiln.compile(lambda x, k, scale=1.0: (x * k * scale,), backend="c")
    out = f(x, 2, scale=3.0)  # statics and kwargs: the general flatten
    assert isinstance(out, tuple)
    np.testing.assert_allclose(out[0].numpy(), x.numpy() * 6, rtol=1e-6)
    np.testing.assert_allclose(f(x, 3, scale=3.0)[0].numpy(), x.numpy() * 9, rtol=1e-6)
    assert f.cache_info()["traces"] == 2


def test_training_calls_reuse_one_entry_and_see_replaced_parameters():
    lin = kiln.nn.Linear(3, 2)
    compiled = kiln.compile(lin, backend="c")
    x = kiln.randn(4, 3)
    for _ in range(3):
        lin.zero_grad()
        compiled(x).sum().backward()
    assert compiled.cache_info() == {"signatures": 1, "traces": 1}
    np.testing.assert_allclose(lin.weight.grad.numpy(), np.tile(x.numpy().sum(0), (2, 1)),
                               rtol=1e-5)
    lin.weight = kiln.nn.Parameter(kiln.ones(2, 3))  # a new parameter object
    lin.zero_grad()
    out = compiled(x)
    np.testing.assert_allclose(out.detach().numpy(), x.numpy() @ np.ones((3, 2)) +
                               lin.bias.detach().numpy(), rtol=1e-5)
    out.sum().backward()
    assert lin.weight.grad is not None
