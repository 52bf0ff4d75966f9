"""Reduction primitives: sum, prod, max, min over dims (with keepdim); argmax, argmin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from kiln.core import dtypes as dt
from kiln.core.prims.registry import OpDef, TensorMeta, register
from kiln.core.prims.shapes import norm_dim, norm_dims, reduced_shape, require_tensor
from kiln.core.prims.vjp_utils import unsqueeze_reduced
from kiln.errors import ShapeError


def _reduce_meta(name: str, kind: str) -> Callable[..., TensorMeta]:
    def meta(x: Any, *, dims: Any = None, keepdim: bool = False) -> TensorMeta:
        x = require_tensor(name, x, "input")
        ds = norm_dims(name, dims, x.ndim)
        if kind == "minmax":
            for d in ds:
                if x.shape[d] == 0:
                    raise ShapeError(f"{name}: cannot reduce the empty dim {d} of shape "
                                     f"{x.shape} (no identity)")
        dtype = x.dtype
        if kind == "sum" and (dtype.is_bool or dtype.is_integer):
            dtype = dt.int64  # like torch.sum/prod: integer and bool results are int64
        return TensorMeta(reduced_shape(x.shape, ds, keepdim), dtype)

    return meta


def _axes(x: np.ndarray, dims: Any) -> tuple:
    return tuple(range(x.ndim)) if dims is None else tuple(dims)


def _sum_eager(x: np.ndarray, *, dims: Any = None, keepdim: bool = False) -> np.ndarray:
    out_dtype = np.int64 if x.dtype.kind in "biu" else x.dtype
    return np.sum(x, axis=_axes(x, dims), keepdims=keepdim, dtype=out_dtype)


def _prod_eager(x: np.ndarray, *, dims: Any = None, keepdim: bool = False) -> np.ndarray:
    out_dtype = np.int64 if x.dtype.kind in "biu" else x.dtype
    return np.prod(x, axis=_axes(x, dims), keepdims=keepdim, dtype=out_dtype)


def _max_eager(x: np.ndarray, *, dims: Any = None, keepdim: bool = False) -> np.ndarray:
    return np.max(x, axis=_axes(x, dims), keepdims=keepdim)


def _min_eager(x: np.ndarray, *, dims: Any = None, keepdim: bool = False) -> np.ndarray:
    return np.min(x, axis=_axes(x, dims), keepdims=keepdim)


def _dims_of(c: Any) -> tuple:
    (x,) = c._args
    return norm_dims("vjp", c.attrs.get("dims"), len(x.shape))


def _sum_vjp(c: Any, g: Any) -> tuple:
    (x,) = c._args
    g = unsqueeze_reduced(g, tuple(x.shape), _dims_of(c), c.attrs.get("keepdim", False))
    return (g.expand(*x.shape),)


def _prod_vjp(c: Any, g: Any) -> tuple:
    from kiln.core import prims as ops

    (x,) = c.args
    dims, keep = _dims_of(c), c.attrs.get("keepdim", False)
    g = unsqueeze_reduced(g, tuple(x.shape), dims, keep)
    # d prod / d x_i is the product of the other elements. Per reduced group, by its count
    # of zeros: none -> prod / x_i; one -> at the zero the product of the others, 0
    # elsewhere; more -> 0 everywhere. All in Kiln ops, so the rule differentiates again.
    zero = ops.eq(x, 0.0)
    zeros = ops.sum(zero.to(x.dtype), dims=dims, keepdim=True)
    safe = ops.where(zero, 1.0, x)
    others = ops.prod(safe, dims=dims, keepdim=True)  # the product of the nonzero elements
    one_zero = ops.logical_and(ops.eq(zeros, 1.0), zero)
    grad = ops.where(ops.eq(zeros, 0.0), others / safe, ops.where(one_zero, others, 0.0))
    return (g * grad,)


def _minmax_vjp(c: Any, g: Any) -> tuple:
    (x,) = c.args
    dims, keep = _dims_of(c), c.attrs.get("keepdim", False)
    g = unsqueeze_reduced(g, tuple(x.shape), dims, keep)
    out = unsqueeze_reduced(c.out, tuple(x.shape), dims, keep)
    # Ties share the gradient evenly, as torch.amax does.
    mask = (x == out).to(g.dtype)
    count = mask.sum(dim=dims, keepdim=True)
    return (g * mask / count,)


register(OpDef("sum", _reduce_meta("sum", "sum"), _sum_eager, _sum_vjp, "reduction",
               "sum(x, dims=None, keepdim=False): sum over dims (all when None).",
               c_expr="add", attrs=("dims", "keepdim")))
register(OpDef("prod", _reduce_meta("prod", "sum"), _prod_eager, _prod_vjp, "reduction",
               "prod(x, dims=None, keepdim=False): product over dims.",
               c_expr="mul", attrs=("dims", "keepdim")))
register(OpDef("max", _reduce_meta("max", "minmax"), _max_eager, _minmax_vjp, "reduction",
               "max(x, dims=None, keepdim=False): maximum over dims (NaN propagates).",
               c_expr="max", attrs=("dims", "keepdim")))
register(OpDef("min", _reduce_meta("min", "minmax"), _min_eager, _minmax_vjp, "reduction",
               "min(x, dims=None, keepdim=False): minimum over dims (NaN propagates).",
               c_expr="min", attrs=("dims", "keepdim")))


def _arg_meta(name: str) -> Callable[..., TensorMeta]:
    def meta(x: Any, *, dim: Any = None, keepdim: bool = False) -> TensorMeta:
        x = require_tensor(name, x, "input")
        if dim is None:
            if x.ndim and any(d == 0 for d in x.shape):
                raise ShapeError(f"{name}: empty input of shape {x.shape}")
            shape = tuple(1 for _ in x.shape) if keepdim else ()
            return TensorMeta(shape, dt.int64)
        d = norm_dim(name, dim, x.ndim)
        if x.ndim and x.shape[d] == 0:
            raise ShapeError(f"{name}: cannot reduce the empty dim {d} of shape {x.shape}")
        return TensorMeta(reduced_shape(x.shape, (d,) if x.ndim else (), keepdim), dt.int64)

    return meta


def _arg_eager(fn: Callable) -> Callable:
    def eager(x: np.ndarray, *, dim: Any = None, keepdim: bool = False) -> np.ndarray:
        if dim is None:
            idx = np.asarray(fn(x.reshape(-1)))
            return idx.reshape((1,) * x.ndim) if keepdim else idx
        if x.ndim == 0:
            return np.zeros((), np.int64)
        return fn(x, axis=dim, keepdims=keepdim)

    return eager


register(OpDef("argmax", _arg_meta("argmax"), _arg_eager(np.argmax), None, "reduction",
               "argmax(x, dim=None, keepdim=False): index of the first maximum.",
               c_expr="argmax", differentiable=False, attrs=("dim", "keepdim")))
register(OpDef("argmin", _arg_meta("argmin"), _arg_eager(np.argmin), None, "reduction",
               "argmin(x, dim=None, keepdim=False): index of the first minimum.",
               c_expr="argmin", differentiable=False, attrs=("dim", "keepdim")))
