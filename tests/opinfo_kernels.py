"""Op table entries for the kernel primitives: gather/scatter_add/scatter, convolution,
pooling."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import opinfo_refs as R
from opinfo_base import FLOAT_DTYPES, ErrorCase, OpInfo, Sample, _tf, _torch, make

from kiln import ops
from kiln.errors import ArgumentError, DTypeError, IndexError_, ShapeError

ENTRIES: list[OpInfo] = []
NUMERIC = ("float32", "float64", "int64", "int32")


def add(info: OpInfo) -> OpInfo:
    ENTRIES.append(info)
    return info


# --------------------------------------------------------------------------------------
# gather / scatter_add / scatter


def _gather_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    yield Sample((make(rng, (3, 4), dtype, layout="T"), rng.integers(0, 4, (3, 2))), {"dim": 1})
    yield Sample((make(rng, (3, 4), dtype), rng.integers(0, 3, (5, 2))), {"dim": 0},
                 desc="index smaller than input in the other dim, repeated rows")
    yield Sample((make(rng, (2, 3, 4), dtype, layout="strided"),
                  rng.integers(0, 3, (2, 2, 4)).astype(np.int32)), {"dim": -2})
    yield Sample((make(rng, (3, 4), dtype), np.zeros((3, 0), np.int64)), {"dim": 1})
    yield Sample((make(rng, (1, 4), dtype), rng.integers(0, 4, (1, 3))), {"dim": 1})


def _np_gather(x: np.ndarray, index: np.ndarray, dim: int) -> np.ndarray:
    out = np.empty(index.shape, x.dtype)
    for p in np.ndindex(*index.shape):
        q = list(p)
        q[dim] = index[p]
        out[p] = x[tuple(q)]
    return out


add(OpInfo(
    name="gather", op=ops.gather, ref=_np_gather,
    torch_ref=lambda x, index, dim: _torch().gather(x, dim, index.long()),
    sample_fn=_gather_samples, dtypes=NUMERIC, grad_args=(0,), supports_grad2=True,
    primitives=("gather",),
    error_fn=lambda: [
        ErrorCase((np.ones((2, 3), np.float32), np.array([[0, 3]])), {"dim": 1},
                  exc=IndexError_, match="gather: index 3 is out of bounds for dim 1",
                  ref_raises=True),
        ErrorCase((np.ones((2, 3), np.float32), np.array([[0.0]])), {"dim": 1},
                  exc=DTypeError, match="gather: index must be an integer tensor")]))


def _scatter_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    yield Sample((make(rng, (3, 4), dtype), rng.integers(0, 3, (5, 4)),
                  make(rng, (5, 4), dtype, layout="T")), {"dim": 0}, desc="duplicates add up")
    yield Sample((make(rng, (2, 5), dtype, layout="strided"), rng.integers(0, 5, (2, 3)),
                  make(rng, (2, 3), dtype)), {"dim": -1})
    yield Sample((make(rng, (2, 3), dtype), np.zeros((0, 3), np.int64),
                  make(rng, (0, 3), dtype)), {"dim": 0})
    yield Sample((make(rng, (1, 4), dtype), rng.integers(0, 4, (1, 2)), make(rng, (1, 2), dtype)),
                 {"dim": 1})


def _np_scatter_add(x: np.ndarray, index: np.ndarray, src: np.ndarray, dim: int) -> np.ndarray:
    out = x.astype(np.float64 if x.dtype.kind == "f" else x.dtype).copy()
    for p in np.ndindex(*index.shape):
        q = list(p)
        q[dim] = index[p]
        out[tuple(q)] += src[p]
    return out.astype(x.dtype)


add(OpInfo(
    name="scatter_add", op=ops.scatter_add, ref=_np_scatter_add,
    torch_ref=lambda x, index, src, dim: _torch().scatter_add(x, dim, index.long(), src),
    sample_fn=_scatter_samples, dtypes=NUMERIC, grad_args=(0, 2), supports_grad2=True,
    primitives=("scatter_add",),
    error_fn=lambda: [ErrorCase((np.ones((2, 3), np.float32), np.zeros((2, 3), np.int64),
                                 np.ones((2, 3), np.float64)), {"dim": 0}, exc=DTypeError,
                                match="scatter_add: src dtype float64 differs")]))


def _overwrite_samples(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
    dup = {"torch_grad": "torch gives every write to an element the gradient; only the "
                         "last one (the value that stays) affects the output"}
    yield Sample((make(rng, (3, 4), dtype), rng.integers(0, 3, (5, 4)),
                  make(rng, (5, 4), dtype, layout="T")), {"dim": 0},
                 desc="duplicates: the last write wins", skips=dup)
    yield Sample((make(rng, (2, 5), dtype, layout="strided"),
                  np.array([[4, 0, 4], [1, 1, 1]]), make(rng, (2, 3), dtype)), {"dim": -1},
                 desc="repeated index along the scattered dim", skips=dup)
    yield Sample((make(rng, (3, 6), dtype),
                  np.stack([rng.permutation(6)[:4] for _ in range(2)]).astype(np.int32),
                  make(rng, (2, 4), dtype)), {"dim": 1},
                 desc="distinct indices, index smaller than input in dim 0")
    yield Sample((make(rng, (2, 3, 4), dtype, layout="permuted"),
                  np.array([[[1, 0], [0, 1], [1, 1]]]), make(rng, (1, 3, 2), dtype)),
                 {"dim": 0}, skips=dup)
    yield Sample((make(rng, (2, 3), dtype), np.zeros((0, 3), np.int64),
                  make(rng, (0, 3), dtype)), {"dim": 0})


def _np_scatter(x: np.ndarray, index: np.ndarray, src: np.ndarray, dim: int) -> np.ndarray:
    out = x.copy()
    for p in np.ndindex(*index.shape):  # in order: the last write stays
        q = list(p)
        q[dim] = index[p]
        out[tuple(q)] = src[p]
    return out


add(OpInfo(
    name="scatter", op=ops.scatter, ref=_np_scatter,
    torch_ref=lambda x, index, src, dim: _torch().scatter(x, dim, index.long(), src),
    sample_fn=_overwrite_samples, dtypes=NUMERIC + ("bool",), grad_args=(0, 2),
    supports_grad2=True, primitives=("scatter",),
    error_fn=lambda: [
        ErrorCase((np.ones((2, 3), np.float32), np.zeros((2, 3), np.int64),
                   np.ones((2, 3), np.float64)), {"dim": 0}, exc=DTypeError,
                  match="scatter: src dtype float64 differs"),
        ErrorCase((np.ones((2, 3), np.float32), np.array([[0, 3]]), np.ones((1, 2), np.float32)),
                  {"dim": 1}, exc=IndexError_, match="scatter: index 3 is out of bounds for dim 1"),
        ErrorCase((np.ones((2, 3), np.float32), np.zeros((2, 3), np.int64),
                   np.ones((2, 2), np.float32)), {"dim": 0}, exc=ShapeError,
                  match="scatter: src shape")]))


# --------------------------------------------------------------------------------------
# convolution

CONV_CASES = [
    # x shape, w shape, stride, padding, dilation, groups
    ((2, 3, 5, 5), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((1, 2, 7, 6), (3, 2, 3, 2), (2, 1), (0, 1), (2, 1), 1),
    ((2, 4, 5, 4), (6, 2, 2, 2), (1, 2), (1, 0), (1, 1), 2),
    ((1, 3, 4, 4), (3, 1, 3, 3), (2, 2), (1, 1), (1, 1), 3),
    ((0, 2, 4, 4), (3, 2, 3, 3), (1, 1), (0, 0), (1, 1), 1),  # an empty batch
]


def _conv_attrs(case: tuple) -> dict:
    return {"stride": case[2], "padding": case[3], "dilation": case[4], "groups": case[5]}


def _out_hw(x: tuple, w: tuple, a: dict) -> tuple:
    return tuple((x[2 + i] + 2 * a["padding"][i] - a["dilation"][i] * (w[2 + i] - 1) - 1)
                 // a["stride"][i] + 1 for i in range(2))


def _conv_samples(which: str) -> Callable:
    def gen(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
        for k, case in enumerate(CONV_CASES):
            xs, ws = case[0], case[1]
            a = _conv_attrs(case)
            layout = ("contig", "T", "strided", "permuted")[k % 4]
            gs = (xs[0], ws[0]) + _out_hw(xs, ws, a)
            if which == "conv2d":
                yield Sample((make(rng, xs, dtype, layout=layout), make(rng, ws, dtype)), a)
            elif which == "input_grad":
                yield Sample((make(rng, gs, dtype, layout=layout), make(rng, ws, dtype)),
                             {"input_hw": xs[2:], **a})
            else:
                yield Sample((make(rng, xs, dtype), make(rng, gs, dtype, layout=layout)),
                             {"kernel_hw": ws[2:], **a})

    return gen


def _torch_conv_input_grad(g: Any, w: Any, input_hw: tuple, **a: Any) -> Any:
    import torch.nn.grad as tg

    size = (g.shape[0], w.shape[1] * a["groups"]) + tuple(input_hw)
    return tg.conv2d_input(size, w, g, **a)


def _torch_conv_weight_grad(x: Any, g: Any, kernel_hw: tuple, **a: Any) -> Any:
    import torch.nn.grad as tg

    size = (g.shape[1], x.shape[1] // a["groups"]) + tuple(kernel_hw)
    return tg.conv2d_weight(x, size, g, **a)


_CONV_TOL = {"float32": (1e-5, 1e-5)}
add(OpInfo(
    name="conv2d", op=ops.conv2d, ref=R.conv2d, sample_fn=_conv_samples("conv2d"),
    torch_ref=lambda x, w, **a: _tf().conv2d(x, w, **a), supports_grad2=True,
    primitives=("conv2d",), tol=_CONV_TOL, torch_tol=_CONV_TOL,
    torch_note="summation order differs: atol 1e-5",
    error_fn=lambda: [
        ErrorCase((np.ones((1, 3, 4, 4), np.float32), np.ones((2, 2, 3, 3), np.float32)),
                  {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1},
                  exc=ShapeError, match="conv2d: input has 3 channels but weight expects"),
        ErrorCase((np.ones((1, 1, 2, 2), np.float32), np.ones((1, 1, 3, 3), np.float32)),
                  {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1},
                  exc=ShapeError, match="conv2d: input spatial size .* too small"),
        ErrorCase((np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 3, 3), np.float32)),
                  {"stride": (0, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1},
                  exc=ArgumentError, match="conv2d: stride must be >= 1")]))
add(OpInfo(
    name="conv2d_input_grad", op=ops.conv2d_input_grad, ref=R.conv2d_input_grad,
    sample_fn=_conv_samples("input_grad"), torch_ref=_torch_conv_input_grad,
    supports_grad2=True, primitives=("conv2d_input_grad",), tol=_CONV_TOL, torch_tol=_CONV_TOL,
    torch_note="summation order differs: atol 1e-5"))
add(OpInfo(
    name="conv2d_weight_grad", op=ops.conv2d_weight_grad, ref=R.conv2d_weight_grad,
    sample_fn=_conv_samples("weight_grad"), torch_ref=_torch_conv_weight_grad,
    supports_grad2=True, primitives=("conv2d_weight_grad",), tol={"float32": (1e-5, 1e-4)},
    torch_tol={"float32": (1e-5, 1e-4)},
    torch_note="sums over N*OH*OW terms in another order: atol 1e-4"))


# --------------------------------------------------------------------------------------
# pooling

MAX_CASES = [
    ((2, 3, 6, 6), {"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0), "dilation": (1, 1),
                    "ceil_mode": False}),
    ((1, 2, 7, 5), {"kernel": (3, 3), "stride": (2, 2), "padding": (1, 1), "dilation": (1, 1),
                    "ceil_mode": True}),
    ((1, 1, 7, 7), {"kernel": (2, 3), "stride": (1, 2), "padding": (1, 0), "dilation": (2, 2),
                    "ceil_mode": False}),
    ((0, 2, 4, 4), {"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0), "dilation": (1, 1),
                    "ceil_mode": False}),
]
AVG_CASES = [
    ((2, 3, 6, 6), {"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0), "ceil_mode": False,
                    "count_include_pad": True, "divisor_override": None}),
    ((1, 2, 7, 5), {"kernel": (3, 3), "stride": (2, 2), "padding": (1, 1), "ceil_mode": True,
                    "count_include_pad": False, "divisor_override": None}),
    ((1, 2, 5, 5), {"kernel": (3, 2), "stride": (1, 2), "padding": (1, 1), "ceil_mode": True,
                    "count_include_pad": True, "divisor_override": None}),
    ((1, 1, 4, 6), {"kernel": (2, 3), "stride": (2, 3), "padding": (0, 0), "ceil_mode": False,
                    "count_include_pad": True, "divisor_override": 4}),
    ((0, 2, 4, 4), {"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0), "ceil_mode": False,
                    "count_include_pad": True, "divisor_override": None}),
]


def _pool_out(shape: tuple, a: dict) -> tuple:
    out = []
    for i in range(2):
        size, k, s, p = shape[2 + i], a["kernel"][i], a["stride"][i], a["padding"][i]
        d = a.get("dilation", (1, 1))[i]
        span = size + 2 * p - d * (k - 1) - 1
        n = span // s + 1
        if a["ceil_mode"]:
            n = -(-span // s) + 1
            if (n - 1) * s >= size + p:
                n -= 1
        out.append(n)
    return shape[:2] + tuple(out)


def _pool_samples(cases: list, which: str) -> Callable:
    def gen(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
        for k, (shape, a) in enumerate(cases):
            layout = ("contig", "T", "strided", "contig")[k % 4]
            x = make(rng, shape, dtype, "distinct", layout)
            if which == "fwd":
                yield Sample((x,), dict(a))
            elif which == "max_bwd":
                yield Sample((make(rng, _pool_out(shape, a), dtype), x), dict(a), grad_args=(0,))
            else:
                yield Sample((make(rng, _pool_out(shape, a), dtype, layout=layout),),
                             {"input_hw": shape[2:], **a})

    return gen


def _torch_max_pool(x: Any, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple,
                    ceil_mode: bool) -> Any:
    return _tf().max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)


def _torch_avg_pool(x: Any, kernel: tuple, stride: tuple, padding: tuple, ceil_mode: bool,
                    count_include_pad: bool, divisor_override: Any) -> Any:
    return _tf().avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad,
                            divisor_override)


def _torch_max_bwd(g: Any, x: Any, **a: Any) -> Any:
    torch = _torch()
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        (gx,) = torch.autograd.grad(_torch_max_pool(xr, **a), xr, g, create_graph=True)
    return gx


def _torch_avg_bwd(g: Any, input_hw: tuple, **a: Any) -> Any:
    torch = _torch()
    with torch.enable_grad():
        x = torch.zeros(tuple(g.shape[:2]) + tuple(input_hw), dtype=g.dtype,
                        requires_grad=True)
        (gx,) = torch.autograd.grad(_torch_avg_pool(x, **a), x, g, create_graph=True)
    return gx


add(OpInfo(
    name="max_pool2d", op=ops.max_pool2d, ref=lambda x, **a: R.max_pool2d(x, **a)[0],
    sample_fn=_pool_samples(MAX_CASES, "fwd"), torch_ref=_torch_max_pool,
    dtypes=FLOAT_DTYPES, primitives=("max_pool2d",),
    skips={"grad2": "max_pool2d_backward has no vjp: second derivatives through max pooling "
                    "are not supported"},
    error_fn=lambda: [ErrorCase((np.ones((1, 1, 4, 4), np.float32),),
                                {"kernel": (2, 2), "stride": (2, 2), "padding": (2, 2),
                                 "dilation": (1, 1), "ceil_mode": False}, exc=ArgumentError,
                                match="max_pool2d: padding .* at most half the kernel"),
                      ErrorCase((np.ones((4, 4), np.float32),),
                                {"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0),
                                 "dilation": (1, 1), "ceil_mode": False}, exc=ShapeError,
                                match=r"max_pool2d: input must be 4-D")]))
add(OpInfo(
    name="max_pool2d_backward", op=ops.max_pool2d_backward, ref=R.max_pool2d_backward,
    sample_fn=_pool_samples(MAX_CASES, "max_bwd"), torch_ref=_torch_max_bwd,
    primitives=("max_pool2d_backward",), supports_grad=False))
add(OpInfo(
    name="avg_pool2d", op=ops.avg_pool2d, ref=R.avg_pool2d,
    sample_fn=_pool_samples(AVG_CASES, "fwd"), torch_ref=_torch_avg_pool,
    supports_grad2=True, primitives=("avg_pool2d",),
    error_fn=lambda: [ErrorCase((np.ones((1, 1, 4, 4), np.int64),),
                                {"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0),
                                 "ceil_mode": False, "count_include_pad": True,
                                 "divisor_override": None}, exc=DTypeError,
                                match="avg_pool2d: expected a floating tensor")]))
add(OpInfo(
    name="avg_pool2d_backward", op=ops.avg_pool2d_backward, ref=R.avg_pool2d_backward,
    sample_fn=_pool_samples(AVG_CASES, "avg_bwd"), torch_ref=_torch_avg_bwd,
    supports_grad2=True, primitives=("avg_pool2d_backward",)))

