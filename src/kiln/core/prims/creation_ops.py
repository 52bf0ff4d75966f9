"""Creation and random primitives: full, arange, eye, rand, randn, randint; and matmul.

Creation ops take no tensor input. Inside a trace they are recorded (never baked in), so a
buffer sized by a symbolic dim or a dropout mask is made anew on every call.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln.core import dtypes as dt
from kiln.core.prims.registry import OpDef, TensorMeta, register
from kiln.core.prims.shapes import broadcast_shapes, check_shape_arg, fmt_shape, require_tensor
from kiln.core.prims.vjp_utils import sum_to
from kiln.core.random import generator
from kiln.errors import ArgumentError, DTypeError, ShapeError, ValueArgumentError


def _full_meta(*, shape: tuple, value: Any, dtype: Any) -> TensorMeta:
    check_shape_arg("full", shape)
    if not isinstance(value, (bool, int, float)):
        raise ArgumentError(f"full: value must be a Python number, got {type(value).__name__}")
    return TensorMeta(tuple(shape), dt.get_dtype(dtype))


register(OpDef("full", _full_meta,
               lambda *, shape, value, dtype: np.full(shape, value, dt.get_dtype(dtype).np_dtype),
               None, "creation", "full(shape=, value=, dtype=): a tensor filled with value.",
               differentiable=False, attrs=("shape", "value", "dtype")))


def _arange_len(start: Any, stop: Any, step: Any) -> int:
    if step == 0:
        raise ValueArgumentError("arange: step must be non-zero")
    return max(0, int(np.ceil((stop - start) / step)))


def _arange_meta(*, start: Any, stop: Any, step: Any, dtype: Any) -> TensorMeta:
    from kiln.symbolic.sizes import SymInt

    if isinstance(stop, SymInt) or isinstance(start, SymInt):
        if step != 1 or start != 0:
            raise ShapeError("arange: a symbolic bound needs start=0 and step=1")
        return TensorMeta((stop,), dt.get_dtype(dtype))
    return TensorMeta((_arange_len(start, stop, step),), dt.get_dtype(dtype))


def _arange_eager(*, start: Any, stop: Any, step: Any, dtype: Any) -> np.ndarray:
    npd = dt.get_dtype(dtype).np_dtype
    n = _arange_len(start, stop, step)
    # start + i*step (rather than np.arange's accumulation) matches torch for float steps.
    return (start + np.arange(n, dtype=np.float64) * step).astype(npd) if npd.kind == "f" \
        else np.arange(start, stop, step, dtype=npd)


register(OpDef("arange", _arange_meta, _arange_eager, None, "creation",
               "arange(start=, stop=, step=, dtype=): evenly spaced values in [start, stop).",
               differentiable=False, attrs=("start", "stop", "step", "dtype")))


def _eye_meta(*, n: Any, m: Any, dtype: Any) -> TensorMeta:
    check_shape_arg("eye", (n, m), "(n, m)")
    return TensorMeta((n, m), dt.get_dtype(dtype))


register(OpDef("eye", _eye_meta,
               lambda *, n, m, dtype: np.eye(n, m, dtype=dt.get_dtype(dtype).np_dtype),
               None, "creation", "eye(n=, m=, dtype=): ones on the diagonal.",
               differentiable=False, attrs=("n", "m", "dtype")))


def _random_meta(name: str, floating: bool = True) -> Any:
    def meta(*, shape: tuple, dtype: Any, **bounds: Any) -> TensorMeta:
        check_shape_arg(name, shape)
        d = dt.get_dtype(dtype)
        if floating and not d.is_floating:
            raise DTypeError(f"{name}: dtype must be floating, got {d}")
        if not floating and d.is_bool:
            raise DTypeError(f"{name}: dtype must be an integer or float dtype, got {d}")
        return TensorMeta(tuple(shape), d)

    return meta


register(OpDef("rand", _random_meta("rand"),
               lambda *, shape, dtype: generator().random(shape).astype(
                   dt.get_dtype(dtype).np_dtype),
               None, "random", "rand(shape=, dtype=): uniform samples in [0, 1).",
               differentiable=False, attrs=("shape", "dtype")))
register(OpDef("randn", _random_meta("randn"),
               lambda *, shape, dtype: generator().standard_normal(shape).astype(
                   dt.get_dtype(dtype).np_dtype),
               None, "random", "randn(shape=, dtype=): standard normal samples.",
               differentiable=False, attrs=("shape", "dtype")))
register(OpDef("randint", _random_meta("randint", floating=False),
               lambda *, shape, dtype, low, high: generator().integers(
                   low, high, size=shape).astype(dt.get_dtype(dtype).np_dtype),
               None, "random", "randint(shape=, dtype=, low=, high=): integers in [low, high).",
               differentiable=False, attrs=("shape", "dtype", "low", "high")))



def _randperm_meta(*, n: Any, dtype: Any) -> TensorMeta:
    check_shape_arg("randperm", (n,), "n")
    d = dt.get_dtype(dtype)
    if d.is_bool:
        raise DTypeError(f"randperm: dtype must be an integer or float dtype, got {d}")
    return TensorMeta((n,), d)


register(OpDef("randperm", _randperm_meta,
               lambda *, n, dtype: generator().permutation(n).astype(
                   dt.get_dtype(dtype).np_dtype),
               None, "random", "randperm(n=, dtype=): a random permutation of 0 .. n-1.",
               differentiable=False, attrs=("n", "dtype")))


# --------------------------------------------------------------------------------------
# matmul


def _matmul_meta(a: Any, b: Any) -> TensorMeta:
    a = require_tensor("matmul", a, "input")
    b = require_tensor("matmul", b, "other")
    if a.ndim < 2 or b.ndim < 2:
        raise ShapeError(f"matmul primitive: both operands need rank >= 2, got {a} and {b} "
                         "(kiln.matmul handles vectors)")
    if a.dtype != b.dtype:
        raise DTypeError(f"matmul: operands must have the same dtype, got {a.dtype} and "
                         f"{b.dtype}")
    if a.dtype.is_bool:
        raise DTypeError("matmul: bool operands are not supported")
    if a.shape[-1] != b.shape[-2]:
        raise ShapeError(f"matmul: inner dims differ: {fmt_shape(a.shape)} @ "
                         f"{fmt_shape(b.shape)}")
    batch = broadcast_shapes("matmul", a.shape[:-2], b.shape[:-2])
    return TensorMeta(batch + (a.shape[-2], b.shape[-1]), a.dtype)


def _matmul_vjp(c: Any, g: Any) -> tuple:
    from kiln.core import prims as ops

    a, b = c.args
    ga = gb = None
    if c.needs_grad(0):
        ga = sum_to(ops.matmul(g, b.mT), tuple(a.shape))
    if c.needs_grad(1):
        if b.ndim == 2 and a.ndim > 2:
            # b was shared by every batch (x @ W.T in a Linear on (B, T, C) input): the sum
            # over batches of a_i^T g_i is one GEMM over the stacked rows, not a batched
            # GEMM and then a sum over its outputs
            k, m = a.shape[-1], g.shape[-1]
            rows = 1
            for d in a.shape[:-1]:
                rows = rows * d
            gb = ops.matmul(ops.reshape(a, shape=(rows, k)).mT,
                            ops.reshape(g, shape=(rows, m)))
        else:
            gb = sum_to(ops.matmul(a.mT, g), tuple(b.shape))
    return (ga, gb)


register(OpDef("matmul", _matmul_meta, np.matmul, _matmul_vjp, "matmul",
               "matmul(a, b): batched matrix product, batch dims broadcast (rank >= 2)."))
