"""torch's diagonal and embedding composites: ``diag``, ``diagonal``, ``diag_embed``,
``diagflat``, the out-of-place ``diagonal_scatter``/``select_scatter``/``slice_scatter``,
``block_diag``, ``combinations``, ``cov``/``corrcoef``, ``cross``, ``constant_pad_nd``,
``sum_to_size`` and the float helpers ``fmod``/``ldexp``/``frexp``.

Plain Python over primitives (gathers of constant indices, ``where`` with constant masks,
pads), so autograd, tracing and every backend need nothing new.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, NamedTuple

from kiln.core import creation
from kiln.core import dtypes as dt
from kiln.core import functional as F
from kiln.core import prims as ops
from kiln.core.prims.shapes import norm_dim
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError, ValueArgumentError


def _t(fn: str, x: Any, arg: str = "input") -> Tensor:
    if not isinstance(x, Tensor):
        raise ArgumentError(f"{fn}: {arg} must be a kiln.Tensor, got {type(x).__name__}")
    return x


def _movedim(x: Tensor, src: Any, dst: Any) -> Tensor:
    from kiln.core.shapeops import movedim

    return movedim(x, src, dst)


def _diag_len(n: int, m: int, offset: int) -> int:
    return max(0, min(n, m - offset) if offset >= 0 else min(n + offset, m))


def diagonal(input: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """The diagonal ``offset`` (above the main one when positive) of the matrices in dims
    ``dim1``, ``dim2``, as the last dim (a copy where torch returns a view).

    >>> import kiln
    >>> kiln.diagonal(kiln.tensor([[1, 2], [3, 4]])).tolist()
    [1, 4]
    """
    x = _t("diagonal", input)
    a, b = norm_dim("diagonal", dim1, x.ndim), norm_dim("diagonal", dim2, x.ndim)
    if a == b:
        raise ArgumentError(f"diagonal: dim1 and dim2 must differ, got {dim1} and {dim2}")
    y = _movedim(x, (a, b), (-2, -1))
    n, m = int(y.shape[-2]), int(y.shape[-1])
    k = _diag_len(n, m, offset)
    rows = [i if offset >= 0 else i - offset for i in range(k)]
    cols = [i + offset if offset >= 0 else i for i in range(k)]
    flat = F.reshape(y, (*y.shape[:-2], n * m))
    idx = creation.tensor([r * m + c for r, c in zip(rows, cols, strict=True)],
                          dtype=dt.int64)
    idx = F.expand(F.reshape(idx, (1,) * (y.ndim - 2) + (k,)), *(tuple(y.shape[:-2]) + (k,)))
    if n * m == 0:
        return creation.zeros((*y.shape[:-2], k), dtype=x.dtype)
    return ops.gather(flat, idx, dim=flat.ndim - 1)


diagonal_copy = diagonal


def diag_embed(input: Tensor, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:
    """Matrices with the last dim of ``input`` on their diagonal ``offset``, in dims ``dim1``,
    ``dim2`` of the result (zeros elsewhere).

    >>> import kiln
    >>> kiln.diag_embed(kiln.tensor([1, 2])).tolist()
    [[1, 0], [0, 2]]
    """
    x = _t("diag_embed", input)
    if x.ndim == 0:
        raise ShapeError("diag_embed: input must have at least 1 dim, got a 0-d tensor")
    a, b = norm_dim("diag_embed", dim1, x.ndim + 1), norm_dim("diag_embed", dim2, x.ndim + 1)
    if a == b:
        raise ArgumentError(f"diag_embed: dim1 and dim2 must differ, got {dim1} and {dim2}")
    n = int(x.shape[-1])
    size = n + abs(offset)
    pads = tuple((0, 0, 0) for _ in range(x.ndim - 1)) + ((0, abs(offset), 0),)
    padded = ops.pad(x, pads=pads, value=0)
    r = F.unsqueeze(creation.arange(size), -1)
    c = F.unsqueeze(creation.arange(size), 0)
    on = ops.eq(ops.sub(c, r), offset)
    vals = F.unsqueeze(padded, -1) if offset >= 0 else F.unsqueeze(padded, -2)
    out = ops.where(on, vals, creation.zeros((), dtype=x.dtype))
    return _movedim(out, (-2, -1), (a, b)) if (a, b) != (x.ndim - 1, x.ndim) else out


def diag(input: Tensor, diagonal: int = 0) -> Tensor:  # noqa: A002
    """A 1-D input: the square matrix with it on diagonal ``diagonal``; a 2-D input: that
    diagonal, as a 1-D tensor.

    >>> import kiln
    >>> kiln.diag(kiln.tensor([1, 2])).tolist()
    [[1, 0], [0, 2]]
    >>> kiln.diag(kiln.tensor([[1, 2], [3, 4]]), 1).tolist()
    [2]
    """
    x = _t("diag", input)
    if x.ndim == 1:
        return diag_embed(x, diagonal, 0, 1)
    if x.ndim == 2:
        return globals()["diagonal"](x, diagonal, 0, 1)
    raise ShapeError(f"diag: input must be 1-D or 2-D, got shape {tuple(x.shape)}")


def diagflat(input: Tensor, offset: int = 0) -> Tensor:
    """The flattened ``input`` on diagonal ``offset`` of a square matrix.

    >>> import kiln
    >>> kiln.diagflat(kiln.tensor([[1, 2]])).tolist()
    [[1, 0], [0, 2]]
    """
    return diag_embed(F.reshape(_t("diagflat", input), (-1,)), offset, 0, 1)


def diagonal_scatter(input: Tensor, src: Tensor, offset: int = 0, dim1: int = 0,
                     dim2: int = 1) -> Tensor:
    """``input`` with its diagonal ``offset`` (in dims ``dim1``, ``dim2``) replaced by ``src``
    (out of place).

    >>> import kiln
    >>> kiln.diagonal_scatter(kiln.zeros(2, 2), kiln.tensor([1.0, 2.0])).tolist()
    [[1.0, 0.0], [0.0, 2.0]]
    """
    x, s = _t("diagonal_scatter", input), _t("diagonal_scatter", src, "src")
    a, b = norm_dim("diagonal_scatter", dim1, x.ndim), norm_dim("diagonal_scatter", dim2,
                                                                 x.ndim)
    y = _movedim(x, (a, b), (-2, -1))
    n, m = int(y.shape[-2]), int(y.shape[-1])
    k = _diag_len(n, m, offset)
    want = (*y.shape[:-2], k)
    if tuple(s.shape) != tuple(want):
        raise ShapeError(f"diagonal_scatter: src must have the diagonal's shape {want}, got "
                         f"{tuple(s.shape)}")
    along = n if offset >= 0 else m
    pads = tuple((0, 0, 0) for _ in range(s.ndim - 1)) + ((0, along - k, 0),)
    padded = ops.pad(s.to(x.dtype), pads=pads, value=0)
    vals = F.unsqueeze(padded, -1) if offset >= 0 else F.unsqueeze(padded, -2)
    on = ops.eq(ops.sub(F.unsqueeze(creation.arange(m), 0), F.unsqueeze(creation.arange(n), -1)),
                offset)
    out = ops.where(on, vals, y)
    return _movedim(out, (-2, -1), (a, b))


def select_scatter(input: Tensor, src: Tensor, dim: int, index: int) -> Tensor:
    """``input`` with the slice at ``index`` of ``dim`` replaced by ``src`` (out of place).

    >>> import kiln
    >>> kiln.select_scatter(kiln.zeros(2, 2), kiln.ones(2), 0, 1).tolist()
    [[0.0, 0.0], [1.0, 1.0]]
    """
    x, s = _t("select_scatter", input), _t("select_scatter", src, "src")
    d = norm_dim("select_scatter", dim, x.ndim)
    n = int(x.shape[d])
    if not -n <= index < n:
        raise ValueArgumentError(f"select_scatter: index {index} is out of range for dim {d} "
                                 f"of size {n}")
    want = tuple(x.shape[:d]) + tuple(x.shape[d + 1:])
    if tuple(s.shape) != want:
        raise ShapeError(f"select_scatter: src must have shape {want}, got {tuple(s.shape)}")
    shape = [1] * x.ndim
    shape[d] = n
    mask = F.reshape(ops.eq(creation.arange(n), index % n), tuple(shape))
    return ops.where(mask, F.unsqueeze(s.to(x.dtype), d), x)


def slice_scatter(input: Tensor, src: Tensor, dim: int = 0, start: int | None = None,
                  end: int | None = None, step: int = 1) -> Tensor:
    """``input`` with the slice ``start:end:step`` of ``dim`` replaced by ``src`` (out of
    place).

    >>> import kiln
    >>> kiln.slice_scatter(kiln.zeros(4), kiln.ones(2), 0, 0, 4, 2).tolist()
    [1.0, 0.0, 1.0, 0.0]
    """
    x, s = _t("slice_scatter", input), _t("slice_scatter", src, "src")
    d = norm_dim("slice_scatter", dim, x.ndim)
    n = int(x.shape[d])
    if isinstance(step, bool) or not isinstance(step, int) or step <= 0:
        raise ValueArgumentError(f"slice_scatter: step must be an int > 0, got {step!r}")
    picked = list(range(n))[slice(start, end, step)]
    want = tuple(len(picked) if i == d else v for i, v in enumerate(x.shape))
    if tuple(s.shape) != want:
        raise ShapeError(f"slice_scatter: src must have shape {want}, got {tuple(s.shape)}")
    if not picked:
        return x
    where_from = [picked.index(p) if p in picked else 0 for p in range(n)]
    shape = [1] * x.ndim
    shape[d] = n
    mask = F.reshape(creation.tensor([p in picked for p in range(n)], dtype=dt.bool_),
                     tuple(shape))
    idx = F.expand(F.reshape(creation.tensor(where_from, dtype=dt.int64), tuple(shape)),
                   *[n if i == d else v for i, v in enumerate(s.shape)])
    spread = ops.gather(s.to(x.dtype), idx, dim=d)
    return ops.where(mask, spread, x)


def block_diag(*tensors: Tensor) -> Tensor:
    """The tensors (0-d, 1-d as a row, or 2-D) as blocks on the diagonal of one matrix.

    >>> import kiln
    >>> kiln.block_diag(kiln.tensor([[1]]), kiln.tensor([[2, 3]])).tolist()
    [[1, 0, 0], [0, 2, 3]]
    """
    blocks = []
    for x in tensors:
        x = _t("block_diag", x, "tensors")
        if x.ndim > 2:
            raise ShapeError(f"block_diag: every tensor must have at most 2 dims, got shape "
                             f"{tuple(x.shape)}")
        blocks.append(F.reshape(x, (1, 1)) if x.ndim == 0 else
                      F.reshape(x, (1, -1)) if x.ndim == 1 else x)
    if not blocks:
        return creation.zeros((1, 0))
    common = blocks[0].dtype
    for b in blocks[1:]:
        common = dt.promote_types(common, b.dtype)
    width = sum(int(b.shape[1]) for b in blocks)
    rows, left = [], 0
    for b in blocks:
        w = int(b.shape[1])
        rows.append(ops.pad(b.to(common), pads=((0, 0, 0), (left, width - left - w, 0)),
                            value=0))
        left += w
    return F.cat(rows, 0)


def combinations(input: Tensor, r: int = 2, with_replacement: bool = False) -> Tensor:
    """The length-``r`` combinations of the 1-D ``input``'s elements, as rows (in the order
    of itertools.combinations).

    >>> import kiln
    >>> kiln.combinations(kiln.tensor([1, 2, 3])).tolist()
    [[1, 2], [1, 3], [2, 3]]
    """
    x = _t("combinations", input)
    if x.ndim != 1:
        raise ShapeError(f"combinations: input must be 1-D, got shape {tuple(x.shape)}")
    if isinstance(r, bool) or not isinstance(r, int) or r < 0:
        raise ValueArgumentError(f"combinations: r must be an int >= 0, got {r!r}")
    if r == 0:
        return creation.zeros((0,), dtype=x.dtype)
    make = itertools.combinations_with_replacement if with_replacement else \
        itertools.combinations
    combos = list(make(range(int(x.shape[0])), r))
    if not combos:
        return creation.zeros((0, r), dtype=x.dtype)
    idx = creation.tensor([list(c) for c in combos], dtype=dt.int64)
    return F.reshape(ops.gather(x, F.reshape(idx, (-1,)), dim=0), (len(combos), r))


def cov(input: Tensor, *, correction: int = 1, fweights: Tensor | None = None,
        aweights: Tensor | None = None) -> Tensor:
    """The covariance matrix of the variables in the rows of ``input`` (observations in the
    columns; a 1-D input is one variable), with frequency and observation weights.

    >>> import kiln
    >>> kiln.cov(kiln.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])).tolist()
    [[1.0, -1.0], [-1.0, 1.0]]
    """
    x = _t("cov", input)
    if x.ndim > 2:
        raise ShapeError(f"cov: input must have at most 2 dims, got shape {tuple(x.shape)}")
    if not x.dtype.is_floating:
        x = x.to(dt.DEFAULT_FLOAT)
    obs = F.reshape(x, (1, -1)) if x.ndim < 2 else x
    n = int(obs.shape[1])
    w = None
    if fweights is not None:
        w = _t("cov", fweights, "fweights").to(x.dtype)
    if aweights is not None:
        aw = _t("cov", aweights, "aweights").to(x.dtype)
        w = aw if w is None else ops.mul(w, aw)
    if w is None:
        w_sum = creation.full((), float(n), dtype=x.dtype)
        avg = ops.div(F.sum(obs, 1, keepdim=True), w_sum)
    else:
        w_sum = F.sum(w)
        avg = ops.div(F.sum(ops.mul(obs, w), 1, keepdim=True), w_sum)
    if w is None or aweights is None:
        norm = ops.sub(w_sum, float(correction))
    else:
        norm = ops.sub(w_sum, ops.div(ops.mul(F.sum(ops.mul(w, aw)), float(correction)),
                                      w_sum))
    norm = ops.maximum(norm, 0.0)
    dev = ops.sub(obs, avg)
    weighted = dev if w is None else ops.mul(dev, w)
    c = ops.div(F.matmul(weighted, F.transpose(dev, 0, 1)), norm)
    return F.reshape(c, ()) if int(obs.shape[0]) == 1 else c  # one variable: 0-d, as torch


def corrcoef(input: Tensor) -> Tensor:
    """The Pearson correlation matrix of the rows of ``input`` (clipped to [-1, 1]).

    >>> import kiln
    >>> kiln.corrcoef(kiln.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])).tolist()
    [[1.0, -1.0], [-1.0, 1.0]]
    """
    c = cov(_t("corrcoef", input))
    if c.ndim == 0:
        return ops.div(c, c)
    d = diagonal(c)
    sd = ops.sqrt(d)
    c = ops.div(ops.div(c, F.unsqueeze(sd, -1)), F.unsqueeze(sd, 0))
    return ops.minimum(ops.maximum(c, -1.0), 1.0)


def cross(input: Tensor, other: Tensor, dim: int | None = None) -> Tensor:
    """The cross product of 3-vectors along ``dim`` (the first dim of size 3 when None),
    broadcasting the rest.

    >>> import kiln
    >>> kiln.cross(kiln.tensor([1.0, 0.0, 0.0]), kiln.tensor([0.0, 1.0, 0.0])).tolist()
    [0.0, 0.0, 1.0]
    """
    from kiln.core.shapeops import broadcast_tensors

    a, b = broadcast_tensors(_t("cross", input), _t("cross", other, "other"))
    if dim is None:
        sizes = [i for i, s in enumerate(a.shape) if s == 3]
        if not sizes:
            raise ShapeError(f"cross: no dim of size 3 in shape {tuple(a.shape)}")
        dim = sizes[0]
    d = norm_dim("cross", dim, a.ndim)
    if a.shape[d] != 3:
        raise ShapeError(f"cross: dim {d} must have size 3, got {a.shape[d]}")

    def c(x: Tensor, i: int) -> Tensor:
        return F.narrow(x, d, i, 1)

    parts = [ops.sub(ops.mul(c(a, 1), c(b, 2)), ops.mul(c(a, 2), c(b, 1))),
             ops.sub(ops.mul(c(a, 2), c(b, 0)), ops.mul(c(a, 0), c(b, 2))),
             ops.sub(ops.mul(c(a, 0), c(b, 1)), ops.mul(c(a, 1), c(b, 0)))]
    return F.cat(parts, d)


def constant_pad_nd(input: Tensor, pad: Any, value: Any = 0) -> Tensor:
    """Pad (or, with negative amounts, crop) the last dims by the (left, right) pairs in
    ``pad``, last dim first, with ``value``.

    >>> import kiln
    >>> kiln.constant_pad_nd(kiln.tensor([1, 2]), (1, 2)).tolist()
    [0, 1, 2, 0, 0]
    """
    x = _t("constant_pad_nd", input)
    pad = list(pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ArgumentError(f"constant_pad_nd: pad must hold (left, right) pairs for at most "
                            f"{x.ndim} dims, got {pad}")
    pads = [(0, 0, 0)] * x.ndim
    for k in range(len(pad) // 2):
        d = x.ndim - 1 - k
        lo, hi = int(pad[2 * k]), int(pad[2 * k + 1])
        if lo < 0 or hi < 0:  # crop first
            size = int(x.shape[d])
            start, stop = max(-lo, 0), size - max(-hi, 0)
            if stop < start:
                raise ShapeError(f"constant_pad_nd: cropping ({lo}, {hi}) leaves a negative "
                                 f"size of dim {d} (size {size})")
            x = F.narrow(x, d, start, stop - start)
        pads[d] = (max(lo, 0), max(hi, 0), 0)
    return ops.pad(x, pads=tuple(pads), value=value)


def sum_to_size(self: Tensor, *size: Any) -> Tensor:
    """The tensor summed over the dims that broadcast to it from ``size``.

    >>> import kiln
    >>> kiln.ones(2, 3).sum_to_size(1, 3).tolist()
    [[2.0, 2.0, 2.0]]
    """
    x = _t("sum_to_size", self)
    if len(size) == 1 and isinstance(size[0], (list, tuple)):
        size = tuple(size[0])
    size = tuple(int(s) for s in size)
    lead = x.ndim - len(size)
    if lead < 0 or any(s not in (1, int(x.shape[lead + i])) for i, s in enumerate(size)):
        raise ShapeError(f"sum_to_size: size {size} does not broadcast to shape "
                         f"{tuple(x.shape)}")
    dims = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(size)
                                       if s == 1 and x.shape[lead + i] != 1)
    if not dims:
        return x
    return F.reshape(F.sum(x, dims, keepdim=True), size)


def fmod(input: Tensor, other: Any) -> Tensor:
    """The C remainder ``input - trunc(input / other) * other`` (the sign of ``input``).

    >>> import kiln
    >>> kiln.fmod(kiln.tensor([-3.0, 3.0]), 2.0).tolist()
    [-1.0, 1.0]
    """
    x = _t("fmod", input)
    if x.dtype.is_floating or (isinstance(other, Tensor) and other.dtype.is_floating) or \
            isinstance(other, float):
        q = ops.trunc(ops.div(x, other))
        return ops.sub(x, ops.mul(q, other))
    r = ops.sub(x, ops.mul(ops.floor_divide(x, other), other))  # the floored remainder
    fix = ops.logical_and(ops.ne(r, 0), ops.ne(ops.lt(r, 0), ops.lt(x, 0)))
    return ops.where(fix, ops.sub(r, other), r)


def ldexp(input: Tensor, other: Any) -> Tensor:
    """``input * 2 ** other``.

    >>> import kiln
    >>> kiln.ldexp(kiln.tensor([1.5]), kiln.tensor([3])).tolist()
    [12.0]
    """
    x = _t("ldexp", input)
    if not x.dtype.is_floating:
        x = x.to(dt.DEFAULT_FLOAT)
    e = other.to(x.dtype) if isinstance(other, Tensor) else float(other)
    return ops.mul(x, ops.pow(2.0, e) if isinstance(e, Tensor) else 2.0 ** e)


class Frexp(NamedTuple):
    """``(mantissa, exponent)`` of :func:`kiln.frexp`."""

    mantissa: Any
    exponent: Any


def frexp(input: Tensor) -> Frexp:
    """``(mantissa, exponent)`` with ``input = mantissa * 2 ** exponent`` and ``0.5 <=
    |mantissa| < 1`` (0, inf and NaN keep exponent 0).

    >>> import kiln
    >>> [t.tolist() for t in kiln.frexp(kiln.tensor([8.0, 0.0]))]
    [[0.5, 0.0], [4, 0]]
    """
    x = _t("frexp", input)
    if not x.dtype.is_floating:
        raise ArgumentError(f"frexp: input must be a float tensor, got {x.dtype}")
    a = ops.abs(x)
    finite = ops.logical_and(ops.eq(a, a), ops.lt(a, math.inf))
    ok = ops.logical_and(finite, ops.gt(a, 0.0))
    safe = ops.where(ok, a, 1.0)
    e = ops.add(ops.floor(ops.log2(safe)), 1.0)
    m = ops.div(x, ops.pow(2.0, e))
    # log2 can round across a power of two: put the mantissa back into [0.5, 1)
    low = ops.lt(ops.abs(m), 0.5)
    high = ops.ge(ops.abs(m), 1.0)
    e = ops.where(low, ops.sub(e, 1.0), ops.where(high, ops.add(e, 1.0), e))
    m = ops.where(low, ops.mul(m, 2.0), ops.where(high, ops.mul(m, 0.5), m))
    return Frexp(ops.where(ok, m, x), ops.where(ok, e, 0.0).to(dt.int32))


FUNCTIONS = ("diag", "diagonal", "diagonal_copy", "diag_embed", "diagflat", "diagonal_scatter",
             "select_scatter", "slice_scatter", "block_diag", "combinations", "cov", "corrcoef",
             "cross", "constant_pad_nd", "fmod", "ldexp", "frexp")
METHODS = ("diag", "diagonal", "diag_embed", "diagflat", "diagonal_scatter", "select_scatter",
           "slice_scatter", "cov", "corrcoef", "cross", "fmod", "ldexp", "frexp",
           "sum_to_size")


def install(cls: type) -> None:
    """Attach the Tensor methods of this module to ``cls``."""
    glob = globals()
    for name in METHODS:
        setattr(cls, name, glob[name])
