"""``kiln.linalg``: vector and matrix norms (torch.linalg's ``vector_norm``, ``matrix_norm``,
``norm``) and ``kiln.norm``, as composites of reductions.

Norms that need singular values (``ord=2``, ``-2`` and ``'nuc'`` of a matrix) take them
from ``svdvals``. The decompositions and solves (``inv``, ``det``, ``solve``, ``cholesky``,
``qr``, ``svd``, ``eigh``, ``pinv``, ``lstsq`` ...) are :mod:`kiln.core.linalg_decomp`'s,
here under their torch.linalg names.

>>> import kiln
>>> kiln.linalg.vector_norm(kiln.tensor([3.0, 4.0])).item()
5.0
"""

from __future__ import annotations

import math
from typing import Any

from kiln.core import functional as F
from kiln.core import prims as ops
from kiln.core.prims.shapes import fmt_shape, norm_dims
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, DTypeError, ShapeError, ValueArgumentError


def _input(fn: str, x: Any, dtype: Any) -> Tensor:
    if not isinstance(x, Tensor):
        raise ArgumentError(f"{fn}: input must be a kiln.Tensor, got {type(x).__name__}")
    if dtype is not None:
        x = x.to(dtype)
    if not x.dtype.is_floating:
        raise DTypeError(f"{fn}: input must be floating point, got {x.dtype}; pass dtype= or "
                         "convert with .float()")
    return x


def _dim_arg(dim: Any) -> Any:
    if isinstance(dim, list):
        return tuple(dim)
    return dim


def vector_norm(x: Tensor, ord: Any = 2, dim: Any = None, keepdim: bool = False, *,  # noqa: A002
                dtype: Any = None) -> Tensor:
    """The ``ord``-norm of ``x`` over ``dim`` (all elements when None): sum(|x|^ord)^(1/ord);
    inf / -inf give max / min of |x|, 0 the count of nonzeros.

    >>> import kiln
    >>> x = kiln.tensor([[3.0, -4.0], [0.0, 1.0]])
    >>> LA = kiln.linalg
    >>> LA.vector_norm(x, ord=1, dim=1).tolist(), LA.vector_norm(x, float("inf")).item()
    ([7.0, 1.0], 4.0)
    """
    x = _input("vector_norm", x, dtype)
    dims = norm_dims("vector_norm", _dim_arg(dim), x.ndim)
    if isinstance(ord, bool) or not isinstance(ord, (int, float)):
        raise ArgumentError(f"vector_norm: ord must be a number, got {type(ord).__name__}")
    a = ops.abs(x)
    if ord == 2:
        out = F.sqrt_or_zero_grad(ops.sum(x * x, dims=dims, keepdim=keepdim))
    elif ord == 1:
        out = ops.sum(a, dims=dims, keepdim=keepdim)
    elif ord == math.inf:
        out = _extreme("vector_norm", ops.max, a, dims, keepdim, ord)
    elif ord == -math.inf:
        out = _extreme("vector_norm", ops.min, a, dims, keepdim, ord)
    elif ord == 0:
        out = ops.sum(ops.ne(x, 0.0).to(x.dtype), dims=dims, keepdim=keepdim)
    else:
        # |x|^p is 0 with gradient 0 at x == 0 for p > 0 (pow's rule), so no special case.
        out = ops.sum(a ** float(ord), dims=dims, keepdim=keepdim) ** (1.0 / ord)
    return out


def _extreme(fn: str, reduce: Any, a: Tensor, dims: tuple, keepdim: bool, ord: Any) -> Tensor:
    if any(a.shape[d] == 0 for d in dims) or (a.ndim and not dims and a.numel() == 0):
        raise ShapeError(f"{fn}: ord={ord} of an empty dim has no value (shape "
                         f"{fmt_shape(a.shape)})")
    return reduce(a, dims=dims, keepdim=keepdim)


_SVD_ORDS = (2, -2, "nuc")


def matrix_norm(A: Tensor, ord: Any = "fro", dim: Any = (-2, -1), keepdim: bool = False, *,  # noqa: A002
                dtype: Any = None) -> Tensor:
    """A matrix norm over the two dims ``dim``: 'fro' (Frobenius), 1 / -1 (max / min column
    sum of |A|), inf / -inf (max / min row sum), 2 / -2 (largest / smallest singular value),
    'nuc' (their sum).

    >>> import kiln
    >>> A = kiln.tensor([[1.0, -2.0], [3.0, 4.0]])
    >>> LA = kiln.linalg
    >>> LA.matrix_norm(A, ord=1).item(), LA.matrix_norm(A, ord=float("inf")).item()
    (6.0, 7.0)
    """
    A = _input("matrix_norm", A, dtype)
    if A.ndim < 2:
        raise ShapeError(f"matrix_norm: input must have at least 2 dims, got shape "
                         f"{fmt_shape(A.shape)}")
    dim = tuple(_dim_arg(dim))
    if len(dim) != 2:
        raise ArgumentError(f"matrix_norm: dim must be a pair of dims, got {dim}")
    d0, d1 = (norm_dims("matrix_norm", (d,), A.ndim)[0] for d in dim)
    if d0 == d1:
        raise ValueArgumentError(f"matrix_norm: dim must name two different dims, got {dim}")
    if ord == "fro":
        return vector_norm(A, 2, (d0, d1), keepdim)
    if ord in _SVD_ORDS:
        return _svd_norm(A, ord, d0, d1, keepdim)
    if ord not in (1, -1, math.inf, -math.inf):
        raise ValueArgumentError(f"matrix_norm: ord must be 'fro', 'nuc', 1, -1, 2, -2, inf "
                                 f"or -inf, got {ord!r}")
    # 1-norms sum over rows (d0) then take the extreme column; inf-norms the other way.
    summed, other = (d0, d1) if abs(ord) == 1 else (d1, d0)
    sums = ops.sum(ops.abs(A), dims=(summed,), keepdim=True)
    reduce = ops.max if ord > 0 else ops.min
    if sums.shape[other] == 0:  # an empty matrix has norm 0 (torch)
        out = ops.sum(sums, dims=(other,), keepdim=True)
    else:
        out = _extreme("matrix_norm", reduce, sums, (other,), True, ord)
    return out if keepdim else F.squeeze(out, (d0, d1))


def norm(A: Tensor, ord: Any = None, dim: Any = None, keepdim: bool = False, *,  # noqa: A002
         dtype: Any = None) -> Tensor:
    """torch.linalg.norm: a vector norm (``dim`` an int, or None on a 1-D input, or
    ``ord`` None over everything) or a matrix norm (``dim`` a pair, or None on a 2-D input).

    >>> import kiln
    >>> kiln.linalg.norm(kiln.tensor([[3.0, 4.0]])).item()
    5.0
    """
    if isinstance(dim, int):
        dim = (dim,)
    if dim is not None and len(tuple(dim)) == 2 or (dim is None and ord is not None and
                                                       getattr(A, "ndim", 0) == 2):
        return matrix_norm(A, "fro" if ord is None else ord, (-2, -1) if dim is None else dim,
                           keepdim, dtype=dtype)
    if dim is None and ord is not None and getattr(A, "ndim", 0) != 1:
        raise ShapeError(f"linalg.norm: with ord={ord!r} and no dim, input must be 1-D or 2-D, "
                         f"got shape {fmt_shape(A.shape)}")
    return vector_norm(A, 2 if ord is None else ord, dim, keepdim, dtype=dtype)


def torch_norm(input: Tensor, p: Any = "fro", dim: Any = None, keepdim: bool = False,
               dtype: Any = None) -> Tensor:
    """``kiln.norm`` (torch.norm): a p-norm over ``dim`` (all elements when None); 'fro' is
    the 2-norm over the given dims; 'nuc' the nuclear norm (sum of singular values).

    >>> import kiln
    >>> kiln.norm(kiln.tensor([[3.0, 4.0]])).item(), kiln.norm(kiln.tensor([[3.0, -4.0]]), 1).item()
    (5.0, 7.0)
    """
    if isinstance(dim, int):
        dim = (dim,)
    if p == "fro":
        return vector_norm(input, 2, dim, keepdim, dtype=dtype)
    if p == "nuc":
        if dim is None and getattr(input, "ndim", 0) != 2:
            raise ShapeError(f"norm: p='nuc' without dim needs a 2-D input, got shape "
                             f"{fmt_shape(input.shape)}")
        return matrix_norm(input, "nuc", (-2, -1) if dim is None else dim, keepdim,
                           dtype=dtype)
    if p is None:
        p = 2
    return vector_norm(input, p, dim, keepdim, dtype=dtype)


def cross(input: Tensor, other: Tensor, *, dim: int = -1) -> Tensor:  # noqa: A002
    """The cross product of 3-vectors along ``dim`` (default the last), broadcasting the rest.

    >>> import kiln
    >>> kiln.linalg.cross(kiln.tensor([0.0, 1.0, 0.0]), kiln.tensor([0.0, 0.0, 1.0])).tolist()
    [1.0, 0.0, 0.0]
    """
    from kiln.core import diagops

    return diagops.cross(input, other, dim)


def diagonal(A: Tensor, *, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:
    """The diagonal ``offset`` of the matrices in the last two dims (``kiln.diagonal`` with
    other defaults).

    >>> import kiln
    >>> kiln.linalg.diagonal(kiln.tensor([[1, 2], [3, 4]])).tolist()
    [1, 4]
    """
    from kiln.core import diagops

    return diagops.diagonal(A, offset, dim1, dim2)


def _svd_norm(A: Tensor, ord: Any, d0: int, d1: int, keepdim: bool) -> Tensor:  # noqa: A002
    """The 2-norm (largest singular value), -2 (smallest) or nuclear norm (their sum) of the
    matrices in dims ``d0``, ``d1``."""
    from kiln.core.linalg_decomp import svdvals

    rest = [d for d in range(A.ndim) if d not in (d0, d1)]
    S = svdvals(A.permute(*rest, d0, d1))
    if ord == "nuc":
        out = S.sum(-1)
    elif S.shape[-1] == 0:
        out = S.sum(-1)
    else:
        out = S[..., 0] if ord == 2 else S[..., -1]
    if keepdim:
        for d in sorted((d0, d1)):
            out = out.unsqueeze(d)
    return out


from kiln.core.linalg_decomp import (  # noqa: E402  (the decompositions are kiln.linalg.X too)
    cholesky,
    cholesky_ex,
    cond,
    det,
    eigh,
    eigvalsh,
    householder_product,
    inv,
    inv_ex,
    lstsq,
    lu,
    lu_factor,
    lu_factor_ex,
    lu_solve,
    matrix_power,
    matrix_rank,
    multi_dot,
    pinv,
    qr,
    slogdet,
    solve,
    solve_ex,
    solve_triangular,
    svd,
    svdvals,
    tensorinv,
    tensorsolve,
    vander,
    vecdot,
)

__all__ = ["vector_norm", "matrix_norm", "norm", "cross", "diagonal", "cholesky",
           "cholesky_ex", "cond", "det", "eigh", "eigvalsh", "householder_product", "inv",
           "inv_ex", "lstsq", "lu", "lu_factor", "lu_factor_ex", "lu_solve", "matrix_power",
           "matrix_rank", "multi_dot", "pinv", "qr", "slogdet", "solve", "solve_ex",
           "solve_triangular", "svd", "svdvals", "tensorinv", "tensorsolve", "vander",
           "vecdot"]
