"""Sizes 0, 1, odd and large; NaN and inf propagation; non-contiguous inputs; symbolic dims."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from kiln.errors import GuardError
from tests.c.conftest import check, compile_fn


def _program(x, w):
    h = x * w + 1.0
    return (h.exp(), h.sum(-1), h.sum(0), F.softmax(h, -1), F.layer_norm(h, (h.shape[-1],)),
            h.amax(-1), h @ h.T, h.argmax(-1) if h.shape[-1] else h.sum(-1))


@pytest.mark.parametrize("rows, cols", [(0, 5), (1, 1), (1, 7), (3, 1), (17, 33), (2, 0)])
def test_small_odd_and_empty_sizes(rows, cols):
    rng = np.random.default_rng(rows * 100 + cols)
    x = kiln.Tensor(rng.standard_normal((rows, cols)).astype("float32"))
    w = kiln.Tensor(rng.standard_normal(cols).astype("float32"))
    if cols == 0:
        check(lambda x, w: (x * w + 1.0, (x * w).sum(-1), (x * w).sum(0), x @ x.T), x, w)
        return
    check(_program, x, w, rtol=1e-4, atol=1e-5)


def test_large_parallel_shapes():
    rng = np.random.default_rng(7)
    x = kiln.Tensor(rng.standard_normal((300, 257)).astype("float32"))
    w = kiln.Tensor(rng.standard_normal(257).astype("float32"))
    check(_program, x, w, rtol=1e-4, atol=1e-4)


def test_nan_and_inf_propagate():
    x = kiln.tensor([[1.0, np.nan, 3.0], [np.inf, 2.0, -np.inf], [-np.inf] * 3,
                     [0.0, 0.0, 0.0]])

    def f(x):
        return (x.amax(1), x.amin(1), x.sum(1), x.argmax(1), x.argmin(1), F.softmax(x, 1),
                F.log_softmax(x, 1), kiln.ops.maximum(x, 0.0), kiln.ops.minimum(x, x.flip(1)),
                x.relu(), x.amax(0), x.argmax(0), x.prod(1), x.exp(), (x * 0).sum(0))

    check(f, x)


def test_non_contiguous_inputs():
    base = kiln.randn(6, 8)
    t = kiln.Tensor(base.numpy().T)  # a transposed view: strides are not C order
    assert not t.numpy().flags.c_contiguous
    gm, fn = compile_fn(lambda x: (x * 2).sum(0), kiln.randn(8, 6))
    with pytest.raises(GuardError, match="contiguous"):
        fn(t)
    _, fn_copy = compile_fn(lambda x: (x * 2).sum(0), kiln.randn(8, 6), contiguous="copy")
    np.testing.assert_allclose(fn_copy(t)[0].numpy(), gm.forward(t)[0].numpy(), rtol=1e-6)
    # kiln.compile may copy for the caller (documented): the raw function never does.
    sliced = kiln.Tensor(np.ascontiguousarray(base.numpy())[:, ::2])
    _, fn2 = compile_fn(lambda x: x + 1, kiln.randn(6, 4), contiguous="copy")
    np.testing.assert_array_equal(fn2(sliced)[0].numpy(), sliced.numpy() + 1)


def test_dynamic_batch_one_library_for_all_sizes():
    x = kiln.randn(4, 6)
    w = kiln.randn(6, 3)

    def f(x, w):
        h = F.gelu(x @ w)
        return F.softmax(h, -1), h.sum(0), h.reshape(-1), x.flip(0)[1:]

    gm, fn = compile_fn(f, x, w, dynamic={"x": {0: kiln.Dim("B", min=1, max=64)}})
    for b in (1, 2, 5, 64):
        xb = kiln.randn(b, 6)
        for g, r in zip(fn(xb, w), gm.forward(xb, w), strict=True):
            np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=2e-5, atol=1e-6)
    with pytest.raises(GuardError, match="B"):
        fn(kiln.randn(65, 6), w)


def test_dynamic_polynomial_and_floordiv_shapes():
    x = kiln.randn(6, 4)

    def f(x):
        y = x.reshape(-1)  # 4*B elements
        z = y.reshape(2, -1)  # (2, 2*B)
        return z.sum(1), y[::3] * 2, kiln.cat([x, x], 0).amax(0), z.T.reshape(-1)

    gm, fn = compile_fn(f, x, dynamic={"x": {0: "B"}})
    for b in (2, 3, 10):
        xb = kiln.randn(b, 4)
        for g, r in zip(fn(xb), gm.forward(xb), strict=True):
            np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=2e-5, atol=1e-6)


def test_dynamic_symbol_shared_by_two_inputs_and_solved_from_product():
    x = kiln.randn(3, 5)
    y = kiln.randn(3 * 2, 5)

    def f(x, y):
        return x.sum(0) + y.reshape(3, 2, 5).sum((0, 1))

    gm = kiln.trace(f, x, y, dynamic={"x": {0: "B"}})
    assert gm.graph.placeholders  # y's first dim is static here; only x is dynamic
    from kiln.backends.c.backend import compile_c

    fn = compile_c(gm)
    np.testing.assert_allclose(fn(x, y)[0].numpy(), gm.forward(x, y)[0].numpy(), rtol=1e-5)


def test_inputs_at_every_alignment():
    """Streaming loops peel a head so their loads are 64-byte aligned; run every alignment of
    the input against the reference (a gather or an arange must never be shifted with it)."""
    rng = np.random.default_rng(9)
    base = rng.standard_normal(1000 + 16).astype("float32")
    idx = kiln.tensor(rng.integers(0, 1000, 1000))

    def f(x, idx):
        return (x.cos() * 2, kiln.ops.gather(x, idx, dim=0) + x, x + kiln.arange(1000),
                x.exp().sum())

    gm, fn = compile_fn(f, kiln.Tensor(base[:1000].copy()), idx)
    for off in range(16):
        x = kiln.Tensor(base[off:off + 1000])  # contiguous, 4-byte steps of alignment
        for g, r in zip(fn(x, idx), gm.forward(x, idx), strict=True):
            np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=1e-5, atol=1e-5)
