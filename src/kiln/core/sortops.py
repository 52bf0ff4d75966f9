"""torch's sorting and selection ops as composites: ``sort``/``argsort``/``msort``, ``topk``,
``kthvalue``, ``median``/``nanmedian``, ``mode``, ``quantile``/``nanquantile``, ``cummax``/
``cummin``, ``logcumsumexp``, ``cumulative_trapezoid``.

Short rows sort by *rank*: an element's place is the number of elements that come before it
(pairwise comparisons, NaN last as in torch, ties in input order so the sort is stable), and
the permutation is the one-hot of the ranks: O(n^2) along the sorted dim, but a handful of
nodes. Rows longer than ``bitonic.RANK_LIMIT`` go through a bitonic sorting network
(:mod:`kiln.core.bitonic`, O(n log^2 n)). Either way the values are a gather of the
permutation, so autograd (through the gather), tracing, AOT and the C backend need nothing
new.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from kiln.core import bitonic, creation, mathops
from kiln.core import dtypes as dt
from kiln.core import functional as F
from kiln.core import prims as ops
from kiln.core.prims.shapes import norm_dim
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError, ValueArgumentError


class ValuesIndices(NamedTuple):
    """``(values, indices)``, as torch's ``return_types.sort``/``topk``/``median``..."""

    values: Any
    indices: Any


class Histogram(NamedTuple):
    """``(hist, bin_edges)`` of :func:`kiln.histogram`."""

    hist: Any
    bin_edges: Any


class HistogramDD(NamedTuple):
    """``(hist, bin_edges)`` of :func:`kiln.histogramdd` (one edge tensor per dim)."""

    hist: Any
    bin_edges: Any


def _t(fn: str, x: Any, arg: str = "input") -> Tensor:
    if not isinstance(x, Tensor):
        raise ArgumentError(f"{fn}: {arg} must be a kiln.Tensor, got {type(x).__name__}")
    return x


def _isnan(x: Tensor) -> Tensor:
    return ops.ne(x, x)


def _comparable(x: Tensor) -> Tensor:
    return x.to(dt.int64) if x.dtype.is_bool else x


def _last(x: Tensor, d: int) -> Tensor:
    """``x`` with dim ``d`` moved to the end."""
    from kiln.core.shapeops import movedim

    return x if d == x.ndim - 1 else movedim(x, d, -1)


def _back(x: Tensor, d: int) -> Tensor:
    from kiln.core.shapeops import movedim

    return x if d == x.ndim - 1 else movedim(x, -1, d)


def _ranks(x: Tensor, descending: bool) -> Tensor:
    """For ``x`` of shape (..., n): each element's position in the stable sort of its row
    (NaN after every number ascending, before every number descending, as torch)."""
    x = _comparable(x)
    n = x.shape[-1]
    a = F.unsqueeze(x, -1)  # element i, (..., n, 1)
    b = F.unsqueeze(x, -2)  # element j, (..., 1, n)
    first = ops.gt(b, a) if descending else ops.lt(b, a)
    same = ops.eq(b, a)
    if x.dtype.is_floating:
        na, nb = _isnan(a), _isnan(b)
        nan_first = ops.logical_and(nb, ops.logical_not(na)) if descending else \
            ops.logical_and(na, ops.logical_not(nb))
        first = ops.logical_or(first, nan_first)
        same = ops.logical_or(same, ops.logical_and(na, nb))
    idx = creation.arange(n)
    earlier = ops.lt(F.unsqueeze(idx, 0), F.unsqueeze(idx, 1))  # [i, j] = j < i
    before = ops.logical_or(first, ops.logical_and(same, earlier))
    return F.sum(before.to(dt.int64), -1)


def _order(x: Tensor, descending: bool) -> Tensor:
    """The stable sorting permutation of each row of ``x`` (..., n): out[r] = the i of rank r."""
    n = x.shape[-1]
    if n > bitonic.RANK_LIMIT:  # long rows: the O(n log^2 n) network
        return bitonic.order(x, descending)
    rank = _ranks(x, descending)
    pos = creation.arange(n)
    onehot = ops.eq(F.unsqueeze(rank, -2), F.unsqueeze(pos, -1))  # [r, i] = rank_i == r
    return F.sum(ops.mul(onehot.to(dt.int64), pos), -1)


def argsort(input: Tensor, dim: int = -1, descending: bool = False, *,
            stable: bool = False) -> Tensor:
    """The indices that sort ``input`` along ``dim`` (always stable: equal elements keep their
    order; NaN sorts last, or first when ``descending``).

    >>> import kiln
    >>> kiln.argsort(kiln.tensor([3.0, 1.0, 2.0])).tolist()
    [1, 2, 0]
    """
    x = _t("argsort", input)
    if x.ndim == 0:
        return creation.zeros((), dtype=dt.int64)
    d = norm_dim("argsort", dim, x.ndim)
    if x.shape[d] == 0:
        return creation.zeros(tuple(x.shape), dtype=dt.int64)
    return _back(_order(_last(x, d), descending), d)


def sort(input: Tensor, dim: int = -1, descending: bool = False, *,
         stable: bool = False) -> ValuesIndices:
    """``(values, indices)`` of ``input`` sorted along ``dim`` (see :func:`argsort`); the
    gradient flows back to where each value came from.

    >>> import kiln
    >>> kiln.sort(kiln.tensor([3.0, 1.0, 2.0]), descending=True).values.tolist()
    [3.0, 2.0, 1.0]
    """
    x = _t("sort", input)
    idx = argsort(x, dim, descending, stable=stable)
    if x.ndim == 0:
        return ValuesIndices(mathops.clone(x), idx)
    return ValuesIndices(ops.gather(x, idx, dim=norm_dim("sort", dim, x.ndim)), idx)


def msort(input: Tensor) -> Tensor:
    """``input`` sorted along dim 0.

    >>> import kiln
    >>> kiln.msort(kiln.tensor([[2, 1], [0, 3]])).tolist()
    [[0, 1], [2, 3]]
    """
    return sort(_t("msort", input), 0).values


def _k(fn: str, k: Any, size: int, low: int) -> int:
    if isinstance(k, Tensor):
        k = k.item()
    if isinstance(k, bool) or not isinstance(k, int) or not low <= k <= size:
        raise ValueArgumentError(f"{fn}: k must be an int in [{low}, {size}], got {k!r}")
    return k


def topk(input: Tensor, k: int, dim: int = -1, largest: bool = True,
         sorted: bool = True) -> ValuesIndices:  # noqa: A002
    """The ``k`` largest (or smallest) elements along ``dim`` and their indices, largest
    first (always sorted).

    >>> import kiln
    >>> kiln.topk(kiln.tensor([1.0, 5.0, 3.0]), 2).values.tolist()
    [5.0, 3.0]
    """
    x = _t("topk", input)
    d = norm_dim("topk", dim, x.ndim) if x.ndim else 0
    size = int(x.shape[d]) if x.ndim else 1
    k = _k("topk", k, size, 0)
    vals, idx = sort(x, d, descending=largest)
    if x.ndim == 0:
        return ValuesIndices(vals, idx)
    return ValuesIndices(F.narrow(vals, d, 0, k), F.narrow(idx, d, 0, k))


def _pick(x: Tensor, d: int, rank: Tensor, keepdim: bool, order: Tensor | None = None
          ) -> ValuesIndices:
    """The element of rank ``rank`` (an int64 tensor of x's shape with dim ``d`` of size 1)
    of each row of ``x`` along ``d``: (values, indices)."""
    idx = order if order is not None else argsort(x, d)
    where = ops.gather(idx, rank, dim=d)
    vals = ops.gather(x, where, dim=d)
    if not keepdim:
        vals, where = F.squeeze(vals, d), F.squeeze(where, d)
    return ValuesIndices(vals, where)


def kthvalue(input: Tensor, k: int, dim: int = -1, keepdim: bool = False) -> ValuesIndices:
    """The ``k``-th smallest element along ``dim`` (k from 1) and its index.

    >>> import kiln
    >>> kiln.kthvalue(kiln.tensor([3.0, 1.0, 2.0]), 2).values.item()
    2.0
    """
    x = _t("kthvalue", input)
    if x.ndim == 0:
        _k("kthvalue", k, 1, 1)
        return ValuesIndices(mathops.clone(x), creation.zeros((), dtype=dt.int64))
    d = norm_dim("kthvalue", dim, x.ndim)
    k = _k("kthvalue", k, int(x.shape[d]), 1)
    shape = tuple(1 if i == d else s for i, s in enumerate(x.shape))
    return _pick(x, d, creation.full(shape, k - 1, dtype=dt.int64), keepdim)


def _scalar_result(fn: str, x: Tensor, dim: Any) -> ValuesIndices:
    """A 0-d input's (value, index 0), after checking ``dim`` as a 1-d input's."""
    norm_dim(fn, dim, 1)
    return ValuesIndices(mathops.clone(x), creation.zeros((), dtype=dt.int64))


def _median(fn: str, input: Tensor, dim: Any, keepdim: bool, skip_nan: bool) -> Any:
    x = _t(fn, input)
    if dim is None:
        if x.numel() == 0:
            return creation.full((), math.nan, dtype=x.dtype)
        return _median(fn, F.reshape(x, (-1,)), 0, False, skip_nan).values
    if x.ndim == 0:
        return _scalar_result(fn, x, dim)
    d = norm_dim(fn, dim, x.ndim)
    n = int(x.shape[d])
    if n == 0:
        raise ShapeError(f"{fn}: dim {d} is empty; a median needs at least one element")
    if x.dtype.is_floating:
        nans = F.sum(_isnan(x).to(dt.int64), d, keepdim=True)
        valid = ops.add(ops.neg(nans), n)
        if skip_nan:  # the lower median of the numbers (all NaN: the first NaN)
            rank = ops.maximum(ops.floor_divide(ops.sub(valid, 1), 2), 0)
        else:  # any NaN: the (first) NaN, which sorts right after the numbers
            rank = ops.where(ops.gt(nans, 0), valid, (n - 1) // 2)
    else:
        shape = tuple(1 if i == d else s for i, s in enumerate(x.shape))
        rank = creation.full(shape, (n - 1) // 2, dtype=dt.int64)
    return _pick(x, d, rank.to(dt.int64), keepdim)


def median(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Any:
    """The lower median (of everything, or ``(values, indices)`` along ``dim``); NaN when
    a NaN is present, as torch.

    >>> import kiln
    >>> kiln.median(kiln.tensor([3.0, 1.0, 4.0, 2.0])).item()
    2.0
    """
    return _median("median", input, dim, keepdim, False)


def nanmedian(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Any:
    """:func:`median` ignoring NaNs (NaN only where every element is NaN).

    >>> import kiln
    >>> kiln.nanmedian(kiln.tensor([3.0, float("nan"), 1.0])).item()
    1.0
    """
    return _median("nanmedian", input, dim, keepdim, True)


def mode(input: Tensor, dim: int = -1, keepdim: bool = False) -> ValuesIndices:
    """The most frequent value along ``dim`` (the smallest of equally frequent ones) and the
    index of its last occurrence, as torch.

    >>> import kiln
    >>> kiln.mode(kiln.tensor([1, 2, 2, 3, 3])).values.item()
    2
    """
    x = _t("mode", input)
    if x.ndim == 0:
        norm_dim("mode", dim, 1)
        return ValuesIndices(mathops.clone(x), creation.zeros((), dtype=dt.int64))
    d = norm_dim("mode", dim, x.ndim)
    xl = _last(x, d)
    c = _comparable(xl)
    n = int(xl.shape[-1])
    if n == 0:
        raise ShapeError(f"mode: dim {d} is empty")
    same = ops.eq(F.unsqueeze(c, -1), F.unsqueeze(c, -2))
    count = F.sum(same.to(dt.int64), -1)
    best = ops.eq(count, F.amax(count, -1, keepdim=True))
    smallest = F.amin(ops.where(best, c, F.amax(c, -1, keepdim=True)), -1, keepdim=True)
    chosen = ops.logical_and(best, ops.eq(c, smallest))
    pos = creation.arange(n)
    idx = F.amax(ops.where(chosen, pos, -1), -1, keepdim=True)
    vals = ops.gather(xl, idx, dim=xl.ndim - 1)
    vals, idx = _back(vals, d), _back(idx, d)
    if not keepdim:
        vals, idx = F.squeeze(vals, d), F.squeeze(idx, d)
    return ValuesIndices(vals, idx)


_INTERPOLATIONS = ("linear", "lower", "higher", "midpoint", "nearest")


def _quantile(fn: str, input: Tensor, q: Any, dim: Any, keepdim: bool, interpolation: str,
              skip_nan: bool) -> Tensor:
    x = _t(fn, input)
    if not x.dtype.is_floating:
        raise ArgumentError(f"{fn}: input must be a float tensor, got {x.dtype}")
    if interpolation not in _INTERPOLATIONS:
        raise ValueArgumentError(f"{fn}: interpolation must be one of {_INTERPOLATIONS}, got "
                                 f"{interpolation!r}")
    scalar_q = not isinstance(q, Tensor) or q.ndim == 0
    qt = q.to(x.dtype) if isinstance(q, Tensor) else creation.full((), float(q), dtype=x.dtype)
    if qt.ndim > 1:
        raise ShapeError(f"{fn}: q must be a scalar or a 1-D tensor, got shape "
                         f"{tuple(qt.shape)}")
    if qt._node is None:
        vals = qt.detach().tolist()
        for v in (vals if isinstance(vals, list) else [vals]):
            if not 0.0 <= v <= 1.0:
                raise ValueArgumentError(f"{fn}: q must be in [0, 1], got {v}")
    if dim is None:
        xs, out_shape = F.reshape(x, (-1,)), ((1,) * x.ndim if keepdim else ())
    else:
        d = norm_dim(fn, dim, max(x.ndim, 1))
        xs = _last(x if x.ndim else F.reshape(x, (1,)), d)
        out_shape = tuple(1 if i == d else s for i, s in enumerate(x.shape)) if keepdim \
            else tuple(s for i, s in enumerate(x.shape) if i != d)
    n = int(xs.shape[-1])
    if n == 0:
        raise ShapeError(f"{fn}: the reduced dim is empty")
    srt = sort(xs, -1).values  # NaN last
    nans = F.sum(_isnan(xs).to(dt.int64), -1, keepdim=True)  # (..., 1)
    last = ops.add(ops.neg(nans), n - 1).to(x.dtype) if skip_nan else \
        creation.full((), n - 1, dtype=x.dtype)
    qv = F.reshape(qt, (-1,) + (1,) * xs.ndim)  # (Q, 1.., 1)
    pos = ops.mul(qv, last)  # (Q, ..., 1)
    lo = ops.floor(pos)
    hi = ops.ceil(pos)
    if interpolation == "nearest":
        lo = hi = ops.round(pos)
    elif interpolation == "lower":
        hi = lo
    elif interpolation == "higher":
        lo = hi
    full = F.expand(F.unsqueeze(srt, 0), *((int(qv.shape[0]),) + tuple(srt.shape)))

    def at(p: Tensor) -> Tensor:
        i = ops.minimum(ops.maximum(p, 0.0), float(n - 1)).to(dt.int64)
        i = F.expand(i, *(tuple(full.shape[:-1]) + (1,)))
        return ops.gather(full, i, dim=full.ndim - 1)

    vlo, vhi = at(lo), at(hi)
    if interpolation == "midpoint":
        out = ops.mul(ops.add(vlo, vhi), 0.5)
    elif interpolation == "linear":
        # torch's lerp: from the nearer end (so inf - inf gives NaN as in torch)
        w = ops.sub(pos, lo)
        span = ops.sub(vhi, vlo)
        out = ops.where(ops.lt(w, 0.5), ops.add(vlo, ops.mul(span, w)),
                        ops.sub(vhi, ops.mul(span, ops.sub(1.0, w))))
    else:
        out = vlo
    if skip_nan:
        out = ops.where(ops.eq(nans, n), math.nan, out)
    else:
        out = ops.where(ops.gt(nans, 0), math.nan, out)
    out = F.squeeze(out, -1)  # (Q, ...)
    out = F.reshape(out, (int(qv.shape[0]),) + tuple(out_shape))
    return F.squeeze(out, 0) if scalar_q else out


def quantile(input: Tensor, q: Any, dim: int | None = None, keepdim: bool = False, *,
             interpolation: str = "linear") -> Tensor:
    """The ``q``-th quantiles (a float or a 1-D tensor in [0, 1], whose dim comes first) of
    everything or along ``dim``, between sorted neighbours by ``interpolation`` ("linear",
    "lower", "higher", "midpoint", "nearest"); NaN where a NaN is present.

    >>> import kiln
    >>> kiln.quantile(kiln.tensor([1.0, 2.0, 3.0, 4.0]), 0.5).item()
    2.5
    """
    return _quantile("quantile", input, q, dim, keepdim, interpolation, False)


def nanquantile(input: Tensor, q: Any, dim: int | None = None, keepdim: bool = False, *,
                interpolation: str = "linear") -> Tensor:
    """:func:`quantile` ignoring NaNs (NaN only where every element is NaN).

    >>> import kiln
    >>> kiln.nanquantile(kiln.tensor([1.0, float("nan"), 3.0]), 0.5).item()
    2.0
    """
    return _quantile("nanquantile", input, q, dim, keepdim, interpolation, True)


# ------------------------------------------------------------------------------------------
# running extremes and sums


def _cumext(fn: str, input: Tensor, dim: int, larger: bool) -> ValuesIndices:
    x = _t(fn, input)
    if x.ndim == 0:
        return _scalar_result(fn, x, dim)
    d = norm_dim(fn, dim, x.ndim)
    n = int(x.shape[d])
    if n == 0:
        return ValuesIndices(mathops.clone(x), creation.zeros(tuple(x.shape), dtype=dt.int64))
    xl = _comparable(_last(x, d))
    pos = creation.arange(n)
    upto = ops.le(F.unsqueeze(pos, 0), F.unsqueeze(pos, 1))  # [i, j] = j <= i
    a = F.unsqueeze(xl, -2)  # x_j along the last dim
    if xl.dtype.is_floating:
        fill = -math.inf if larger else math.inf
    else:
        fill = F.amin(xl) if larger else F.amax(xl)
    masked = ops.where(upto, a, fill)
    best = F.amax(masked, -1, keepdim=True) if larger else F.amin(masked, -1, keepdim=True)
    hit = ops.eq(a, best)
    if xl.dtype.is_floating:
        hit = ops.logical_or(hit, ops.logical_and(_isnan(a), _isnan(best)))
    idx = F.amax(ops.where(ops.logical_and(hit, upto), pos, -1), -1)
    idx = _back(idx, d)
    return ValuesIndices(ops.gather(x, idx, dim=d), idx)


def cummax(input: Tensor, dim: int) -> ValuesIndices:
    """The running maximum along ``dim`` and the index where it was (the last of equal
    ones; NaN propagates).

    >>> import kiln
    >>> kiln.cummax(kiln.tensor([1.0, 3.0, 2.0, 5.0]), 0).values.tolist()
    [1.0, 3.0, 3.0, 5.0]
    """
    return _cumext("cummax", input, dim, True)


def cummin(input: Tensor, dim: int) -> ValuesIndices:
    """The running minimum along ``dim`` and its index (see :func:`cummax`).

    >>> import kiln
    >>> kiln.cummin(kiln.tensor([3.0, 1.0, 2.0]), 0).indices.tolist()
    [0, 1, 1]
    """
    return _cumext("cummin", input, dim, False)


def logcumsumexp(input: Tensor, dim: int) -> Tensor:
    """``log(cumsum(exp(input)))`` along ``dim``, without overflow.

    >>> import kiln
    >>> round(kiln.logcumsumexp(kiln.tensor([0.0, 0.0]), 0)[1].item(), 4)
    0.6931
    """
    from kiln.core.elementwise import logaddexp

    x = _t("logcumsumexp", input)
    if not x.dtype.is_floating:
        x = x.to(dt.DEFAULT_FLOAT)
    return mathops._scan("logcumsumexp", x, dim, x.dtype, logaddexp, -math.inf)


def cumulative_trapezoid(y: Tensor, x: Tensor | None = None, *, dx: float | None = None,
                         dim: int = -1) -> Tensor:
    """The running trapezoid rule along ``dim`` (one element shorter than ``y``), with sample
    points ``x`` or spacing ``dx`` (default 1).

    >>> import kiln
    >>> kiln.cumulative_trapezoid(kiln.tensor([1.0, 2.0, 3.0])).tolist()
    [1.5, 4.0]
    """
    y = _t("cumulative_trapezoid", y, "y")
    d = norm_dim("cumulative_trapezoid", dim, y.ndim)
    m = int(y.shape[d])
    if m == 0:
        return y
    pair = ops.mul(ops.add(F.narrow(y, d, 1, m - 1), F.narrow(y, d, 0, m - 1)), 0.5)
    if x is not None:
        from kiln.core.shapeops import trapezoid_steps

        pair = ops.mul(pair, trapezoid_steps("cumulative_trapezoid", x, dim, y.ndim, d))
    elif dx is not None:
        pair = ops.mul(pair, float(dx))
    return mathops.cumsum(pair, d)


FUNCTIONS = ("sort", "argsort", "msort", "topk", "kthvalue", "median", "nanmedian", "mode",
             "quantile", "nanquantile", "cummax", "cummin", "logcumsumexp",
             "cumulative_trapezoid")
METHODS = ("sort", "argsort", "msort", "topk", "kthvalue", "median", "nanmedian", "mode",
           "quantile", "nanquantile", "cummax", "cummin", "logcumsumexp")


def install(cls: type) -> None:
    """Attach the Tensor methods of this module to ``cls``."""
    glob = globals()
    for name in METHODS:
        setattr(cls, name, glob[name])
