"""torch's writes through masks and index tuples, and fixed-size index helpers:
``masked_scatter``, ``index_put``, ``nonzero_static``, ``unravel_index``,
``repeat_interleave``.

Composites of cumsum, gather, scatter and ``where``, so they trace and compile: the
positions depend on the values but the output shape does not. ``repeat_interleave`` with a
tensor of repeats (an output size set by the values) and ``index_put`` with a bool mask of
values per selected element run eagerly only, like :mod:`kiln.core.dataops`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kiln.core import creation, mathops
from kiln.core import dtypes as dt
from kiln.core import functional as F
from kiln.core import prims as ops
from kiln.core.dataops import _values
from kiln.core.prims.shapes import norm_dim
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, DTypeError, IndexError_, ShapeError, ValueArgumentError


def _t(fn: str, x: Any, arg: str = "input") -> Tensor:
    if not isinstance(x, Tensor):
        raise ArgumentError(f"{fn}: {arg} must be a kiln.Tensor, got {type(x).__name__}")
    return x


def masked_scatter(input: Tensor, mask: Tensor, source: Tensor) -> Tensor:
    """``input`` with the places where ``mask`` is True filled, in order, with the first
    elements of ``source`` (out of place; ``mask`` and ``input`` broadcast together).

    >>> import kiln
    >>> m = kiln.tensor([True, False, True])
    >>> kiln.masked_scatter(kiln.zeros(3), m, kiln.tensor([5.0, 6.0])).tolist()
    [5.0, 0.0, 6.0]
    """
    from kiln.core.shapeops import broadcast_tensors

    x, m = _t("masked_scatter", input), _t("masked_scatter", mask, "mask")
    src = _t("masked_scatter", source, "source")
    if not m.dtype.is_bool:
        raise DTypeError(f"masked_scatter: mask must be a bool tensor, got {m.dtype}")
    x, m = broadcast_tensors(x, m)
    n = src.numel()
    if m._node is None and x.numel():
        count = int(np.count_nonzero(m.detach()._data))
        if count > n:
            raise ShapeError(f"masked_scatter: mask selects {count} elements but source has "
                             f"only {n}")
    if x.numel() == 0 or n == 0:
        return mathops.clone(x)
    flat_m = F.reshape(m, (-1,))
    pos = ops.sub(mathops.cumsum(flat_m.to(dt.int64), 0), 1)
    pos = ops.minimum(ops.maximum(pos, 0), n - 1)  # unselected places read a valid element
    taken = ops.gather(F.reshape(src.to(x.dtype), (-1,)), pos, dim=0)
    return ops.where(m, F.reshape(taken, tuple(x.shape)), x)


def index_put(input: Tensor, indices: Any, values: Any, accumulate: bool = False) -> Tensor:
    """``input`` with ``values`` written (or added, with ``accumulate``) at ``input[indices]``
    for a tuple of integer index tensors over the leading dims, or a bool mask (out of place;
    torch's ``index_put``).

    >>> import kiln
    >>> idx = (kiln.tensor([0, 2]), kiln.tensor([1, 1]))
    >>> kiln.index_put(kiln.zeros(3, 2), idx, kiln.tensor([5.0, 6.0])).tolist()
    [[0.0, 5.0], [0.0, 0.0], [0.0, 6.0]]
    """
    from kiln.core.shapeops import broadcast_tensors

    x = _t("index_put", input)
    if isinstance(indices, Tensor) or not isinstance(indices, (list, tuple)) or not indices:
        raise ArgumentError("index_put: indices must be a non-empty tuple of tensors")
    idx = [_t("index_put", i, "indices") for i in indices]
    v = values if isinstance(values, Tensor) else creation.full((), values, dtype=x.dtype)
    v = v.to(x.dtype)
    if len(idx) == 1 and idx[0].dtype.is_bool:
        mask = idx[0]
        if mask.ndim > x.ndim:
            raise ShapeError(f"index_put: a mask of shape {tuple(mask.shape)} cannot index "
                             f"shape {tuple(x.shape)}")
        rest = tuple(x.shape[mask.ndim:])
        if v.ndim <= len(rest) or v.shape[0] == 1:
            # one value (row) for every selected place: a where keeps the shape static
            keep = F.reshape(mask, tuple(mask.shape) + (1,) * len(rest))
            full = mathops.broadcast_to(v, tuple(x.shape))
            return ops.where(keep, ops.add(x, full) if accumulate else full, x)
        found = _values("index_put", mask, "give one value per selected row, or integer "
                                           "indices")
        idx = [creation.tensor(i, dtype=dt.int64) for i in np.nonzero(found)]
    for i in idx:
        if not i.dtype.is_integer:
            raise DTypeError(f"index_put: indices must be integer or bool tensors, got "
                             f"{i.dtype}")
    k = len(idx)
    if k > x.ndim:
        raise IndexError_(f"index_put: {k} index tensors for a {x.ndim}-d input")
    idx = list(broadcast_tensors(*idx)) if k > 1 else idx
    lead = tuple(int(s) for s in x.shape[:k])
    rest = tuple(x.shape[k:])
    flat = creation.zeros(tuple(idx[0].shape), dtype=dt.int64)
    for i, size in zip(idx, lead, strict=True):
        i = i.to(dt.int64)
        flat = ops.add(ops.mul(flat, size), ops.where(ops.lt(i, 0), ops.add(i, size), i))
    m = flat.numel()
    flat = F.reshape(flat, (m,))
    vals = F.reshape(mathops.broadcast_to(v, tuple(idx[0].shape) + rest), (m,) + rest)
    base = F.reshape(x, (math.prod(lead),) + rest)
    spread = F.expand(F.reshape(flat, (m,) + (1,) * len(rest)), *((m,) + rest))
    prim = ops.scatter_add if accumulate else ops.scatter
    return F.reshape(prim(base, spread, vals, dim=0), tuple(x.shape))


def nonzero_static(input: Tensor, *, size: int, fill_value: int = -1) -> Tensor:
    """The indices of the first ``size`` non-zero elements as a ``(size, ndim)`` tensor,
    padded with ``fill_value``: :func:`kiln.nonzero` with a fixed shape, so it traces.

    >>> import kiln
    >>> kiln.nonzero_static(kiln.tensor([0, 3, 5]), size=3).tolist()
    [[1], [2], [-1]]
    """
    x = _t("nonzero_static", input)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueArgumentError(f"nonzero_static: size must be an int >= 0, got {size!r}")
    shape = tuple(int(s) for s in x.shape)
    if x.ndim == 0:
        return creation.zeros((size, 0), dtype=dt.int64)
    n = math.prod(shape)
    if n == 0 or size == 0:
        return creation.full((size, x.ndim), fill_value, dtype=dt.int64)
    nz = F.reshape(ops.ne(x, 0) if not x.dtype.is_bool else x, (n,))
    rank = ops.sub(mathops.cumsum(nz.to(dt.int64), 0), 1)
    hit = ops.logical_and(ops.eq(F.unsqueeze(rank, 0), F.unsqueeze(creation.arange(size), 1)),
                          F.unsqueeze(nz, 0))  # (size, n)
    where = F.sum(ops.mul(hit.to(dt.int64), creation.arange(n)), 1)
    found = ops.gt(F.sum(hit.to(dt.int64), 1), 0)
    coords = unravel_index(where, shape)
    out = F.stack(list(coords), 1)
    return ops.where(F.unsqueeze(found, 1), out, fill_value)


def unravel_index(indices: Tensor, shape: Any) -> tuple[Tensor, ...]:
    """The coordinates in ``shape`` of flat (row-major) ``indices``, one tensor per dim.

    >>> import kiln
    >>> [t.tolist() for t in kiln.unravel_index(kiln.tensor([5, 1]), (2, 3))]
    [[1, 0], [2, 1]]
    """
    i = _t("unravel_index", indices, "indices")
    if not i.dtype.is_integer:
        raise DTypeError(f"unravel_index: indices must be integers, got {i.dtype}")
    dims = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
    if any(d < 0 for d in dims):
        raise ValueArgumentError(f"unravel_index: shape must be non-negative, got {dims}")
    i = i.to(dt.int64)
    out = []
    stride = math.prod(dims)
    for k, d in enumerate(dims):
        stride //= max(d, 1)
        q = ops.floor_divide(i, max(stride, 1))
        out.append(q if k == 0 else ops.sub(q, ops.mul(ops.floor_divide(q, max(d, 1)), d)))
    return tuple(out)


def repeat_interleave(input: Any, repeats: Any = None, dim: int | None = None, *,
                      output_size: int | None = None) -> Tensor:
    """Each element (or slice along ``dim``) repeated ``repeats`` times in place (an int, or
    a tensor with one count per element); ``repeat_interleave(counts)`` gives the index of
    each count repeated. A tensor of counts sets the output size by its values, so it runs
    eagerly only.

    >>> import kiln
    >>> kiln.repeat_interleave(kiln.tensor([1, 2]), 2).tolist()
    [1, 1, 2, 2]
    """
    x = _t("repeat_interleave", input)
    if repeats is None:  # repeat_interleave(counts): arange(len) repeated by the counts
        return repeat_interleave(creation.arange(x.shape[0] if x.ndim else 1), x, 0)
    if dim is None:
        x, d = F.reshape(x, (-1,)), 0
    else:
        d = norm_dim("repeat_interleave", dim, max(x.ndim, 1))
        if x.ndim == 0:
            x = F.reshape(x, (1,))
    if isinstance(repeats, Tensor) and repeats.numel() == 1 and repeats.ndim <= 1:
        repeats = int(_values("repeat_interleave", repeats, "pass the count as an int"
                              ).reshape(()))
    if isinstance(repeats, int) and not isinstance(repeats, bool):
        if repeats < 0:
            raise ValueArgumentError(f"repeat_interleave: repeats must be >= 0, got {repeats}")
        size = int(x.shape[d])
        y = F.unsqueeze(x, d + 1)
        y = F.expand(y, *[repeats if k == d + 1 else s for k, s in enumerate(y.shape)])
        return F.reshape(y, tuple(x.shape[:d]) + (size * repeats,) + tuple(x.shape[d + 1:]))
    r = _values("repeat_interleave", _t("repeat_interleave", repeats, "repeats"),
                "pass an int count (a fixed output size)")
    if r.ndim != 1 or r.shape[0] != x.shape[d]:
        raise ShapeError(f"repeat_interleave: repeats must be 1-D with one count per element "
                         f"of dim {d} ({x.shape[d]}), got shape {r.shape}")
    if (r < 0).any():
        raise ValueArgumentError("repeat_interleave: repeats must be >= 0")
    index = creation.tensor(np.repeat(np.arange(r.shape[0]), r), dtype=dt.int64)
    if output_size is not None and int(output_size) != index.shape[0]:
        raise ValueArgumentError(f"repeat_interleave: output_size {output_size} does not "
                                 f"match the repeats' sum {index.shape[0]}")
    return mathops.index_select(x, d, index)


FUNCTIONS = ("masked_scatter", "index_put", "nonzero_static", "unravel_index",
             "repeat_interleave")
METHODS = ("masked_scatter", "index_put", "nonzero_static", "repeat_interleave")


# torch's in-place forms of the writes (``x.index_add_(...)``): the out-of-place op run
# through Tensor._inplace, so views, autograd and tracing see the update as for ``add_``.
INPLACE = ("index_add", "index_copy", "index_fill", "index_put", "index_reduce",
           "masked_scatter", "put", "scatter_reduce")


def _inplace_method(name: str) -> Any:
    def method(self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        fn = getattr(type(self), name)
        return self._inplace(lambda s: fn(s, *args, **kwargs), f"{name}_")

    method.__name__ = method.__qualname__ = f"{name}_"
    method.__doc__ = f"In-place :func:`kiln.{name}` (``x.{name}_(...)`` changes ``x``)."
    return method


def install(cls: type) -> None:
    """Attach the Tensor methods of this module to ``cls``, and the in-place forms."""
    glob = globals()
    for name in METHODS:
        setattr(cls, name, glob[name])
    for name in INPLACE:
        setattr(cls, f"{name}_", _inplace_method(name))
