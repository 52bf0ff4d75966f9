"""torch's ops whose output *shape* depends on the input's values: ``unique``,
``unique_consecutive``, ``nonzero``, ``argwhere``, ``masked_select``, ``bincount``.

They run eagerly (NumPy finds the shape, then Kiln ops build the result where a gradient
flows, as for ``masked_select``). A graph needs every shape before it runs, so on a tracer
they raise a :class:`TraceError` that says so and what to do instead, as ``torch.export``
refuses them (listed in docs/ops.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln.core import creation
from kiln.core import dtypes as dt
from kiln.core import functional as F
from kiln.core import prims as ops
from kiln.core.prims.shapes import norm_dim
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, DTypeError, ShapeError, TraceError, ValueArgumentError


def _t(fn: str, x: Any, arg: str = "input") -> Tensor:
    if not isinstance(x, Tensor):
        raise ArgumentError(f"{fn}: {arg} must be a kiln.Tensor, got {type(x).__name__}")
    return x


def _values(fn: str, x: Tensor, instead: str) -> np.ndarray:
    """The data of ``x``; on a tracer, the error of a data-dependent output shape."""
    if x._node is not None:
        raise TraceError(
            f"{fn}: the output shape depends on the values of the input, which are unknown "
            f"while tracing (torch.export refuses it too); call {fn} outside the traced "
            f"function and pass its result in as an input, or {instead}")
    return np.asarray(x.detach()._data)


def _int64(a: np.ndarray) -> Tensor:
    return creation.tensor(np.asarray(a, dtype=np.int64), dtype=dt.int64)


def _like(a: np.ndarray, x: Tensor) -> Tensor:
    return creation.tensor(np.asarray(a, dtype=x.dtype.np_dtype), dtype=x.dtype)


def unique(input: Tensor, sorted: bool = True, return_inverse: bool = False,  # noqa: A002
           return_counts: bool = False, dim: int | None = None) -> Any:
    """The distinct elements (or, with ``dim``, the distinct slices along ``dim``) in
    ascending order; with ``return_inverse`` also where each input element went, with
    ``return_counts`` how often each occurs. NaNs are each distinct, as in torch.

    >>> import kiln
    >>> kiln.unique(kiln.tensor([3, 1, 3, 2])).tolist()
    [1, 2, 3]
    >>> [t.tolist() for t in kiln.unique(kiln.tensor([3, 1, 3]), return_counts=True)]
    [[1, 3], [1, 2]]
    """
    x = _t("unique", input)
    a = _values("unique", x, "keep a fixed-size form (a one-hot count with kiln.sum(x[..., "
                             "None] == values, ...) over known values)")
    if dim is None:
        flat = a.reshape(-1)
        vals, inv, counts = np.unique(flat, return_inverse=True, return_counts=True,
                                      equal_nan=False)
        inv = inv.reshape(a.shape)
    else:
        d = norm_dim("unique", dim, x.ndim)
        vals, inv, counts = _unique_dim(a, d)
    return _pack(_like(vals, x), inv, counts, return_inverse, return_counts)


def _unique_dim(a: np.ndarray, d: int) -> tuple:
    n = a.shape[d]
    if n == 0 or a.size == 0:
        keep = min(n, 1) if a.size == 0 and n else 0
        vals = np.take(a, np.arange(keep), axis=d)
        return vals, np.zeros(n, np.int64), np.full(keep, n, np.int64) if keep else \
            np.zeros(0, np.int64)
    rows = np.moveaxis(a, d, 0).reshape(n, a.size // n)
    # lexicographic order of the slices (np.lexsort takes the last key as the primary one)
    order = np.lexsort(rows.T[::-1]) if rows.shape[1] else np.arange(n)
    srt = rows[order]
    new = np.ones(n, bool)
    new[1:] = np.any(srt[1:] != srt[:-1], axis=1)
    group = np.cumsum(new) - 1
    inv = np.empty(n, np.int64)
    inv[order] = group
    counts = np.bincount(group).astype(np.int64)
    vals = np.moveaxis(np.take(a, order[new], axis=d), d, d)
    return vals, inv, counts


def _pack(vals: Tensor, inv: np.ndarray, counts: np.ndarray, return_inverse: bool,
          return_counts: bool) -> Any:
    out: list[Tensor] = [vals]
    if return_inverse:
        out.append(_int64(inv))
    if return_counts:
        out.append(_int64(counts))
    return out[0] if len(out) == 1 else tuple(out)


def unique_consecutive(input: Tensor, return_inverse: bool = False,
                       return_counts: bool = False, dim: int | None = None) -> Any:
    """Each run of equal consecutive elements (or slices along ``dim``) kept once, with the
    options of :func:`unique`.

    >>> import kiln
    >>> kiln.unique_consecutive(kiln.tensor([1, 1, 2, 2, 1])).tolist()
    [1, 2, 1]
    """
    x = _t("unique_consecutive", input)
    a = _values("unique_consecutive", x, "compare neighbours with x[1:] != x[:-1] (a mask "
                                         "of the same size)")
    if dim is None:
        rows, shape, d = a.reshape(-1, 1), a.shape, None
    else:
        d = norm_dim("unique_consecutive", dim, x.ndim)
        rest = int(np.prod([s for i, s in enumerate(a.shape) if i != d]))
        rows, shape = np.moveaxis(a, d, 0).reshape(a.shape[d], rest), None
    n = rows.shape[0]
    new = np.ones(n, bool)
    if n > 1 and rows.shape[1]:
        new[1:] = np.any(rows[1:] != rows[:-1], axis=1)
    elif n > 1:
        new[1:] = False
    group = np.cumsum(new) - 1
    counts = np.diff(np.append(np.flatnonzero(new), n)).astype(np.int64)
    if d is None:
        vals = rows[new, 0]
        inv = group.reshape(shape)
    else:
        vals = np.take(a, np.flatnonzero(new), axis=d)
        inv = group
    return _pack(_like(vals, x), inv, counts, return_inverse, return_counts)


def nonzero(input: Tensor, *, as_tuple: bool = False) -> Any:
    """The indices of the non-zero elements: an ``(n, ndim)`` int64 tensor, or with
    ``as_tuple`` one 1-D tensor per dim.

    >>> import kiln
    >>> kiln.nonzero(kiln.tensor([0, 3, 0, 5])).tolist()
    [[1], [3]]
    """
    x = _t("nonzero", input)
    a = _values("nonzero", x, "keep the shape with kiln.where(mask, x, 0)")
    if as_tuple:
        if a.ndim == 0:
            return (_int64(np.flatnonzero(a.reshape(1))),)
        return tuple(_int64(i) for i in np.nonzero(a))
    if a.ndim == 0:
        return _int64(np.zeros((int(bool(a)), 0)))
    return _int64(np.argwhere(a))


def argwhere(input: Tensor) -> Tensor:
    """The ``(n, ndim)`` indices of the non-zero elements (``nonzero``).

    >>> import kiln
    >>> kiln.argwhere(kiln.tensor([[1, 0], [0, 2]])).tolist()
    [[0, 0], [1, 1]]
    """
    x = _t("argwhere", input)
    _values("argwhere", x, "keep the shape with kiln.where(mask, x, 0)")
    return nonzero(x)


def masked_select(input: Tensor, mask: Tensor) -> Tensor:
    """The elements of ``input`` where ``mask`` (broadcast together) is True, as a 1-D tensor;
    the gradient flows back to the selected elements.

    >>> import kiln
    >>> kiln.masked_select(kiln.tensor([1.0, 2.0, 3.0]), kiln.tensor([True, False, True])).tolist()
    [1.0, 3.0]
    """
    x, m = _t("masked_select", input), _t("masked_select", mask, "mask")
    if not m.dtype.is_bool:
        raise DTypeError(f"masked_select: mask must be a bool tensor, got {m.dtype}")
    a = _values("masked_select", m, "keep the shape with kiln.where(mask, x, 0)")
    _values("masked_select", x, "keep the shape with kiln.where(mask, x, 0)")
    from kiln.core import shapeops

    x, _ = shapeops.broadcast_tensors(x, m)
    idx = np.flatnonzero(np.broadcast_to(a, x.shape))
    return ops.gather(F.reshape(x, (-1,)), _int64(idx), dim=0)


def bincount(input: Tensor, weights: Tensor | None = None, minlength: int = 0) -> Tensor:
    """How often each value 0, 1, ... occurs in the 1-D non-negative integer ``input``
    (summing ``weights`` instead of ones when given); length ``max(input) + 1`` or
    ``minlength``.

    >>> import kiln
    >>> kiln.bincount(kiln.tensor([0, 2, 2, 3])).tolist()
    [1, 0, 2, 1]
    """
    x = _t("bincount", input)
    if x.ndim != 1 or not x.dtype.is_integer:
        raise ShapeError(f"bincount: input must be a 1-D integer tensor, got {x.dtype} of "
                         f"shape {tuple(x.shape)}")
    a = _values("bincount", x, "give the length with kiln.zeros(n).scatter_add(0, x, ones)")
    if a.size and a.min() < 0:
        raise ValueArgumentError(f"bincount: input must be non-negative, got {int(a.min())}")
    if isinstance(minlength, bool) or not isinstance(minlength, int) or minlength < 0:
        raise ValueArgumentError(f"bincount: minlength must be an int >= 0, got {minlength!r}")
    n = max(int(a.max()) + 1 if a.size else 0, minlength)
    if weights is None:
        return _int64(np.bincount(a, minlength=n))
    w = _t("bincount", weights, "weights")
    if tuple(w.shape) != tuple(x.shape):
        raise ShapeError(f"bincount: weights must have input's shape {tuple(x.shape)}, got "
                         f"{tuple(w.shape)}")
    if not w.dtype.is_floating:
        w = w.to(dt.float64)
    zeros = creation.zeros(n, dtype=w.dtype)
    return zeros.scatter_add(0, x, w)


FUNCTIONS = ("unique", "unique_consecutive", "nonzero", "argwhere", "masked_select",
             "bincount")
METHODS = FUNCTIONS


def install(cls: type) -> None:
    """Attach the Tensor methods of this module to ``cls``."""
    glob = globals()
    for name in METHODS:
        setattr(cls, name, glob[name])
