"""Every primitive of the registry, compiled with the C backend, against the interpreter.

Ops are batched into a few graphs (one compile each) that return one output per op, so a
mismatch names the op. ``test_every_primitive_is_covered`` fails when the registry gains a
primitive that no test here compiles.
"""

from __future__ import annotations

import numpy as np
import pytest

import kiln
from kiln import ops
from kiln.core.prims.registry import REGISTRY
from kiln.errors import IndexError_
from tests.c.conftest import check, compile_fn, special_values

UNARY_FLOAT = ["neg", "abs", "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "sin", "cos",
               "tanh", "sigmoid", "erf", "relu", "floor", "ceil", "round", "sign",
               "reciprocal", "logical_not"]
UNARY_INT = ["neg", "abs", "relu", "floor", "ceil", "round", "sign", "logical_not", "exp",
             "sqrt"]
BINARY = ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "ne", "lt", "le",
          "gt", "ge", "logical_and", "logical_or"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_unary_float(dtype):
    x = kiln.tensor(special_values(dtype, 200))
    x = kiln.Tensor(np.concatenate([x.numpy(), np.linspace(-12, 12, 97).astype(dtype)]))

    def f(x):
        return tuple(getattr(ops, name)(x) for name in UNARY_FLOAT)

    check(f, x, names=UNARY_FLOAT, rtol=4e-6 if dtype == "float32" else 1e-13,
          atol=1e-30 if dtype == "float32" else 1e-300)


def test_unary_int_and_bool():
    x = kiln.tensor([-7, -1, 0, 1, 2, 5, 2**40, -(2**40)], dtype="int64")
    y = kiln.tensor([-3, 0, 4], dtype="int32")
    b = kiln.tensor([True, False, True])

    def f(x, y, b):
        return tuple(getattr(ops, n)(x) for n in UNARY_INT) + \
            tuple(getattr(ops, n)(y) for n in ("neg", "abs", "sign")) + (ops.logical_not(b),)

    check(f, x, y, b)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_binary_float_broadcast(dtype):
    rng = np.random.default_rng(1)
    a = special_values(dtype, 14, seed=2)[:35].reshape(7, 5)
    b = rng.standard_normal(5).astype(dtype)
    b[1] = np.nan
    b[2] = 0.0
    b[3] = 2.0
    a_t, b_t = kiln.tensor(a), kiln.tensor(b)

    def f(a, b):
        out = tuple(getattr(ops, n)(a, b) for n in BINARY)
        return out + (ops.pow(a, 2.0), ops.pow(a, 0.5), ops.add(a, 1), ops.mul(2.5, a),
                      ops.div(1.0, a), ops.maximum(a, 0.0))

    check(f, a_t, b_t, rtol=4e-6 if dtype == "float32" else 1e-13)


MATH_UNARY = ["asin", "acos", "atan", "sinh", "cosh", "tan", "asinh", "acosh", "atanh", "log2",
              "log10", "trunc", "signbit"]
MATH_BINARY = ["atan2", "hypot", "copysign"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_math_library_primitives(dtype):
    # special values (NaN, +-inf, +-0, huge, tiny) and values inside and outside each domain
    x = kiln.Tensor(np.concatenate([special_values(dtype, 120),
                                    np.linspace(-3, 3, 61).astype(dtype)]))
    y = kiln.Tensor(np.roll(x.numpy(), 7))
    ints = kiln.tensor([-3, 0, 5, 2**40])

    def f(x, y, ints):
        return tuple(getattr(ops, n)(x) for n in MATH_UNARY) + \
            tuple(getattr(ops, n)(x, y) for n in MATH_BINARY) + \
            (ops.trunc(ints), ops.signbit(ints), ops.atan(ints), ops.atan2(ints, ints))

    check(f, x, y, ints, rtol=4e-6 if dtype == "float32" else 1e-13,
          atol=1e-30 if dtype == "float32" else 1e-300)


SPECIAL = ["erfc", "lgamma", "digamma", "trigamma", "bessel_j0", "bessel_j1", "bessel_y0",
           "bessel_y1"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_special_function_primitives(dtype):
    """erfc, lgamma, digamma, trigamma, the Bessel functions and polygamma in C against the
    NumPy references: special values, poles (0 and the negative integers) and values on both
    sides of zero."""
    x = kiln.Tensor(np.concatenate([special_values(dtype, 60),
                                    np.linspace(-6.5, 12, 75).astype(dtype),
                                    np.array([-3.0, -1.0, 0.0, 1e-3, 30.0], dtype)]))

    def f(x):
        return tuple(getattr(ops, n)(x) for n in SPECIAL) + \
            tuple(ops.polygamma(n, x) for n in (2, 3, 5))

    check(f, x, rtol=2e-5 if dtype == "float32" else 1e-10,
          atol=1e-30 if dtype == "float32" else 1e-300)


BITWISE = ["bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not"]


def test_bitwise_int_and_bool():
    a = kiln.tensor([[-7, 3, 0, 2**40], [5, -2, 9, -1]])
    b = kiln.tensor([6, 3, -1, 12])
    c = kiln.tensor([[True, False, True, False], [False, False, True, True]])
    d = kiln.tensor([-3, 0, 4, 7], dtype="int32")

    def f(a, b, c, d):
        out = tuple(getattr(ops, n)(a, b) for n in BITWISE[:3]) + (ops.bitwise_not(a),)
        return out + tuple(getattr(ops, n)(c, c[1]) for n in BITWISE[:3]) + (
            ops.bitwise_not(c), ops.bitwise_not(d), ops.bitwise_and(d, 6), ops.bitwise_xor(c, 3),
            ops.bitwise_or(d, a), ~(a > 0) & c)

    check(f, a, b, c, d)


def test_binary_int_bool_mixed():
    a = kiln.tensor([[-7, 3, 0], [5, -2, 9]])
    b = kiln.tensor([2, 3, 1])
    c = kiln.tensor([[True, False, True], [False, False, True]])
    h = kiln.tensor([1.5, -2.0, 0.25], dtype="float64")

    def f(a, b, c, h):
        return (a + b, a - b, a * b, a / b, ops.pow(a, b), ops.maximum(a, b), a < b, a == b,
                c & (a > 0), c | c, c + c, c * c, ops.maximum(c, c), a + h, a * 0.5,
                ops.where(c, a, b), ops.where(c, 1.5, a), a + True, a.to(kiln.int32) * 3,
                ops.floor_divide(a, b), ops.floor_divide(a.to(kiln.int32), -2),
                ops.floor_divide(7, b))

    check(f, a, b, c, h)


@pytest.mark.parametrize("src", ["float32", "float64", "int64", "int32", "bool"])
def test_cast_all_pairs(src):
    vals = np.array([0.0, 1.0, -1.5, 2.5, 1e10, -3.7, 255.9, np.nan, np.inf]) \
        if src.startswith("float") else np.array([0, 1, -3, 7, 2**31 + 5, -2])
    if src == "bool":
        vals = np.array([True, False, True])
    if src == "int32":
        vals = vals.clip(-1000, 1000)
    x = kiln.Tensor(vals.astype(src))

    def f(x):
        return tuple(ops.cast(x, dtype=d) for d in
                     (kiln.float32, kiln.float64, kiln.int64, kiln.int32, kiln.bool_))

    check(f, x)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_reductions(dtype):
    rng = np.random.default_rng(3)
    if dtype == "int64":
        x = rng.integers(-5, 6, size=(3, 4, 5)).astype(dtype)
    else:
        x = rng.standard_normal((3, 4, 5)).astype(dtype)
        x[1, 2, 3] = np.nan
        x[2, 0, :] = -np.inf
    xt = kiln.Tensor(x)

    def f(x):
        outs = []
        for op in (ops.sum, ops.prod, ops.max, ops.min):
            for dims in (None, (0,), (1,), (2,), (0, 2), (1, 2)):
                outs.append(op(x, dims=dims))
            outs.append(op(x, dims=(1,), keepdim=True))
        for op in (ops.argmax, ops.argmin):
            for dim in (None, 0, 1, 2):
                outs.append(op(x, dim=dim))
            outs.append(op(x, dim=2, keepdim=True))
        return tuple(outs)

    check(f, xt, rtol=1e-5 if dtype == "float32" else None)


def test_reductions_bool_and_sizes_one():
    b = kiln.tensor([[True, False, True], [False, False, False]])
    x = kiln.randn(1, 7, 1)

    def f(b, x):
        return (ops.sum(b, dims=(1,)), ops.max(b, dims=(0,)), ops.argmax(b, dim=1),
                ops.sum(x, dims=(0, 2)), ops.sum(x, dims=()), ops.max(x, dims=(0,)),
                ops.prod(b, dims=(0,)))

    check(f, b, x)


def test_movement():
    x = kiln.randn(3, 4, 5)
    y = kiln.randn(3, 2, 5)

    def f(x, y):
        return (ops.reshape(x, shape=(12, 5)), ops.reshape(x, shape=(5, 12)),
                ops.reshape(ops.permute(x, dims=(2, 0, 1)), shape=(60,)),
                ops.permute(x, dims=(1, 2, 0)),
                ops.expand(ops.slice(x, dim=1, start=1, stop=2, step=1), shape=(2, 3, 3, 5)),
                ops.slice(x, dim=2, start=1, stop=5, step=2),
                ops.pad(x, pads=((1, 0, 0), (0, 2, 1), (2, 2, 0)), value=-1.5),
                ops.cat(x, y, x, dim=1), ops.flip(x, dims=(0, 2)),
                ops.reshape(ops.flip(ops.permute(x, dims=(0, 2, 1)), dims=(1,)), shape=(3, 20)))

    check(f, x, y)


def test_creation():
    x = kiln.randn(3, 4)

    def f(x):
        return (x + ops.full(shape=(3, 4), value=2.5, dtype=kiln.float32),
                ops.arange(start=2, stop=17, step=3, dtype=kiln.int64),
                ops.arange(start=0.5, stop=2.0, step=0.1, dtype=kiln.float32),
                ops.arange(start=0.5, stop=2.0, step=0.1, dtype=kiln.float64),
                ops.eye(n=3, m=4, dtype=kiln.float32) * x,
                ops.full(shape=(2,), value=True, dtype=kiln.bool_))

    check(f, x)


def test_random_matches_interpreter_bit_for_bit():
    x = kiln.ones(4, 5)

    def f(x):
        return (x * ops.rand(shape=(4, 5), dtype=kiln.float32),
                ops.randn(shape=(3,), dtype=kiln.float64),
                ops.randint(shape=(6,), dtype=kiln.int64, low=-3, high=9),
                ops.randperm(n=7, dtype=kiln.int64))

    gm, fn = compile_fn(f, x)
    kiln.manual_seed(11)
    got = fn(x)
    kiln.manual_seed(11)
    ref = gm.forward(x)
    for g, r in zip(got, ref, strict=True):
        np.testing.assert_array_equal(g.numpy(), r.numpy())
    assert not np.array_equal(fn(x)[0].numpy(), got[0].numpy())  # drawn anew each call


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matmul_layouts(dtype):
    rng = np.random.default_rng(4)

    def t(*s):
        return kiln.Tensor(rng.standard_normal(s).astype(dtype))

    a, b, bt, c3, d3, v = t(5, 7), t(7, 3), t(3, 7), t(2, 5, 7), t(2, 7, 4), t(7)
    e0, e1 = t(5, 0), t(0, 3)

    def f(a, b, bt, c3, d3, v, e0, e1):
        return (a @ b, a @ bt.T, a.T.T @ b, (a.T).T @ bt.permute(1, 0), c3 @ d3, c3 @ b,
                a @ d3, c3.mT.mT @ d3, v @ b, a @ v, e0 @ e1, ops.matmul(a.T, a))

    check(f, a, b, bt, c3, d3, v, e0, e1, rtol=1e-5 if dtype == "float32" else None,
          atol=1e-5 if dtype == "float32" else None)


def test_matmul_int_and_broadcast_batch():
    a = kiln.tensor(np.arange(24).reshape(2, 1, 3, 4))
    b = kiln.tensor(np.arange(20).reshape(1, 5, 4, 1) - 7)
    check(lambda a, b: a @ b, a, b)


def test_gather_and_scatter_add():
    x = kiln.randn(4, 6)
    idx = kiln.tensor([[0, 5, 2], [1, 1, 1], [5, 0, 3], [2, 2, 4]])
    idx0 = kiln.tensor([[3, 0, 1, 2, 0, 1]])
    src = kiln.randn(4, 3)

    def f(x, idx, idx0, src):
        return (ops.gather(x, idx, dim=1), ops.gather(x, idx0, dim=0) * 2,
                ops.scatter_add(x, idx, src, dim=1),
                ops.scatter_add(ops.full(shape=(4, 6), value=0.0, dtype=kiln.float32), idx0,
                                ops.slice(x, dim=0, start=0, stop=1, step=1), dim=0))

    fn = check(f, x, idx, idx0, src)
    bad = kiln.tensor([[0, 6, 2], [1, 1, 1], [5, 0, 3], [2, 2, 4]])
    with pytest.raises(IndexError_, match="gather"):
        fn(x, bad, idx0, src)
    neg = kiln.tensor([[0, 5, 2], [1, 1, 1], [5, 0, 3], [2, -1, 4]])
    with pytest.raises(IndexError_):
        fn(x, neg, idx0, src)


def test_gather_indexed_by_an_argmax_of_the_same_kernel():
    # The gather's bounds check reads the argmax: it belongs after the reduction loop (it
    # was emitted inside it, reading an undeclared variable, in column kernels).
    x = kiln.randn(5, 3, 4)

    def f(x):
        idx = ops.argmax(x, dim=1, keepdim=True)
        return ops.gather(x, idx, dim=1), ops.gather(x, ops.argmin(x, dim=2, keepdim=True), dim=2)

    check(f, x)


def test_scatter_last_write_wins():
    # Duplicates along the scattered dim (the last write in index order stays), a scatter
    # into a fused pointwise result, an int and a bool scatter, and a large case whose outer
    # loop runs in parallel: results equal the interpreter's bit for bit.
    rng = np.random.default_rng(5)
    x = kiln.randn(4, 6)
    idx = kiln.tensor([[0, 5, 0], [1, 1, 1], [5, 0, 5], [2, 2, 4]])
    src = kiln.randn(4, 3)
    xi = kiln.tensor(rng.integers(-9, 9, (3, 5)))
    idx0 = kiln.tensor(rng.integers(0, 3, (7, 5)))
    srci = kiln.tensor(rng.integers(-9, 9, (7, 5)))
    big = kiln.tensor(rng.standard_normal((300, 257)))
    bidx = kiln.tensor(rng.integers(0, 300, (400, 257)))
    bsrc = kiln.tensor(rng.standard_normal((400, 257)))

    def f(x, idx, src, xi, idx0, srci, big, bidx, bsrc):
        return (ops.scatter(x, idx, src, dim=1), ops.scatter((x * 2).exp(), idx, src * 3, dim=1),
                ops.scatter(xi, idx0, srci, dim=0), ops.scatter(xi > 0, idx0, srci > 0, dim=0),
                ops.scatter(big, bidx, bsrc, dim=0))

    fn = check(f, x, idx, src, xi, idx0, srci, big, bidx, bsrc)
    got = fn(x, idx, src, xi, idx0, srci, big, bidx, bsrc)[0].numpy()
    assert got[0, 0] == src.numpy()[0, 2] and got[1, 1] == src.numpy()[1, 2]
    bad = kiln.tensor([[0, 6, 2], [1, 1, 1], [5, 0, 3], [2, 2, 4]])
    with pytest.raises(IndexError_, match="scatter"):
        fn(x, bad, src, xi, idx0, srci, big, bidx, bsrc)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv_and_pool(dtype):
    rng = np.random.default_rng(5)

    def t(*s):
        return kiln.Tensor(rng.standard_normal(s).astype(dtype))

    x, w, wg = t(2, 4, 9, 8), t(6, 4, 3, 3), t(6, 2, 3, 1)
    g = t(2, 6, 5, 4)

    def f(x, w, wg, g):
        a = dict(stride=(2, 2), padding=(1, 1), dilation=(1, 1), groups=1)
        p = dict(kernel=(3, 2), stride=(2, 2), padding=(1, 1), ceil_mode=False)
        return (ops.conv2d(x, w, **a),
                ops.conv2d(x, wg, stride=(1, 1), padding=(0, 0), dilation=(2, 1), groups=2),
                ops.conv2d_input_grad(g, w, input_hw=(9, 8), **a),
                ops.conv2d_weight_grad(x, g, kernel_hw=(3, 3), **a),
                ops.max_pool2d(x, dilation=(1, 1), **p),
                ops.max_pool2d_backward(ops.max_pool2d(x, dilation=(1, 1), **p) * 3, x,
                                        dilation=(1, 1), **p),
                ops.avg_pool2d(x, count_include_pad=False, divisor_override=None, **p),
                ops.avg_pool2d_backward(ops.avg_pool2d(x, count_include_pad=True,
                                                       divisor_override=None, **p),
                                        input_hw=(9, 8), count_include_pad=True,
                                        divisor_override=None, **p))

    tol = 1e-4 if dtype == "float32" else 1e-11
    check(f, x, w, wg, g, rtol=tol, atol=tol)


# Which test compiles which primitives (kept by hand next to the tests above).
COVERAGE = {
    "test_unary_float": UNARY_FLOAT,
    "test_math_library_primitives": MATH_UNARY + MATH_BINARY,
    "test_special_function_primitives": SPECIAL + ["polygamma"],
    "test_binary_float_broadcast": BINARY,
    "test_cast_all_pairs": ["cast", "where"],
    "test_binary_int_bool_mixed": ["floor_divide"],
    "test_bitwise_int_and_bool": BITWISE,
    "test_reductions": ["sum", "prod", "max", "min", "argmax", "argmin"],
    "test_movement": ["reshape", "permute", "expand", "slice", "pad", "cat", "flip"],
    "test_creation": ["full", "arange", "eye"],
    "test_random_matches_interpreter_bit_for_bit": ["rand", "randn", "randint", "randperm"],
    "test_matmul_layouts": ["matmul"],
    "test_gather_and_scatter_add": ["gather", "scatter_add"],
    "test_scatter_last_write_wins": ["scatter"],
    "test_linalg_primitives_are_refused_by_name": [
        "linalg_inv", "linalg_det", "linalg_slogdet", "linalg_solve", "linalg_solve_triangular",
        "linalg_cholesky", "linalg_eigh", "linalg_svd", "linalg_qr", "linalg_lu",
        "linalg_geqrf"],
    "test_conv_and_pool": ["conv2d", "conv2d_input_grad", "conv2d_weight_grad", "max_pool2d",
                           "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward"],
}


def test_linalg_primitives_are_refused_by_name():
    """No LAPACK kernels yet: a graph with a decomposition is a BackendError that names the
    op and the way out, never a crash; the same function runs on the interpreter."""
    from kiln.errors import BackendError

    a = kiln.tensor(np.eye(3) * 2.0 + 0.1)
    for fn in (kiln.linalg.inv, kiln.linalg.det, lambda x: kiln.linalg.slogdet(x).logabsdet,
               lambda x: kiln.linalg.solve(x, x), kiln.linalg.cholesky,
               lambda x: kiln.linalg.solve_triangular(x, x, upper=True),
               lambda x: kiln.linalg.eigh(x).eigenvalues, kiln.linalg.svdvals,
               lambda x: kiln.linalg.qr(x).R, lambda x: kiln.linalg.lu_factor(x).LU,
               lambda x: kiln.geqrf(x).a):
        with pytest.raises(BackendError, match="has no C kernel.*backend='interpret'"):
            kiln.compile(fn, backend="c")(a)
        got = kiln.compile(fn, backend="interpret")(a)
        np.testing.assert_allclose(got.numpy(), fn(a).numpy(), rtol=1e-6)


def test_every_primitive_is_covered():
    covered = {op for ops_ in COVERAGE.values() for op in ops_}
    assert set(COVERAGE) <= set(globals()), "COVERAGE names a test that does not exist"
    missing = sorted(set(REGISTRY) - covered)
    assert not missing, f"primitives with no C-backend test: {missing}"
