"""Gather and scatter along one dim: the primitives behind integer indexing (reading and
``x[idx] = v``), embedding and cross-entropy.

``gather(x, index, dim=d)`` reads ``out[p] = x[p with p[d] replaced by index[p]]`` for every
position ``p`` of ``index`` (torch.gather); ``scatter_add(x, index, src, dim=d)`` is its
adjoint: a copy of ``x`` with ``src[p]`` added at the same places (torch.scatter_add), and
``scatter(x, index, src, dim=d)`` writes ``src[p]`` there instead (torch.scatter). When two
positions write one element, the later one in row-major order of ``index`` wins (NumPy's
``x[idx] = v``; torch leaves it unspecified), on every backend.
Indices must lie in ``[0, size)``; the composites (``x[idx]``, embedding) wrap negative ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln.core.prims.registry import OpDef, TensorMeta, register
from kiln.core.prims.shapes import fmt_shape, norm_dim, require_tensor
from kiln.errors import DTypeError, IndexError_, ShapeError


def _check_index(op: str, x: TensorMeta, index: TensorMeta, dim: int) -> int:
    if not index.dtype.is_integer:
        raise DTypeError(f"{op}: index must be an integer tensor, got {index.dtype}")
    if index.ndim != x.ndim:
        raise ShapeError(f"{op}: index must have the same rank as input ({x.ndim}), got "
                         f"index of shape {fmt_shape(index.shape)}")
    d = norm_dim(op, dim, x.ndim)
    for i, (n, m) in enumerate(zip(index.shape, x.shape)):
        if i == d:
            continue
        fits = n == m or (isinstance(n, int) and isinstance(m, int) and n <= m)
        if not fits:
            raise ShapeError(f"{op}: index size {n} in dim {i} exceeds the input's {m} "
                             f"(input {fmt_shape(x.shape)}, index "
                             f"{fmt_shape(index.shape)})")
    return d


def _gather_meta(x: Any, index: Any, *, dim: int) -> TensorMeta:
    x = require_tensor("gather", x, "input")
    index = require_tensor("gather", index, "index")
    _check_index("gather", x, index, dim)
    return TensorMeta(index.shape, x.dtype)


def _bounds(op: str, index: np.ndarray, size: int, dim: int) -> None:
    if index.size and (index.min() < 0 or index.max() >= size):
        bad = index.min() if index.min() < 0 else index.max()
        raise IndexError_(f"{op}: index {int(bad)} is out of bounds for dim {dim} with size "
                          f"{size} (expected 0 <= index < {size})")


def _crop(x: np.ndarray, shape: tuple, dim: int) -> np.ndarray:
    # torch lets index be smaller than input in the other dims: only that corner is read.
    sl = tuple(slice(None) if i == dim else slice(0, n) for i, n in enumerate(shape))
    return x[sl]


def _gather_eager(x: np.ndarray, index: np.ndarray, *, dim: int) -> np.ndarray:
    dim = dim % max(x.ndim, 1)  # _crop compares dims by position
    if x.ndim == 0:  # a 0-d input is one element: index 0 reads it (torch)
        _bounds("gather", index, 1, dim)
        return x.copy()
    _bounds("gather", index, x.shape[dim], dim)
    return np.take_along_axis(_crop(x, index.shape, dim), index.astype(np.intp), axis=dim)


def _gather_vjp(c: Any, g: Any) -> tuple:
    from kiln.core import creation
    from kiln.core import prims as ops

    x, index = c.args  # index values matter: check they were not changed in place
    if len(x.shape) == 0:  # one element, read once
        return (g, None)
    zeros = creation.zeros(*x.shape, dtype=g.dtype)
    return (ops.scatter_add(zeros, index, g, dim=c.attrs["dim"]), None)


register(OpDef(
    "gather", _gather_meta, _gather_eager, _gather_vjp, "gather",
    "gather(x, index, dim=): out[p] = x[p with p[dim] = index[p]] (torch.gather).",
    attrs=("dim",),
))


def _scatter_meta(op: str) -> Any:
    def meta(x: Any, index: Any, src: Any, *, dim: int) -> TensorMeta:
        x = require_tensor(op, x, "input")
        index = require_tensor(op, index, "index")
        src = require_tensor(op, src, "src")
        _check_index(op, x, index, dim)
        if src.dtype != x.dtype:
            raise DTypeError(f"{op}: src dtype {src.dtype} differs from input dtype {x.dtype}")
        if tuple(src.shape) != tuple(index.shape):
            raise ShapeError(f"{op}: src shape {fmt_shape(src.shape)} must equal index shape "
                             f"{fmt_shape(index.shape)}")
        return TensorMeta(x.shape, x.dtype)

    return meta


def _positions(index: np.ndarray, dim: int) -> tuple:
    """Index arrays (broadcasting together) of the elements ``index`` points at along ``dim``:
    ``p`` with ``p[dim]`` replaced by ``index[p]``, for every position ``p`` of ``index``."""
    grids = list(np.indices(index.shape, sparse=True))
    grids[dim] = index.astype(np.intp)
    return tuple(grids)


def _scatter_add_eager(x: np.ndarray, index: np.ndarray, src: np.ndarray, *,
                       dim: int) -> np.ndarray:
    if x.ndim == 0:  # one element: index 0 adds to it
        _bounds("scatter_add", index, 1, 0)
        return x + src
    _bounds("scatter_add", index, x.shape[dim], dim)
    out = np.array(x, copy=True)
    np.add.at(out, _positions(index, dim), src)
    return out


def _scatter_add_vjp(c: Any, g: Any) -> tuple:
    from kiln.core import prims as ops

    _, index, _ = c.args
    gsrc = ops.gather(g, index, dim=c.attrs["dim"]) if c.needs_grad(2) else None
    return (g if c.needs_grad(0) else None, None, gsrc)


register(OpDef(
    "scatter_add", _scatter_meta("scatter_add"), _scatter_add_eager, _scatter_add_vjp,
    "gather", "scatter_add(x, index, src, dim=): x with src[p] added at p[dim] = index[p] "
    "(torch.scatter_add; duplicates accumulate).",
    attrs=("dim",),
))


def _scatter_eager(x: np.ndarray, index: np.ndarray, src: np.ndarray, *,
                   dim: int) -> np.ndarray:
    dim = dim % max(x.ndim, 1)
    if x.ndim == 0:  # one element: index 0 writes it
        _bounds("scatter", index, 1, 0)
        return np.array(src, dtype=x.dtype, copy=True) if index.size else x.copy()
    _bounds("scatter", index, x.shape[dim], dim)
    out = np.array(x, copy=True, order="C")
    if not index.size:
        return out
    # Flat positions written, in row-major order of index.
    flat = np.ravel_multi_index(tuple(np.broadcast_arrays(*_positions(index, dim))),
                                x.shape).reshape(-1)
    # The last write to each element wins: NumPy's fancy assignment does not promise an order.
    values = np.ascontiguousarray(src).reshape(-1)
    if out.size <= 8 * flat.size + 4096:
        # the highest write number per element, by an unbuffered maximum: O(n), where
        # sorting the positions (np.unique) took seconds on millions of writes
        order = np.full(out.size, -1, np.int64)
        np.maximum.at(order, flat, np.arange(flat.size))
        hit = np.flatnonzero(order >= 0)
        out.reshape(-1)[hit] = values[order[hit]]
        return out
    last = flat.size - 1 - np.unique(flat[::-1], return_index=True)[1]  # few writes, big x
    out.reshape(-1)[flat[last]] = values[last]
    return out


def _scatter_vjp(c: Any, g: Any) -> tuple:
    from kiln.core import creation
    from kiln.core import prims as ops

    _, index, src = c.args  # index values matter: check they were not changed in place
    dim = c.attrs["dim"]
    gx = ops.scatter(g, index, creation.zeros_like(src), dim=dim) if c.needs_grad(0) else None
    gsrc = None
    if c.needs_grad(2):
        # Only the write that won an element gets its gradient: number the writes in order,
        # scatter the numbers (the last one stays) and compare.
        from kiln.core import dtypes as dt
        from kiln.symbolic.sizes import prod

        order = ops.reshape(creation.arange(prod(tuple(index.shape)), dtype=dt.int64),
                            shape=tuple(index.shape))
        winner = ops.scatter(creation.full(tuple(g.shape), -1, dtype=dt.int64), index, order,
                             dim=dim)
        won = ops.eq(ops.gather(winner, index, dim=dim), order)
        gsrc = ops.where(won, ops.gather(g, index, dim=dim), 0.0)
    return (gx, None, gsrc)


register(OpDef(
    "scatter", _scatter_meta("scatter"), _scatter_eager, _scatter_vjp, "gather",
    "scatter(x, index, src, dim=): x with src[p] written at p[dim] = index[p] "
    "(torch.scatter; of several writes to one element the last in index order wins).",
    attrs=("dim",),
))

