"""torch's shape, stacking, splitting and comparison composites: ``hstack``/``vstack``,
``atleast_Nd``, ``movedim``, ``diff``, ``tensor_split``, ``kron``, ``meshgrid``,
``tensordot``, ``isclose``/``allclose``, ``aminmax``, ``var_mean`` and the like, plus the
no-ops of complex numbers on real tensors (``conj``, ``real``, ``resolve_neg``...).

Plain Python over primitives and the core's composites, so autograd, tracing and every
backend need nothing new; each is a ``kiln.X`` function and, where torch has it, a Tensor
method (installed by :func:`install`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from kiln.core import creation, mathops
from kiln.core import dtypes as dt
from kiln.core import functional as F
from kiln.core import prims as ops
from kiln.core.prims.shapes import broadcast_shapes as _broadcast
from kiln.core.prims.shapes import norm_dim
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError, ValueArgumentError


def _t(fn: str, x: Any, arg: str = "input") -> Tensor:
    if not isinstance(x, Tensor):
        raise ArgumentError(f"{fn}: {arg} must be a kiln.Tensor, got {type(x).__name__}")
    return x


def _seq(fn: str, tensors: Any) -> list[Tensor]:
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)) or not tensors:
        raise ArgumentError(f"{fn}: tensors must be a non-empty list or tuple of tensors, got "
                            f"{type(tensors).__name__}")
    return [_t(fn, x, "tensors") for x in tensors]


# ------------------------------------------------------------------------------------------
# dims


def movedim(input: Tensor, source: Any, destination: Any) -> Tensor:
    """Move dims ``source`` to positions ``destination`` (ints or sequences), keeping the
    order of the others (torch.movedim, also ``moveaxis``).

    >>> import kiln
    >>> kiln.movedim(kiln.zeros(2, 3, 4), 0, -1).shape
    (3, 4, 2)
    """
    x = _t("movedim", input)
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    if len(src) != len(dst):
        raise ArgumentError(f"movedim: source and destination must have the same length, got "
                            f"{len(src)} and {len(dst)}")
    src = [norm_dim("movedim", d, x.ndim) for d in src]
    dst = [norm_dim("movedim", d, x.ndim) for d in dst]
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ArgumentError(f"movedim: repeated dims in source {src} or destination {dst}")
    order: list[int | None] = [None] * x.ndim
    for s, d in zip(src, dst, strict=True):
        order[d] = s
    rest = iter(d for d in range(x.ndim) if d not in src)
    return F.permute(x, *[o if o is not None else next(rest) for o in order])


moveaxis = movedim


def ravel(input: Tensor) -> Tensor:
    """The elements as one dim (a copy where torch may return a view).

    >>> import kiln
    >>> kiln.ravel(kiln.ones(2, 3)).shape
    (6,)
    """
    return F.reshape(_t("ravel", input), (-1,))


def unflatten(input: Tensor, dim: int, sizes: Sequence[Any]) -> Tensor:
    """Split dim ``dim`` into ``sizes`` (one of them may be -1).

    >>> import kiln
    >>> kiln.zeros(2, 12).unflatten(1, (3, 4)).shape
    (2, 3, 4)
    """
    x = _t("unflatten", input)
    d = norm_dim("unflatten", dim, x.ndim)
    return F.reshape(x, (*x.shape[:d], *sizes, *x.shape[d + 1:]))


def _atleast(fn: str, n: int, tensors: tuple) -> Any:
    items = tensors[0] if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)) \
        else tensors
    out = []
    for x in items:
        x = _t(fn, x)
        if x.ndim == 0:
            x = F.reshape(x, (1,) * n)
        elif x.ndim == 1 and n >= 2:
            x = F.unsqueeze(x, 0) if n == 2 else F.reshape(x, (1, x.shape[0], 1))
        elif x.ndim == 2 and n == 3:
            x = F.unsqueeze(x, -1)
        out.append(x)
    if len(tensors) == 1 and isinstance(tensors[0], Tensor):
        return out[0]
    return tuple(out)


def atleast_1d(*tensors: Any) -> Any:
    """Each tensor with at least 1 dim (0-d becomes shape (1,)).

    >>> import kiln
    >>> kiln.atleast_1d(kiln.tensor(3.0)).shape
    (1,)
    """
    return _atleast("atleast_1d", 1, tensors)


def atleast_2d(*tensors: Any) -> Any:
    """Each tensor with at least 2 dims (1-d (n,) becomes (1, n)).

    >>> import kiln
    >>> kiln.atleast_2d(kiln.ones(3)).shape
    (1, 3)
    """
    return _atleast("atleast_2d", 2, tensors)


def atleast_3d(*tensors: Any) -> Any:
    """Each tensor with at least 3 dims ((n,) -> (1, n, 1), (m, n) -> (m, n, 1)).

    >>> import kiln
    >>> kiln.atleast_3d(kiln.ones(2, 3)).shape
    (2, 3, 1)
    """
    return _atleast("atleast_3d", 3, tensors)


# ------------------------------------------------------------------------------------------
# stacking and splitting


def hstack(tensors: Any) -> Tensor:
    """Concatenate along dim 1 (dim 0 for 1-d tensors).

    >>> import kiln
    >>> kiln.hstack([kiln.ones(2), kiln.zeros(3)]).shape
    (5,)
    """
    xs = _atleast("hstack", 1, tuple(_seq("hstack", tensors)))
    return F.cat(list(xs), 0 if xs[0].ndim == 1 else 1)


def vstack(tensors: Any) -> Tensor:
    """Concatenate along dim 0, 1-d tensors as rows.

    >>> import kiln
    >>> kiln.vstack([kiln.ones(3), kiln.zeros(3)]).shape
    (2, 3)
    """
    return F.cat(list(_atleast("vstack", 2, tuple(_seq("vstack", tensors)))), 0)


row_stack = vstack


def dstack(tensors: Any) -> Tensor:
    """Concatenate along dim 2, after :func:`atleast_3d`.

    >>> import kiln
    >>> kiln.dstack([kiln.ones(2, 3), kiln.zeros(2, 3)]).shape
    (2, 3, 2)
    """
    return F.cat(list(_atleast("dstack", 3, tuple(_seq("dstack", tensors)))), 2)


def column_stack(tensors: Any) -> Tensor:
    """Concatenate along dim 1, 0-d and 1-d tensors as columns.

    >>> import kiln
    >>> kiln.column_stack([kiln.ones(3), kiln.zeros(3, 2)]).shape
    (3, 3)
    """
    xs = []
    for x in _seq("column_stack", tensors):
        xs.append(F.reshape(x, (-1, 1)) if x.ndim <= 1 else x)
    return F.cat(xs, 1)


def tensor_split(input: Tensor, indices_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
    """Split into ``n`` nearly equal parts (the first ``len % n`` one longer), or at the
    given indices (torch.tensor_split).

    >>> import kiln
    >>> [p.shape for p in kiln.tensor_split(kiln.arange(7), 3)]
    [(3,), (2,), (2,)]
    """
    x = _t("tensor_split", input)
    d = norm_dim("tensor_split", dim, x.ndim)
    size = x.shape[d]
    if isinstance(indices_or_sections, Tensor):
        indices_or_sections = indices_or_sections.tolist()
    if isinstance(indices_or_sections, int) and not isinstance(indices_or_sections, bool):
        n = indices_or_sections
        if n <= 0:
            raise ValueArgumentError(f"tensor_split: sections must be >= 1, got {n}")
        base, extra = divmod(int(size), n)
        bounds = [0]
        for k in range(n):
            bounds.append(bounds[-1] + base + (1 if k < extra else 0))
    elif isinstance(indices_or_sections, (list, tuple)):
        bounds = [0, *[min(max(int(i) if i >= 0 else int(size) + int(i), 0), int(size))
                       for i in indices_or_sections], int(size)]
    else:
        raise ArgumentError(f"tensor_split: indices_or_sections must be an int or a sequence "
                            f"of ints, got {type(indices_or_sections).__name__}")
    return tuple(F.narrow(x, d, lo, max(hi - lo, 0)) for lo, hi in zip(bounds, bounds[1:]))


def _split_n(fn: str, x: Tensor, sections: Any, dim: int, min_ndim: int) -> tuple:
    x = _t(fn, x)
    if x.ndim < min_ndim:
        raise ShapeError(f"{fn}: input must have at least {min_ndim} dims, got shape "
                         f"{tuple(x.shape)}")
    if isinstance(sections, int) and x.shape[dim] % sections:
        raise ValueArgumentError(f"{fn}: dim {dim} of size {x.shape[dim]} does not split "
                                 f"into {sections} equal parts")
    return tensor_split(x, sections, dim)


def hsplit(input: Tensor, sections: Any) -> tuple[Tensor, ...]:
    """:func:`tensor_split` along dim 1 (dim 0 for 1-d), into equal parts when an int.

    >>> import kiln
    >>> [p.shape for p in kiln.hsplit(kiln.ones(2, 4), 2)]
    [(2, 2), (2, 2)]
    """
    return _split_n("hsplit", input, sections, 0 if input.ndim == 1 else 1, 1)


def vsplit(input: Tensor, sections: Any) -> tuple[Tensor, ...]:
    """:func:`tensor_split` along dim 0 of a tensor of 2 or more dims.

    >>> import kiln
    >>> [p.shape for p in kiln.vsplit(kiln.ones(4, 2), [1])]
    [(1, 2), (3, 2)]
    """
    return _split_n("vsplit", input, sections, 0, 2)


def dsplit(input: Tensor, sections: Any) -> tuple[Tensor, ...]:
    """:func:`tensor_split` along dim 2 of a tensor of 3 or more dims.

    >>> import kiln
    >>> [p.shape for p in kiln.dsplit(kiln.ones(1, 2, 4), 2)]
    [(1, 2, 2), (1, 2, 2)]
    """
    return _split_n("dsplit", input, sections, 2, 3)


def split_with_sizes(input: Tensor, split_sizes: Sequence[int], dim: int = 0
                     ) -> tuple[Tensor, ...]:
    """Split into parts of the given sizes, which must add up to the dim's size.

    >>> import kiln
    >>> [p.shape for p in kiln.split_with_sizes(kiln.ones(5), [2, 3])]
    [(2,), (3,)]
    """
    x = _t("split_with_sizes", input)
    if not isinstance(split_sizes, (list, tuple)):
        raise ArgumentError(f"split_with_sizes: split_sizes must be a list of ints, got "
                            f"{type(split_sizes).__name__}")
    return F.split(x, list(split_sizes), dim)


# ------------------------------------------------------------------------------------------
# flips, rotations, differences, products


def fliplr(input: Tensor) -> Tensor:
    """Reverse dim 1 (columns).

    >>> import kiln
    >>> kiln.fliplr(kiln.tensor([[1, 2, 3]])).tolist()
    [[3, 2, 1]]
    """
    x = _t("fliplr", input)
    if x.ndim < 2:
        raise ShapeError(f"fliplr: input must have at least 2 dims, got shape {tuple(x.shape)}")
    return F.flip(x, (1,))


def flipud(input: Tensor) -> Tensor:
    """Reverse dim 0 (rows).

    >>> import kiln
    >>> kiln.flipud(kiln.tensor([1, 2, 3])).tolist()
    [3, 2, 1]
    """
    x = _t("flipud", input)
    if x.ndim < 1:
        raise ShapeError("flipud: input must have at least 1 dim, got a 0-d tensor")
    return F.flip(x, (0,))


def rot90(input: Tensor, k: int = 1, dims: Sequence[int] = (0, 1)) -> Tensor:
    """Rotate by 90 degrees ``k`` times in the plane of ``dims``, from the first towards
    the second.

    >>> import kiln
    >>> kiln.rot90(kiln.tensor([[1, 2], [3, 4]])).tolist()
    [[2, 4], [1, 3]]
    """
    x = _t("rot90", input)
    if len(dims) != 2:
        raise ArgumentError(f"rot90: dims must name two dims, got {list(dims)}")
    a, b = (norm_dim("rot90", d, x.ndim) for d in dims)
    if a == b:
        raise ArgumentError(f"rot90: dims must differ, got {list(dims)}")
    k %= 4
    if k == 1:
        return F.transpose(F.flip(x, (b,)), a, b)
    if k == 2:
        return F.flip(x, (a, b))
    if k == 3:
        return F.flip(F.transpose(x, a, b), (b,))
    return x


def diff(input: Tensor, n: int = 1, dim: int = -1, prepend: Tensor | None = None,
         append: Tensor | None = None) -> Tensor:
    """The ``n``-th forward difference along ``dim``, after concatenating ``prepend`` and
    ``append`` (booleans give ``!=``, as torch's).

    >>> import kiln
    >>> kiln.diff(kiln.tensor([1, 4, 9, 16])).tolist()
    [3, 5, 7]
    """
    x = _t("diff", input)
    if x.ndim == 0:
        raise ShapeError("diff: input must have at least 1 dim, got a 0-d tensor")
    d = norm_dim("diff", dim, x.ndim)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueArgumentError(f"diff: n must be an int >= 0, got {n!r}")
    if n == 0:  # torch returns the input itself, prepend and append left out
        return x
    parts = [p for p in (prepend, x, append) if p is not None]
    if len(parts) > 1:
        x = F.cat([_t("diff", p) if p.ndim == x.ndim else
                   mathops.broadcast_to(p, (*x.shape[:d], 1, *x.shape[d + 1:])) for p in parts], d)
    for _ in range(n):
        m = x.shape[d]
        if m == 0:
            break
        hi, lo = F.narrow(x, d, 1, m - 1), F.narrow(x, d, 0, m - 1)
        x = ops.ne(hi, lo) if x.dtype.is_bool else ops.sub(hi, lo)
    return x


def kron(input: Tensor, other: Tensor) -> Tensor:
    """The Kronecker product: every element of ``input`` times the whole of ``other``.

    >>> import kiln
    >>> kiln.kron(kiln.tensor([1, 2]), kiln.tensor([1, 10])).tolist()
    [1, 10, 2, 20]
    """
    a, b = _t("kron", input), _t("kron", other, "other")
    n = max(a.ndim, b.ndim)
    a = F.reshape(a, (1,) * (n - a.ndim) + tuple(a.shape))
    b = F.reshape(b, (1,) * (n - b.ndim) + tuple(b.shape))
    # interleave: a's dim i -> 2i, b's dim i -> 2i+1
    ea = F.reshape(a, tuple(s for d in a.shape for s in (d, 1)))
    eb = F.reshape(b, tuple(s for d in b.shape for s in (1, d)))
    out = ops.mul(ea, eb)
    return F.reshape(out, tuple(sa * sb for sa, sb in zip(a.shape, b.shape, strict=True)))


def meshgrid(*tensors: Any, indexing: str = "ij") -> tuple[Tensor, ...]:
    """Coordinate grids from 1-d tensors; ``indexing="ij"`` (matrix, torch's default) or
    ``"xy"`` (Cartesian: the first two dims swapped).

    >>> import kiln
    >>> [g.shape for g in kiln.meshgrid(kiln.arange(2), kiln.arange(3))]
    [(2, 3), (2, 3)]
    """
    if indexing not in ("ij", "xy"):
        raise ValueArgumentError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    items = tensors[0] if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)) \
        else tensors
    xs = [F.reshape(_t("meshgrid", x, "tensors"), (-1,)) if x.ndim == 0 else x for x in items]
    for x in xs:
        if x.ndim != 1:
            raise ShapeError(f"meshgrid: every tensor must be 0-d or 1-d, got shape "
                             f"{tuple(x.shape)}")
    shape = tuple(x.shape[0] for x in xs)
    grids = []
    for i, x in enumerate(xs):
        view = [1] * len(xs)
        view[i] = x.shape[0]
        grids.append(mathops.broadcast_to(F.reshape(x, tuple(view)), shape))
    if indexing == "xy" and len(xs) >= 2:  # Cartesian: the "ij" grids with dims 0, 1 swapped
        grids = [F.transpose(g, 0, 1) for g in grids]
    return tuple(grids)


def cartesian_prod(*tensors: Tensor) -> Tensor:
    """Every combination of one element from each 1-d tensor, as rows (one tensor: itself).

    >>> import kiln
    >>> kiln.cartesian_prod(kiln.tensor([1, 2]), kiln.tensor([3, 4])).tolist()
    [[1, 3], [1, 4], [2, 3], [2, 4]]
    """
    if len(tensors) == 1:
        return _t("cartesian_prod", tensors[0], "tensors")
    grids = meshgrid(*tensors, indexing="ij")
    return F.stack([F.reshape(g, (-1,)) for g in grids], 1)


def _tri_indices(fn: str, row: int, col: int, offset: int, lower: bool,
                 dtype: Any) -> Tensor:
    for name, v in (("row", row), ("col", col), ("offset", offset)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ArgumentError(f"{fn}: {name} must be an int, got {type(v).__name__}")
    if row < 0 or col < 0:
        raise ValueArgumentError(f"{fn}: row and col must be >= 0, got {row} and {col}")
    r, c = np.tril_indices(row, offset, col) if lower else np.triu_indices(row, offset, col)
    return creation.tensor(np.stack([r, c]).astype(np.int64),
                           dtype=dtype if dtype is not None else dt.int64)


def tril_indices(row: int, col: int, offset: int = 0, *, dtype: Any = None,
                 device: Any = None) -> Tensor:
    """The (2, N) row and column indices of the lower triangle of a ``row`` x ``col``
    matrix, row by row.

    >>> import kiln
    >>> kiln.tril_indices(2, 2).tolist()
    [[0, 1, 1], [0, 0, 1]]
    """
    return _tri_indices("tril_indices", row, col, offset, True, dtype)


def triu_indices(row: int, col: int, offset: int = 0, *, dtype: Any = None,
                 device: Any = None) -> Tensor:
    """The (2, N) row and column indices of the upper triangle of a ``row`` x ``col``
    matrix, row by row.

    >>> import kiln
    >>> kiln.triu_indices(2, 2).tolist()
    [[0, 0, 1], [0, 1, 1]]
    """
    return _tri_indices("triu_indices", row, col, offset, False, dtype)


def tensordot(a: Tensor, b: Tensor, dims: Any = 2) -> Tensor:
    """Contract the last ``dims`` dims of ``a`` with the first of ``b``, or the dim lists
    ``dims = (dims_a, dims_b)``.

    >>> import kiln
    >>> kiln.tensordot(kiln.ones(2, 3, 4), kiln.ones(3, 4, 5)).shape
    (2, 5)
    """
    a, b = _t("tensordot", a, "a"), _t("tensordot", b, "b")
    if isinstance(dims, int) and not isinstance(dims, bool):
        if dims < 0 or dims > min(a.ndim, b.ndim):
            raise ValueArgumentError(f"tensordot: dims must be in [0, {min(a.ndim, b.ndim)}],"
                                     f" got {dims}")
        da, db = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    elif isinstance(dims, (list, tuple)) and len(dims) == 2:
        da = [dims[0]] if isinstance(dims[0], int) else list(dims[0])
        db = [dims[1]] if isinstance(dims[1], int) else list(dims[1])
        if len(da) != len(db):
            raise ArgumentError(f"tensordot: both dim lists must have the same length, got "
                                f"{da} and {db}")
        da = [norm_dim("tensordot", d, a.ndim) for d in da]
        db = [norm_dim("tensordot", d, b.ndim) for d in db]
    else:
        raise ArgumentError(f"tensordot: dims must be an int or two lists of dims, got "
                            f"{dims!r}")
    for i, j in zip(da, db, strict=True):
        if a.shape[i] != b.shape[j]:
            raise ShapeError(f"tensordot: a's dim {i} ({a.shape[i]}) does not match b's dim "
                             f"{j} ({b.shape[j]})")
    free_a = [d for d in range(a.ndim) if d not in da]
    free_b = [d for d in range(b.ndim) if d not in db]
    k = math.prod(int(a.shape[d]) for d in da)
    ma = F.reshape(F.permute(a, *free_a, *da), (-1, k))
    mb = F.reshape(F.permute(b, *db, *free_b), (k, -1))
    out = F.matmul(ma, mb)
    return F.reshape(out, (*[a.shape[d] for d in free_a], *[b.shape[d] for d in free_b]))


def inner(input: Tensor, other: Tensor) -> Tensor:
    """Sum-product over the last dim of both (0-d operands multiply).

    >>> import kiln
    >>> kiln.inner(kiln.tensor([1.0, 2.0]), kiln.tensor([3.0, 4.0])).item()
    11.0
    """
    a, b = _t("inner", input), _t("inner", other, "other")
    if a.ndim == 0 or b.ndim == 0:
        return ops.mul(a, b)
    return tensordot(a, b, ([-1], [-1]))


def vdot(input: Tensor, other: Tensor) -> Tensor:
    """The dot product of two 1-d tensors (for real tensors, :func:`kiln.dot`).

    >>> import kiln
    >>> kiln.vdot(kiln.tensor([1.0, 2.0]), kiln.tensor([3.0, 4.0])).item()
    11.0
    """
    return mathops.dot(_t("vdot", input), _t("vdot", other, "other"))


def trapezoid_steps(fn: str, x: Any, dim: int, y_ndim: int, d: int) -> Tensor:
    """The spacings x[i+1] - x[i] along ``dim`` of sample points ``x`` (1-d, or shaped as
    ``y``), shaped to broadcast against ``y``'s pairs along its dim ``d``."""
    x = _t(fn, x, "x")
    xd = norm_dim(fn, dim, x.ndim) if x.ndim > 1 else 0
    step = ops.sub(F.narrow(x, xd, 1, x.shape[xd] - 1), F.narrow(x, xd, 0, x.shape[xd] - 1))
    if x.ndim == 1 and y_ndim > 1:
        step = F.reshape(step, (-1,) + (1,) * (y_ndim - 1 - d))
    return step


def trapezoid(y: Tensor, x: Tensor | None = None, *, dx: float | None = None,
              dim: int = -1) -> Tensor:
    """The trapezoid rule along ``dim``: with sample points ``x``, or spacing ``dx``
    (default 1). Also ``trapz``.

    >>> import kiln
    >>> kiln.trapezoid(kiln.tensor([1.0, 2.0, 3.0])).item()
    4.0
    """
    y = _t("trapezoid", y, "y")
    d = norm_dim("trapezoid", dim, y.ndim)
    m = y.shape[d]
    if m == 0:
        return F.sum(y, d)
    pair = ops.add(F.narrow(y, d, 1, m - 1), F.narrow(y, d, 0, m - 1))
    if x is not None:
        step = trapezoid_steps("trapezoid", x, dim, y.ndim, d)
        return ops.mul(F.sum(ops.mul(pair, step), d), 0.5)
    return ops.mul(F.sum(pair, d), 0.5 * (1.0 if dx is None else float(dx)))


trapz = trapezoid


# ------------------------------------------------------------------------------------------
# comparisons and statistics


def isclose(input: Tensor, other: Any, rtol: float = 1e-5, atol: float = 1e-8,
            equal_nan: bool = False) -> Tensor:
    """``|input - other| <= atol + rtol * |other|`` elementwise; equal infinities are close,
    NaNs only with ``equal_nan``.

    >>> import kiln
    >>> kiln.isclose(kiln.tensor([1.0, 2.0]), kiln.tensor([1.0 + 1e-9, 2.1])).tolist()
    [True, False]
    """
    a = _t("isclose", input)
    b = other if isinstance(other, Tensor) else creation.tensor(other, dtype=a.dtype)
    if not a.dtype.is_floating and not b.dtype.is_floating:
        return ops.eq(a, b)
    close = ops.le(ops.abs(ops.sub(a, b)), ops.add(ops.mul(ops.abs(b), rtol), atol))
    close = ops.logical_or(close, ops.eq(a, b))  # equal infinities
    if equal_nan:
        close = ops.logical_or(close, ops.logical_and(ops.ne(a, a), ops.ne(b, b)))
    return close


def allclose(input: Tensor, other: Any, rtol: float = 1e-5, atol: float = 1e-8,
             equal_nan: bool = False) -> bool:
    """Whether every element is :func:`isclose` (a Python bool).

    >>> import kiln
    >>> kiln.allclose(kiln.ones(3), kiln.ones(3) + 1e-9)
    True
    """
    return bool(isclose(input, other, rtol, atol, equal_nan).all().item())


def equal(input: Tensor, other: Tensor) -> bool:
    """Whether both have the same shape and the same elements (a Python bool).

    >>> import kiln
    >>> kiln.equal(kiln.tensor([1, 2]), kiln.tensor([1, 2])), kiln.equal(kiln.ones(2), kiln.ones(3))
    (True, False)
    """
    a, b = _t("equal", input), _t("equal", other, "other")
    if tuple(a.shape) != tuple(b.shape):
        return False
    return bool(ops.eq(a, b).all().item())


def aminmax(input: Tensor, *, dim: int | None = None, keepdim: bool = False
            ) -> tuple[Tensor, Tensor]:
    """``(amin, amax)`` over ``dim`` or everything.

    >>> import kiln
    >>> [t.item() for t in kiln.aminmax(kiln.tensor([3.0, -1.0, 2.0]))]
    [-1.0, 3.0]
    """
    x = _t("aminmax", input)
    return F.amin(x, dim, keepdim), F.amax(x, dim, keepdim)


def var_mean(input: Tensor, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *,
             correction: Any = None) -> tuple[Tensor, Tensor]:
    """``(var, mean)`` over ``dim`` (the variance as :func:`kiln.var` takes it).

    >>> import kiln
    >>> [t.item() for t in kiln.var_mean(kiln.tensor([1.0, 2.0, 3.0]))]
    [1.0, 2.0]
    """
    x = _t("var_mean", input)
    if isinstance(dim, bool):  # torch's var_mean(input, unbiased) overload
        dim, unbiased = None, dim
    return (F.var(x, dim, unbiased, keepdim, correction=correction), F.mean(x, dim, keepdim))


def std_mean(input: Tensor, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *,
             correction: Any = None) -> tuple[Tensor, Tensor]:
    """``(std, mean)`` over ``dim`` (the deviation as :func:`kiln.std` takes it).

    >>> import kiln
    >>> [t.item() for t in kiln.std_mean(kiln.tensor([1.0, 2.0, 3.0]))]
    [1.0, 2.0]
    """
    x = _t("std_mean", input)
    if isinstance(dim, bool):  # torch's std_mean(input, unbiased) overload
        dim, unbiased = None, dim
    return (F.std(x, dim, unbiased, keepdim, correction=correction), F.mean(x, dim, keepdim))


def broadcast_shapes(*shapes: Any) -> tuple:
    """The shape the given shapes broadcast to (an error naming them if they do not).

    >>> import kiln
    >>> kiln.broadcast_shapes((2, 1), (3,))
    (2, 3)
    """
    out: tuple = ()
    for s in shapes:
        s = (s,) if isinstance(s, int) else tuple(s)
        out = tuple(_broadcast("broadcast_shapes", out, s))
    return out


def broadcast_tensors(*tensors: Tensor) -> tuple[Tensor, ...]:
    """The tensors broadcast to their common shape.

    >>> import kiln
    >>> [t.shape for t in kiln.broadcast_tensors(kiln.ones(2, 1), kiln.ones(3))]
    [(2, 3), (2, 3)]
    """
    xs = [_t("broadcast_tensors", x, "tensors") for x in tensors]
    shape = broadcast_shapes(*[x.shape for x in xs])
    return tuple(mathops.broadcast_to(x, shape) for x in xs)


# ------------------------------------------------------------------------------------------
# complex-number functions on real tensors, and new_* constructors


def conj(input: Tensor) -> Tensor:
    """The complex conjugate: ``input`` itself for the real tensors Kiln has (also
    ``conj_physical``, ``resolve_conj``, ``resolve_neg``).

    >>> import kiln
    >>> x = kiln.ones(2)
    >>> kiln.conj(x) is x
    True
    """
    return _t("conj", input)


conj_physical = resolve_conj = resolve_neg = conj


def real(input: Tensor) -> Tensor:
    """The real part: ``input`` itself for a real tensor.

    >>> import kiln
    >>> kiln.real(kiln.tensor([1.5])).tolist()
    [1.5]
    """
    return _t("real", input)


def isreal(input: Tensor) -> Tensor:
    """True everywhere (Kiln's tensors are real).

    >>> import kiln
    >>> kiln.isreal(kiln.tensor([1.0, 2.0])).tolist()
    [True, True]
    """
    x = _t("isreal", input)
    return ops.eq(x, x) if not x.dtype.is_floating else ops.logical_or(ops.eq(x, x),
                                                                        ops.ne(x, x))


def angle(input: Tensor) -> Tensor:
    """The argument of a real number: pi for negatives, 0 otherwise (NaN stays NaN).

    >>> import kiln
    >>> kiln.angle(kiln.tensor([-2.0, 3.0])).tolist()
    [3.1415927410125732, 0.0]
    """
    x = _t("angle", input)
    xf = x if x.dtype.is_floating else ops.cast(x, dtype=dt.to_float(x.dtype))
    out = ops.where(ops.lt(xf, 0.0), math.pi, ops.mul(xf, 0.0))
    return ops.where(ops.ne(xf, xf), xf, out)


def _new(self: Tensor, size: tuple, fill: Any, dtype: Any, requires_grad: bool) -> Tensor:
    if len(size) == 1 and isinstance(size[0], (list, tuple)):
        size = tuple(size[0])
    return creation.full(size, fill, dtype=dtype if dtype is not None else self.dtype,
                         requires_grad=requires_grad)


def new_zeros(self: Tensor, *size: Any, dtype: Any = None, device: Any = None,
              requires_grad: bool = False) -> Tensor:
    """Zeros of ``size`` with this tensor's dtype (unless ``dtype`` is given).

    >>> import kiln
    >>> kiln.ones(2, dtype="int64").new_zeros(3).tolist()
    [0, 0, 0]
    """
    return _new(self, size, 0, dtype, requires_grad)


def new_ones(self: Tensor, *size: Any, dtype: Any = None, device: Any = None,
             requires_grad: bool = False) -> Tensor:
    """Ones of ``size`` with this tensor's dtype (unless ``dtype`` is given).

    >>> import kiln
    >>> kiln.zeros(1).new_ones((2,)).tolist()
    [1.0, 1.0]
    """
    return _new(self, size, 1, dtype, requires_grad)


def new_full(self: Tensor, size: Any, fill_value: Any, *, dtype: Any = None,
             device: Any = None, requires_grad: bool = False) -> Tensor:
    """``fill_value`` in the shape ``size`` with this tensor's dtype (unless ``dtype``).

    >>> import kiln
    >>> kiln.zeros(1).new_full((2,), 7.0).tolist()
    [7.0, 7.0]
    """
    return _new(self, tuple(size), fill_value, dtype, requires_grad)


# Names installed as kiln.X functions; METHODS also as Tensor methods (torch has them there).
FUNCTIONS = ("movedim", "moveaxis", "ravel", "unflatten", "atleast_1d", "atleast_2d",
             "atleast_3d", "hstack", "vstack", "row_stack", "dstack", "column_stack",
             "tensor_split", "hsplit", "vsplit", "dsplit", "split_with_sizes", "fliplr",
             "flipud", "rot90", "diff", "kron", "meshgrid", "cartesian_prod", "tril_indices",
             "triu_indices", "tensordot", "inner", "vdot", "trapezoid", "trapz", "isclose",
             "allclose", "equal", "aminmax", "var_mean", "std_mean", "broadcast_shapes",
             "broadcast_tensors", "conj", "conj_physical", "resolve_conj", "resolve_neg",
             "real", "isreal", "angle")
METHODS = ("movedim", "moveaxis", "ravel", "unflatten", "tensor_split", "hsplit", "vsplit",
           "dsplit", "split_with_sizes", "fliplr", "flipud", "rot90", "diff", "kron", "inner",
           "isclose", "allclose", "equal", "aminmax", "conj", "conj_physical", "resolve_conj",
           "resolve_neg", "isreal", "angle", "new_zeros", "new_ones", "new_full")


def install(cls: type) -> None:
    """Attach the Tensor methods of this module to ``cls``."""
    glob = globals()
    for name in METHODS:
        setattr(cls, name, glob[name])
