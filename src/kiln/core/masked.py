"""``kiln.masked``: torch.masked's reductions and normalizations of dense tensors with a
``mask=`` (True where an element takes part; broadcast to the input's shape).

As in torch, a masked-out element is replaced by the identity of the operation (0 for
``sum``, 1 for ``prod``, -inf for ``amax``/``logsumexp``/``softmax``, +inf for ``amin``...),
so a fully masked-out slice gives that identity (``sum`` 0, ``amax`` -inf) or NaN where
there is none (``mean``, ``var``, ``median``, ``softmax``). Composites of ``where`` and the
reductions: every mode and the gradient work as for the plain ops.

>>> import kiln
>>> x = kiln.tensor([[1.0, 2.0], [3.0, 4.0]])
>>> kiln.masked.sum(x, 1, mask=kiln.tensor([[True, False], [True, True]])).tolist()
[1.0, 7.0]
"""

from __future__ import annotations

import math
from typing import Any

from kiln.core import creation, mathops, sortops
from kiln.core import dtypes as dt
from kiln.core import functional as F
from kiln.core import prims as ops
from kiln.core.prims.shapes import norm_dim
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError

__all__ = ["sum", "prod", "cumsum", "cumprod", "amax", "amin", "argmax", "argmin", "mean",
           "median", "logsumexp", "logaddexp", "norm", "var", "std", "softmax", "log_softmax",
           "softmin", "normalize"]




def _t(fn: str, x: Any, arg: str = "input") -> Tensor:
    if not isinstance(x, Tensor):
        raise ArgumentError(f"masked.{fn}: {arg} must be a kiln.Tensor, got "
                            f"{type(x).__name__}")
    return x


def _mask(fn: str, x: Tensor, mask: Any) -> Tensor | None:
    """The mask as a bool tensor of ``x``'s shape (None: every element takes part)."""
    if mask is None:
        return None
    m = _t(fn, mask, "mask")
    if m.ndim > x.ndim:
        raise ShapeError(f"masked.{fn}: mask must broadcast to the input's shape "
                         f"{tuple(x.shape)}, got shape {tuple(m.shape)}")
    if not m.dtype.is_bool:
        m = ops.ne(m, 0)
    return mathops.broadcast_to(m, tuple(x.shape)) if tuple(m.shape) != tuple(x.shape) else m


def _fill(x: Tensor, m: Tensor | None, value: Any) -> Tensor:
    return x if m is None else ops.where(m, x, value)


def _extreme_fill(x: Tensor, larger: bool) -> Any:
    """The identity of max (larger) or min: -inf/+inf, or the integer dtype's limit."""
    if x.dtype.is_floating:
        return -math.inf if larger else math.inf
    if x.dtype.is_bool:
        return not larger
    info = {"int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1)}[x.dtype.name]
    return info[0] if larger else info[1]


def _dims(fn: str, dim: Any, ndim: int) -> tuple[int, ...]:
    if dim is None:
        return tuple(range(ndim))
    ds = (dim,) if isinstance(dim, int) else tuple(dim)
    if not ds:
        return tuple(range(ndim))
    return tuple(sorted({norm_dim(f"masked.{fn}", d, max(ndim, 1)) for d in ds}))


def _reduce(x: Tensor, fn: Any, dims: tuple, keepdim: bool) -> Tensor:
    if x.ndim == 0:
        return fn(x, None, False)
    return fn(x, dims, bool(keepdim))


def _out(y: Tensor, dtype: Any) -> Tensor:
    return y.to(dtype) if dtype is not None else y


def _int_widen(x: Tensor, dtype: Any) -> Any:
    if dtype is None and not x.dtype.is_floating:
        return dt.int64
    return dtype


def sum(input: Tensor, dim: Any = None, *, keepdim: bool = False, dtype: Any = None,  # noqa: A001
        mask: Tensor | None = None) -> Tensor:
    """The sum of the elements ``mask`` keeps over ``dim`` (all dims when None).

    >>> import kiln
    >>> kiln.masked.sum(kiln.tensor([1.0, 2.0, 3.0]), mask=kiln.tensor([True, False, True])).item()
    4.0
    """
    x = _t("sum", input)
    dtype = _int_widen(x, dtype)
    x = _out(_fill(x, _mask("sum", x, mask), 0), dtype)
    return _reduce(x, lambda a, d, k: F.sum(a, d, k), _dims("sum", dim, x.ndim), keepdim)


def prod(input: Tensor, dim: Any = None, *, keepdim: bool = False, dtype: Any = None,
         mask: Tensor | None = None) -> Tensor:
    """The product of the elements ``mask`` keeps over ``dim``.

    >>> import kiln
    >>> kiln.masked.prod(kiln.tensor([2.0, 5.0, 3.0]), mask=kiln.tensor([True, False, True])).item()
    6.0
    """
    x = _t("prod", input)
    dtype = _int_widen(x, dtype)
    x = _out(_fill(x, _mask("prod", x, mask), 1), dtype)
    out = x
    dims = _dims("prod", dim, x.ndim)
    if x.ndim == 0:
        return mathops.clone(x)
    return ops.prod(out, dims=dims, keepdim=bool(keepdim))


def cumsum(input: Tensor, dim: int, *, dtype: Any = None, mask: Tensor | None = None) -> Tensor:
    """Running sums along ``dim``, masked-out elements counting as 0.

    >>> import kiln
    >>> m = kiln.tensor([True, False, True])
    >>> kiln.masked.cumsum(kiln.tensor([1.0, 2.0, 3.0]), 0, mask=m).tolist()
    [1.0, 1.0, 4.0]
    """
    x = _t("cumsum", input)
    y = mathops.cumsum(_fill(x, _mask("cumsum", x, mask), 0), dim)
    return y.to(dtype if dtype is not None else x.dtype)


def cumprod(input: Tensor, dim: int, *, dtype: Any = None, mask: Tensor | None = None
            ) -> Tensor:
    """Running products along ``dim``, masked-out elements counting as 1.

    >>> import kiln
    >>> m = kiln.tensor([True, False, True])
    >>> kiln.masked.cumprod(kiln.tensor([2.0, 5.0, 3.0]), 0, mask=m).tolist()
    [2.0, 2.0, 6.0]
    """
    x = _t("cumprod", input)
    y = mathops.cumprod(_fill(x, _mask("cumprod", x, mask), 1), dim)
    return y.to(dtype if dtype is not None else x.dtype)


def _ext(fn: str, input: Tensor, dim: Any, keepdim: bool, dtype: Any, mask: Any,
         larger: bool) -> Tensor:
    x = _t(fn, input)
    x = _fill(x, _mask(fn, x, mask), _extreme_fill(x, larger))
    reduce = F.amax if larger else F.amin
    return _out(_reduce(x, lambda a, d, k: reduce(a, d, k), _dims(fn, dim, x.ndim), keepdim),
                dtype)


def amax(input: Tensor, dim: Any = None, *, keepdim: bool = False, dtype: Any = None,
         mask: Tensor | None = None) -> Tensor:
    """The maximum of the kept elements (-inf for none).

    >>> import kiln
    >>> kiln.masked.amax(kiln.tensor([1.0, 5.0]), mask=kiln.tensor([True, False])).item()
    1.0
    """
    return _ext("amax", input, dim, keepdim, dtype, mask, True)


def amin(input: Tensor, dim: Any = None, *, keepdim: bool = False, dtype: Any = None,
         mask: Tensor | None = None) -> Tensor:
    """The minimum of the kept elements (+inf for none).

    >>> import kiln
    >>> kiln.masked.amin(kiln.tensor([1.0, 5.0]), mask=kiln.tensor([False, True])).item()
    5.0
    """
    return _ext("amin", input, dim, keepdim, dtype, mask, False)


def _arg(fn: str, input: Tensor, dim: Any, keepdim: bool, dtype: Any, mask: Any,
         larger: bool) -> Tensor:
    x = _t(fn, input)
    x = _fill(x, _mask(fn, x, mask), _extreme_fill(x, larger))
    out = (ops.argmax if larger else ops.argmin)(x, dim=dim, keepdim=bool(keepdim))
    # torch.masked gives the index in the input's dtype unless dtype says otherwise
    return out.to(dtype if dtype is not None else input.dtype)


def argmax(input: Tensor, dim: int | None = None, *, keepdim: bool = False, dtype: Any = None,
           mask: Tensor | None = None) -> Tensor:
    """The index of the largest kept element (in the input's dtype, as torch.masked).

    >>> import kiln
    >>> m = kiln.tensor([True, False, True])
    >>> kiln.masked.argmax(kiln.tensor([1.0, 5.0, 2.0]), mask=m).item()
    2.0
    """
    return _arg("argmax", input, dim, keepdim, dtype, mask, True)


def argmin(input: Tensor, dim: int | None = None, *, keepdim: bool = False, dtype: Any = None,
           mask: Tensor | None = None) -> Tensor:
    """The index of the smallest kept element (in the input's dtype).

    >>> import kiln
    >>> m = kiln.tensor([False, True, True])
    >>> kiln.masked.argmin(kiln.tensor([1.0, 5.0, 2.0]), mask=m).item()
    2.0
    """
    return _arg("argmin", input, dim, keepdim, dtype, mask, False)


def _count(x: Tensor, m: Tensor | None, dims: tuple, keepdim: bool) -> Tensor:
    ones = ops.where(m, 1, 0) if m is not None else creation.ones(tuple(x.shape),
                                                                   dtype=dt.int64)
    return _reduce(ones.to(dt.int64), lambda a, d, k: F.sum(a, d, k), dims, keepdim)


def mean(input: Tensor, dim: Any = None, *, keepdim: bool = False, dtype: Any = None,
         mask: Tensor | None = None) -> Tensor:
    """The mean of the kept elements (NaN for none).

    >>> import kiln
    >>> kiln.masked.mean(kiln.tensor([1.0, 5.0, 3.0]), mask=kiln.tensor([True, False, True])).item()
    2.0
    """
    x = _t("mean", input)
    m = _mask("mean", x, mask)
    dims = _dims("mean", dim, x.ndim)
    total = _reduce(_fill(x, m, 0), lambda a, d, k: F.sum(a, d, k), dims, keepdim)
    count = _count(x, m, dims, keepdim)
    out = ops.div(total, count.to(total.dtype if total.dtype.is_floating else dt.float32))
    return _out(out, dtype if dtype is not None else (x.dtype if x.dtype.is_floating else None))


def median(input: Tensor, dim: int = -1, *, keepdim: bool = False, dtype: Any = None,
           mask: Tensor | None = None) -> Tensor:
    """The lower median of the kept elements along ``dim`` (NaN for none).

    >>> import kiln
    >>> m = kiln.tensor([True, False, True, True])
    >>> kiln.masked.median(kiln.tensor([1.0, 9.0, 3.0, 2.0]), mask=m).item()
    2.0
    """
    x = _t("median", input)
    xf = x if x.dtype.is_floating else x.to(dt.float32)
    xf = _fill(xf, _mask("median", x, mask), math.nan)
    if xf.ndim == 0:
        return _out(mathops.clone(xf), dtype)
    out = sortops.nanmedian(xf, dim, keepdim).values
    return _out(out, dtype if dtype is not None else (x.dtype if x.dtype.is_floating else None))


def logsumexp(input: Tensor, dim: Any = None, *, keepdim: bool = False, dtype: Any = None,
              mask: Tensor | None = None) -> Tensor:
    """``log(sum(exp(x)))`` of the kept elements (-inf for none).

    >>> import kiln
    >>> m = kiln.tensor([True, False, True])
    >>> round(kiln.masked.logsumexp(kiln.tensor([0.0, 7.0, 0.0]), mask=m).item(), 4)
    0.6931
    """
    x = _t("logsumexp", input)
    x = _fill(x, _mask("logsumexp", x, mask), _extreme_fill(x, True))
    dims = _dims("logsumexp", dim, x.ndim)
    if x.ndim == 0:
        return _out(mathops.clone(x), dtype)
    return _out(F.logsumexp(x, dims, bool(keepdim)), dtype)


def logaddexp(input: Tensor, other: Tensor, *, dtype: Any = None,
              input_mask: Tensor | None = None, other_mask: Tensor | None = None) -> Tensor:
    """``log(exp(input) + exp(other))`` with each side's masked-out elements as -inf.

    >>> import kiln
    >>> m = kiln.tensor([False])
    >>> kiln.masked.logaddexp(kiln.tensor([0.0]), kiln.tensor([5.0]), other_mask=m).item()
    0.0
    """
    from kiln.core.elementwise import logaddexp as _logaddexp

    a, b = _t("logaddexp", input), _t("logaddexp", other, "other")
    a = _fill(a, _mask("logaddexp", a, input_mask), _extreme_fill(a, True))
    b = _fill(b, _mask("logaddexp", b, other_mask), _extreme_fill(b, True))
    return _out(_logaddexp(a, b), dtype)


def norm(input: Tensor, ord: Any = 2.0, dim: Any = None, *, keepdim: bool = False,  # noqa: A002
         dtype: Any = None, mask: Tensor | None = None) -> Tensor:
    """The vector ``ord``-norm of the kept elements over ``dim``.

    >>> import kiln
    >>> kiln.masked.norm(kiln.tensor([3.0, 9.0, 4.0]), mask=kiln.tensor([True, False, True])).item()
    5.0
    """
    from kiln.core.linalg import vector_norm

    x = _t("norm", input)
    if dtype is not None:
        x = x.to(dtype)
    if ord is None:
        ord = 2.0  # noqa: A001
    fill = math.inf if ord == -math.inf else 0
    x = _fill(x, _mask("norm", x, mask), fill)
    dims = _dims("norm", dim, x.ndim)
    return vector_norm(x, ord, dims if x.ndim else None, bool(keepdim))


def _std_var(fn: str, input: Tensor, dim: Any, unbiased: Any, correction: Any, keepdim: bool,
             dtype: Any, mask: Any, take_sqrt: bool) -> Tensor:
    x = _t(fn, input)
    if unbiased is not None and correction is not None:
        raise ArgumentError(f"masked.{fn}: give unbiased or correction, not both")
    corr = 1.0 if unbiased is None else (1.0 if unbiased else 0.0)
    if correction is not None:
        corr = float(correction)
    out_dtype = dtype if dtype is not None else (x.dtype if x.dtype.is_floating
                                                  else dt.float32)
    xf = x.to(out_dtype) if not x.dtype.is_floating or dtype is not None else x
    m = _mask(fn, x, mask)
    dims = _dims(fn, dim, x.ndim)
    count = _count(x, m, dims, True).to(xf.dtype)
    total = _reduce(_fill(xf, m, 0), lambda a, d, k: F.sum(a, d, k), dims, True)
    dev = ops.sub(xf, ops.div(total, count))
    sq = _reduce(_fill(ops.mul(dev, dev), m, 0), lambda a, d, k: F.sum(a, d, k), dims,
                 keepdim)
    if not keepdim:
        count = F.reshape(count, tuple(sq.shape))
    if corr != 0:
        count = ops.maximum(ops.sub(count, corr), 0.0)
    out = ops.div(sq, count)
    return ops.sqrt(out) if take_sqrt else out


def var(input: Tensor, dim: Any = None, unbiased: bool | None = None, *,
        correction: Any = None, keepdim: bool = False, dtype: Any = None,
        mask: Tensor | None = None) -> Tensor:
    """The variance of the kept elements (``correction`` 1 by default; NaN for none).

    >>> import kiln
    >>> kiln.masked.var(kiln.tensor([1.0, 9.0, 3.0]), mask=kiln.tensor([True, False, True])).item()
    2.0
    """
    return _std_var("var", input, dim, unbiased, correction, keepdim, dtype, mask, False)


def std(input: Tensor, dim: Any = None, unbiased: bool | None = None, *,
        correction: Any = None, keepdim: bool = False, dtype: Any = None,
        mask: Tensor | None = None) -> Tensor:
    """The standard deviation of the kept elements (see :func:`var`).

    >>> import kiln
    >>> m = kiln.tensor([True, False, True])
    >>> kiln.masked.std(kiln.tensor([1.0, 9.0, 3.0]), mask=m, correction=0).item()
    1.0
    """
    return _std_var("std", input, dim, unbiased, correction, keepdim, dtype, mask, True)


def _softmax(x: Tensor, d: int) -> tuple[Tensor, Tensor]:
    """(shifted, log of the sum of exp(shifted)) along ``d``; an all -inf slice gets shift 0,
    so its softmax is NaN as torch's."""
    if x.shape[d] == 0:  # an empty slice: an empty result, as torch
        return x, x
    top = ops.max(x, dims=(d,), keepdim=True).detach()
    shifted = ops.sub(x, ops.where(ops.eq(top, -math.inf), 0.0, top))
    return shifted, ops.log(ops.sum(ops.exp(shifted), dims=(d,), keepdim=True))


def _norm_input(fn: str, input: Tensor, dim: int, dtype: Any, mask: Any, larger: bool
                ) -> tuple[Tensor, int]:
    x = _t(fn, input)
    if dtype is not None:
        x = x.to(dtype)
    elif not x.dtype.is_floating:
        x = x.to(dt.float32)
    x = _fill(x, _mask(fn, x, mask), -math.inf if larger else math.inf)
    if x.ndim == 0:
        x = F.reshape(x, (1,))
        return x, norm_dim(f"masked.{fn}", dim, 1)
    return x, norm_dim(f"masked.{fn}", dim, x.ndim)


def softmax(input: Tensor, dim: int, *, dtype: Any = None, mask: Tensor | None = None
            ) -> Tensor:
    """softmax along ``dim`` over the kept elements (masked-out ones get 0).

    >>> import kiln
    >>> m = kiln.tensor([True, False, True])
    >>> kiln.masked.softmax(kiln.tensor([1.0, 9.0, 1.0]), 0, mask=m).tolist()
    [0.5, 0.0, 0.5]
    """
    x, d = _norm_input("softmax", input, dim, dtype, mask, True)
    shifted, lse = _softmax(x, d)
    out = ops.exp(ops.sub(shifted, lse))
    return F.reshape(out, tuple(input.shape))


def log_softmax(input: Tensor, dim: int, *, dtype: Any = None, mask: Tensor | None = None
                ) -> Tensor:
    """log_softmax along ``dim`` over the kept elements (masked-out ones get -inf).

    >>> import kiln
    >>> m = kiln.tensor([True, False, True])
    >>> kiln.masked.log_softmax(kiln.tensor([0.0, 9.0, 0.0]), 0, mask=m)[1].item()
    -inf
    """
    x, d = _norm_input("log_softmax", input, dim, dtype, mask, True)
    shifted, lse = _softmax(x, d)
    return F.reshape(ops.sub(shifted, lse), tuple(input.shape))


def softmin(input: Tensor, dim: int, *, dtype: Any = None, mask: Tensor | None = None
            ) -> Tensor:
    """softmin (softmax of ``-input``) along ``dim`` over the kept elements.

    >>> import kiln
    >>> m = kiln.tensor([True, False, True])
    >>> kiln.masked.softmin(kiln.tensor([1.0, -9.0, 1.0]), 0, mask=m).tolist()
    [0.5, 0.0, 0.5]
    """
    x, d = _norm_input("softmin", input, dim, dtype, mask, False)
    shifted, lse = _softmax(ops.neg(x), d)
    return F.reshape(ops.exp(ops.sub(shifted, lse)), tuple(input.shape))


def normalize(input: Tensor, ord: Any, dim: int, *, eps: float = 1e-12, dtype: Any = None,
              mask: Tensor | None = None) -> Tensor:
    """``input / max(norm(input, ord, dim), eps)`` over the kept elements (masked-out ones
    become 0).

    >>> import kiln
    >>> m = kiln.tensor([True, False, True])
    >>> kiln.masked.normalize(kiln.tensor([3.0, 9.0, 4.0]), 2.0, 0, mask=m).tolist()
    [0.6000000238418579, 0.0, 0.800000011920929]
    """
    x = _t("normalize", input)
    if dtype is not None:
        x = x.to(dtype)
    nrm = norm(x, ord, dim, keepdim=True, mask=mask)
    kept = _fill(x, _mask("normalize", x, mask), 0)
    return ops.div(kept, ops.maximum(nrm, float(eps)))



