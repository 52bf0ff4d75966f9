"""torch.linalg's decompositions and solves, over the primitives of
:mod:`kiln.core.prims.linalg_prims`: ``kiln.linalg.inv``, ``det``, ``slogdet``, ``solve``,
``solve_triangular``, ``cholesky``, ``eigh``, ``svd``, ``qr`` and what is built from them
(``pinv``, ``matrix_rank``, ``cond``, ``lstsq``, ``matrix_power``, ``multi_dot``,
``vecdot``, ``vander``, ``tensorinv``, ``tensorsolve``), plus torch's older top-level names
(``kiln.det``, ``kiln.inverse``, ``kiln.svd``, ``kiln.qr``, ``kiln.cholesky_solve`` ...).

Results with several tensors are named tuples, as torch's ``return_types``. Real inputs only
(Kiln has no complex dtype). The C backend does not compile these ops yet (it refuses them
by name); eager mode, traced graphs, AOT autograd and the interpreter run them, with
gradients.

>>> import kiln
>>> A = kiln.tensor([[4.0, 1.0], [1.0, 3.0]])
>>> kiln.linalg.det(A).item(), kiln.linalg.solve(A, kiln.tensor([1.0, 2.0])).tolist()
(11.0, [0.09090909361839294, 0.6363636255264282])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from kiln.core import prims as ops
from kiln.core.prims.linalg_prims import lu_parts, svd_parts
from kiln.core.prims.shapes import fmt_shape
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, DTypeError, ShapeError, ValueArgumentError


class SVD(NamedTuple):
    """``kiln.linalg.svd``: A = U diag(S) Vh."""

    U: Any
    S: Any
    Vh: Any


class SVDOld(NamedTuple):
    """``kiln.svd`` (torch.svd): A = U diag(S) V^T."""

    U: Any
    S: Any
    V: Any


class QR(NamedTuple):
    Q: Any
    R: Any


class Eigh(NamedTuple):
    eigenvalues: Any
    eigenvectors: Any


class Slogdet(NamedTuple):
    sign: Any
    logabsdet: Any


class InvEx(NamedTuple):
    inverse: Any
    info: Any


class SolveEx(NamedTuple):
    result: Any
    info: Any


class CholeskyEx(NamedTuple):
    L: Any
    info: Any


class Lstsq(NamedTuple):
    solution: Any
    residuals: Any
    rank: Any
    singular_values: Any


class LUFactor(NamedTuple):
    LU: Any
    pivots: Any


class LUFactorEx(NamedTuple):
    LU: Any
    pivots: Any
    info: Any


class PLU(NamedTuple):
    P: Any
    L: Any
    U: Any


class TriangularSolve(NamedTuple):
    solution: Any
    cloned_coefficient: Any


def _matrix(fn: str, A: Any, arg: str = "A", square: bool = False) -> Tensor:
    if not isinstance(A, Tensor):
        raise ArgumentError(f"{fn}: {arg} must be a kiln.Tensor, got {type(A).__name__}")
    if not A.dtype.is_floating:
        raise DTypeError(f"{fn}: {arg} must be floating point, got {A.dtype}; convert it "
                         "with .double() or .float()")
    if A.ndim < 2:
        raise ShapeError(f"{fn}: {arg} must have at least 2 dims (..., m, n), got shape "
                         f"{fmt_shape(A.shape)}")
    if square and A.shape[-1] != A.shape[-2]:
        raise ShapeError(f"{fn}: {arg} must be batches of square matrices, got shape "
                         f"{fmt_shape(A.shape)}")
    return A


def _zeros_info(A: Tensor) -> Tensor:
    return ops.full(shape=tuple(A.shape[:-2]), value=0, dtype=_int32())


def _int32() -> Any:
    from kiln.core.dtypes import int32

    return int32


# inverse and determinants -----------------------------------------------------------------
def inv(A: Tensor) -> Tensor:
    """The inverse of each square matrix (a LinAlgError when one is singular).

    >>> import kiln
    >>> kiln.linalg.inv(kiln.tensor([[2.0, 0.0], [0.0, 4.0]])).tolist()
    [[0.5, 0.0], [0.0, 0.25]]
    """
    return ops.linalg_inv(_matrix("linalg.inv", A, square=True))


def inv_ex(A: Tensor, *, check_errors: bool = False) -> InvEx:
    """``(inverse, info)``; ``info`` is 0 for every matrix (a singular one raises).

    >>> import kiln
    >>> kiln.linalg.inv_ex(kiln.eye(2)).info.tolist()
    0
    """
    return InvEx(inv(A), _zeros_info(A))


def det(A: Tensor) -> Tensor:
    """The determinant of each square matrix.

    >>> import kiln
    >>> kiln.linalg.det(kiln.tensor([[1.0, 2.0], [3.0, 4.0]])).item()
    -2.0
    """
    return ops.linalg_det(_matrix("linalg.det", A, square=True))


def slogdet(A: Tensor) -> Slogdet:
    """``(sign, logabsdet)`` of the determinant of each square matrix.

    >>> import kiln
    >>> s = kiln.linalg.slogdet(kiln.tensor([[1.0, 2.0], [3.0, 4.0]]))
    >>> s.sign.item(), round(s.logabsdet.item(), 4)
    (-1.0, 0.6931)
    """
    packed = ops.linalg_slogdet(_matrix("linalg.slogdet", A, square=True))
    return Slogdet(packed[..., 0], packed[..., 1])


def logdet(A: Tensor) -> Tensor:
    """log(det(A)): NaN for a negative determinant, -inf for a zero one (as torch).

    >>> import kiln
    >>> round(kiln.logdet(kiln.tensor([[2.0, 0.0], [0.0, 3.0]])).item(), 4)
    1.7918
    """
    sign, logabs = slogdet(_matrix("logdet", A, square=True))
    nan = ops.full(shape=(), value=math.nan, dtype=A.dtype)
    return ops.where(sign < 0, nan, logabs)


# solves -------------------------------------------------------------------------------------
def _is_vector_rhs(A: Tensor, B: Tensor) -> bool:
    return B.ndim == 1 or (B.ndim == A.ndim - 1 and tuple(B.shape) == tuple(A.shape[:-1]))


def _broadcast_pair(fn: str, A: Tensor, B: Tensor) -> tuple[Tensor, Tensor]:
    from kiln.core.prims.shapes import broadcast_shapes

    batch = broadcast_shapes(fn, tuple(A.shape[:-2]), tuple(B.shape[:-2]))
    return (A.expand(*batch, *A.shape[-2:]) if tuple(A.shape[:-2]) != batch else A,
            B.expand(*batch, *B.shape[-2:]) if tuple(B.shape[:-2]) != batch else B)


def _same_dtype(fn: str, A: Tensor, B: Tensor) -> None:
    if A.dtype != B.dtype:
        raise DTypeError(f"{fn}: A and B must have the same dtype, got {A.dtype} and {B.dtype}")


def solve(A: Tensor, B: Tensor, *, left: bool = True) -> Tensor:
    """X with A X = B (``left=False``: X A = B); B may be a vector (..., n) or matrices
    (..., n, k); batch dims broadcast.

    >>> import kiln
    >>> kiln.linalg.solve(kiln.tensor([[2.0, 0.0], [0.0, 4.0]]), kiln.tensor([2.0, 2.0])).tolist()
    [1.0, 0.5]
    """
    A = _matrix("linalg.solve", A, square=True)
    if not isinstance(B, Tensor):
        raise ArgumentError(f"linalg.solve: B must be a kiln.Tensor, got {type(B).__name__}")
    _same_dtype("linalg.solve", A, B)
    vector = left and _is_vector_rhs(A, B)
    if vector:
        B = B.unsqueeze(-1)
    if B.ndim < 2:
        raise ShapeError(f"linalg.solve: B must be (..., n) or (..., n, k), got shape "
                         f"{fmt_shape(B.shape)}")
    if not left:
        return solve(A.mT, B.mT).mT
    if B.shape[-2] != A.shape[-1]:
        raise ShapeError(f"linalg.solve: A {fmt_shape(A.shape)} and B {fmt_shape(B.shape)}: "
                         "B's rows must equal A's size")
    A2, B2 = _broadcast_pair("linalg.solve", A, B)
    X = ops.linalg_solve(A2, B2)
    return X.squeeze(-1) if vector else X


def solve_ex(A: Tensor, B: Tensor, *, left: bool = True, check_errors: bool = False) -> SolveEx:
    """``(result, info)`` of :func:`solve` (``info`` 0; a singular A raises).

    >>> import kiln
    >>> kiln.linalg.solve_ex(kiln.eye(2), kiln.ones(2)).result.tolist()
    [1.0, 1.0]
    """
    X = solve(A, B, left=left)
    return SolveEx(X, _zeros_info(A))


def solve_triangular(A: Tensor, B: Tensor, *, upper: bool, left: bool = True,
                     unitriangular: bool = False) -> Tensor:
    """X with T X = B (``left=False``: X T = B), T the upper or lower triangle of A (its
    diagonal taken as ones with ``unitriangular``).

    >>> import kiln
    >>> A = kiln.tensor([[2.0, 1.0], [0.0, 4.0]])
    >>> kiln.linalg.solve_triangular(A, kiln.tensor([[3.0], [4.0]]), upper=True).tolist()
    [[1.0], [1.0]]
    """
    A = _matrix("linalg.solve_triangular", A, square=True)
    B = _matrix("linalg.solve_triangular", B, "B")
    _same_dtype("linalg.solve_triangular", A, B)
    if not left:
        return solve_triangular(A.mT, B.mT, upper=not upper, unitriangular=unitriangular).mT
    if B.shape[-2] != A.shape[-1]:
        raise ShapeError(f"linalg.solve_triangular: A {fmt_shape(A.shape)} and B "
                         f"{fmt_shape(B.shape)}: B's rows must equal A's size")
    A2, B2 = _broadcast_pair("linalg.solve_triangular", A, B)
    return ops.linalg_solve_triangular(A2, B2, upper=bool(upper),
                                       unitriangular=bool(unitriangular))


def triangular_solve(b: Tensor, A: Tensor, upper: bool = True, transpose: bool = False,
                     unitriangular: bool = False) -> TriangularSolve:
    """torch.triangular_solve: ``(solution, cloned_coefficient)`` of op(T) X = b, op the
    transpose when ``transpose``.

    >>> import kiln
    >>> kiln.triangular_solve(kiln.tensor([[2.0]]), kiln.tensor([[4.0]])).solution.tolist()
    [[0.5]]
    """
    A = _matrix("triangular_solve", A, square=True)
    if transpose:
        X = solve_triangular(A.mT, b, upper=not upper, unitriangular=unitriangular)
    else:
        X = solve_triangular(A, b, upper=upper, unitriangular=unitriangular)
    return TriangularSolve(X, A.clone())


# Cholesky ----------------------------------------------------------------------------------
def cholesky(A: Tensor, *, upper: bool = False) -> Tensor:
    """The Cholesky factor of each symmetric positive-definite matrix (from its lower
    triangle): L with A = L L^T, or U = L^T with ``upper``.

    >>> import kiln
    >>> kiln.linalg.cholesky(kiln.tensor([[4.0, 2.0], [2.0, 5.0]])).tolist()
    [[2.0, 0.0], [1.0, 2.0]]
    """
    L = ops.linalg_cholesky(_matrix("linalg.cholesky", A, square=True))
    return L.mT if upper else L


def cholesky_ex(A: Tensor, *, upper: bool = False, check_errors: bool = False) -> CholeskyEx:
    """``(L, info)`` of :func:`cholesky` (``info`` 0; a matrix that is not positive
    definite raises).

    >>> import kiln
    >>> kiln.linalg.cholesky_ex(kiln.eye(2)).L.tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    return CholeskyEx(cholesky(A, upper=upper), _zeros_info(A))


def cholesky_old(A: Tensor, upper: bool = False) -> Tensor:
    """torch.cholesky (deprecated there): :func:`cholesky` with ``upper`` positional.

    >>> import kiln
    >>> kiln.cholesky(kiln.tensor([[4.0]])).tolist()
    [[2.0]]
    """
    return cholesky(A, upper=upper)


def cholesky_solve(B: Tensor, L: Tensor, upper: bool = False) -> Tensor:
    """X with A X = B, given A's Cholesky factor ``L`` (``upper``: U = L^T).

    >>> import kiln
    >>> kiln.cholesky_solve(kiln.tensor([[4.0]]), kiln.tensor([[2.0]])).tolist()
    [[1.0]]
    """
    L = _matrix("cholesky_solve", L, "L", square=True)
    low = L.mT if upper else L
    Y = solve_triangular(low, B, upper=False)
    return solve_triangular(low.mT, Y, upper=True)


def cholesky_inverse(L: Tensor, upper: bool = False) -> Tensor:
    """The inverse of A = L L^T (``upper``: U^T U), from its Cholesky factor.

    >>> import kiln
    >>> kiln.cholesky_inverse(kiln.tensor([[2.0]])).tolist()
    [[0.25]]
    """
    L = _matrix("cholesky_inverse", L, "L", square=True)
    eye = ops.eye(n=L.shape[-1], m=L.shape[-1], dtype=L.dtype)
    return cholesky_solve(eye.expand(*L.shape) if L.ndim > 2 else eye, L, upper)


# eigh, svd, qr ------------------------------------------------------------------------------
def _uplo_lower(A: Tensor, UPLO: str) -> Tensor:
    if UPLO not in ("L", "U"):
        raise ValueArgumentError(f"linalg.eigh: UPLO must be 'L' or 'U', got {UPLO!r}")
    return A if UPLO == "L" else A.mT


def eigh(A: Tensor, UPLO: str = "L") -> Eigh:
    """Eigenvalues (ascending) and eigenvectors (columns) of each symmetric matrix, read
    from its lower (``UPLO="L"``) or upper triangle.

    >>> import kiln
    >>> kiln.linalg.eigh(kiln.tensor([[2.0, 0.0], [0.0, 1.0]])).eigenvalues.tolist()
    [1.0, 2.0]
    """
    A = _uplo_lower(_matrix("linalg.eigh", A, square=True), UPLO)
    n = A.shape[-1]
    packed = ops.linalg_eigh(A)
    return Eigh(packed[..., 0, :], packed[..., 1:n + 1, :])


def eigvalsh(A: Tensor, UPLO: str = "L") -> Tensor:
    """The eigenvalues (ascending) of each symmetric matrix.

    >>> import kiln
    >>> kiln.linalg.eigvalsh(kiln.tensor([[0.0, 1.0], [1.0, 0.0]])).tolist()
    [-1.0, 1.0]
    """
    return eigh(A, UPLO).eigenvalues


def svd(A: Tensor, full_matrices: bool = True, *, driver: Any = None) -> SVD:
    """A = U diag(S) Vh, singular values descending; ``full_matrices`` gives square U and Vh.
    Gradients (torch's formula) need distinct singular values; with full matrices only the
    first min(m, n) columns of U and rows of Vh carry them, as in torch.

    >>> import kiln
    >>> kiln.linalg.svd(kiln.tensor([[3.0, 0.0], [0.0, -2.0]])).S.tolist()
    [3.0, 2.0]
    """
    A = _matrix("linalg.svd", A)
    if driver is not None:
        raise ValueArgumentError("linalg.svd: driver= chooses a cuSOLVER routine; Kiln runs "
                                 "on the CPU, pass driver=None")
    m, n = A.shape[-2], A.shape[-1]
    k = min(m, n)
    full = bool(full_matrices) and m != n
    packed = ops.linalg_svd(A, full=full)
    if not full:
        U, S, V = svd_parts(packed, m, n, k)
        return SVD(U, S, V.mT)
    U = packed[..., :m, :m]
    S = packed[..., m, :k]
    V = packed[..., m + 1:m + 1 + n, :n]
    return SVD(U, S, V.mT)


def svdvals(A: Tensor, *, driver: Any = None) -> Tensor:
    """The singular values of each matrix, descending.

    >>> import kiln
    >>> kiln.linalg.svdvals(kiln.tensor([[0.0, 2.0], [1.0, 0.0]])).tolist()
    [2.0, 1.0]
    """
    return svd(A, full_matrices=False, driver=driver).S


def svd_old(A: Tensor, some: bool = True, compute_uv: bool = True) -> SVDOld:
    """torch.svd: ``(U, S, V)`` (V, not Vh); ``some=False`` gives square U and V;
    ``compute_uv=False`` returns zero U and V, as torch.

    >>> import kiln
    >>> kiln.svd(kiln.tensor([[0.0, 2.0], [1.0, 0.0]])).S.tolist()
    [2.0, 1.0]
    """
    U, S, Vh = svd(A, full_matrices=not some)
    if not compute_uv:
        return SVDOld(U * 0.0, S, Vh.mT * 0.0)
    return SVDOld(U, S, Vh.mT)


def qr(A: Tensor, mode: str = "reduced") -> QR:
    """A = Q R, Q with orthonormal columns, R upper triangular; ``mode`` "reduced",
    "complete" (square Q) or "r" (R only; Q empty).

    >>> import kiln
    >>> q, r = kiln.linalg.qr(kiln.tensor([[3.0, 1.0], [4.0, 2.0]]))
    >>> [round(v, 4) for v in r[0].tolist()]
    [-5.0, -2.2]
    """
    A = _matrix("linalg.qr", A)
    if mode not in ("reduced", "complete", "r"):
        raise ValueArgumentError(f"linalg.qr: mode must be 'reduced', 'complete' or 'r', got "
                                 f"{mode!r}")
    m, n = A.shape[-2], A.shape[-1]
    full = mode == "complete" and m > n
    width = m if full else min(m, n)
    packed = ops.linalg_qr(A, full=full)
    Q = packed[..., :m, :]
    R = packed[..., m:m + n, :width].mT
    if mode == "r":
        return QR(ops.full(shape=(0,), value=0.0, dtype=A.dtype), R)
    return QR(Q, R)


def qr_old(A: Tensor, some: bool = True) -> QR:
    """torch.qr: :func:`qr` with ``some=False`` for the complete decomposition.

    >>> import kiln
    >>> kiln.qr(kiln.eye(2)).R.tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    return qr(A, "reduced" if some else "complete")


# LU -----------------------------------------------------------------------------------------
def _no_pivot(fn: str, pivot: bool) -> None:
    if not pivot:
        raise ValueArgumentError(f"{fn}: LU without pivoting is not implemented on the CPU "
                                 "(torch neither); pass pivot=True")


def lu_factor(A: Tensor, *, pivot: bool = True) -> LUFactor:
    """LU with partial pivoting, packed as LAPACK's getrf: ``(LU, pivots)``, L below the
    unit diagonal and U on and above it in ``LU``, 1-based row swaps in ``pivots`` (int32).

    >>> import kiln
    >>> lu, piv = kiln.linalg.lu_factor(kiln.tensor([[1.0, 2.0], [3.0, 4.0]]))
    >>> piv.tolist(), lu[0].tolist()
    ([2, 2], [3.0, 4.0])
    """
    A = _matrix("linalg.lu_factor", A)
    _no_pivot("linalg.lu_factor", pivot)
    m, n = A.shape[-2], A.shape[-1]
    LU, _, piv = lu_parts(ops.linalg_lu(A), m, n)
    return LUFactor(LU, piv.detach().to(_int32()))


def lu_factor_ex(A: Tensor, *, pivot: bool = True, check_errors: bool = False) -> LUFactorEx:
    """``(LU, pivots, info)`` of :func:`lu_factor`; ``info`` is 0, or i + 1 where U's
    diagonal has its first zero (a singular matrix), as LAPACK.

    >>> import kiln
    >>> kiln.linalg.lu_factor_ex(kiln.tensor([[1.0, 1.0], [1.0, 1.0]])).info.item()
    2
    """
    LU, piv = lu_factor(A, pivot=pivot)
    k = min(LU.shape[-2], LU.shape[-1])
    diag = LU[..., :k, :k].detach()
    diag = (diag * ops.eye(n=k, m=k, dtype=diag.dtype)).sum(-1)
    zero = (diag == 0).to(_int32())
    # first zero i -> i + 1: the largest of (k - i) * zero, turned back into i + 1
    if k == 0:
        return LUFactorEx(LU, piv, ops.full(shape=tuple(LU.shape[:-2]), value=0,
                                            dtype=_int32()))
    weights = ops.arange(start=k, stop=0, step=-1, dtype=_int32())
    score = (zero * weights).amax(-1)
    info = ops.where(score > 0, k + 1 - score, ops.full(shape=(), value=0, dtype=_int32()))
    return LUFactorEx(LU, piv, info.to(_int32()))


def _perm_from_pivots(pivots: Tensor, m: int, dtype: Any) -> Tensor:
    """P (..., m, m) of LAPACK's 1-based row swaps (A = P L U), with Kiln ops (so a traced
    lu_solve or lu_unpack reads its pivots as data)."""
    rows = ops.arange(start=0, stop=m, step=1, dtype=pivots.dtype)
    eye = ops.eye(n=m, m=m, dtype=dtype)
    P = eye.expand(*pivots.shape[:-1], m, m) if pivots.ndim > 1 else eye
    for i in range(pivots.shape[-1]):
        target = (rows == (pivots[..., i:i + 1] - 1)).to(dtype)  # (..., m)
        here = eye[i]
        swap = (eye - here.unsqueeze(-1) * here.unsqueeze(-2)
                - target.unsqueeze(-1) * target.unsqueeze(-2)
                + here.unsqueeze(-1) * target.unsqueeze(-2)
                + target.unsqueeze(-1) * here.unsqueeze(-2))
        # where the row swaps with itself, the terms cancel back to the identity
        P = ops.matmul(P, swap)
    return P


def lu(A: Tensor, *, pivot: bool = True) -> PLU:
    """A = P L U: the permutation matrix, the unit lower-triangular L (m x k) and the upper
    U (k x n).

    >>> import kiln
    >>> P, L, U = kiln.linalg.lu(kiln.tensor([[1.0, 2.0], [3.0, 4.0]]))
    >>> P.tolist(), L.tolist()
    ([[0.0, 1.0], [1.0, 0.0]], [[1.0, 0.0], [0.3333333432674408, 1.0]])
    """
    A = _matrix("linalg.lu", A)
    _no_pivot("linalg.lu", pivot)
    m, n = A.shape[-2], A.shape[-1]
    LU, P, _ = lu_parts(ops.linalg_lu(A), m, n)
    L, U = _unpack(LU)
    return PLU(P.detach(), L, U)


def _unpack(LU: Tensor) -> tuple[Tensor, Tensor]:
    from kiln.core.mathops import tril, triu

    m, n = LU.shape[-2], LU.shape[-1]
    k = min(m, n)
    L = tril(LU, -1)[..., :, :k] + ops.eye(n=m, m=k, dtype=LU.dtype)
    return L, triu(LU)[..., :k, :]


def lu_unpack(LU_data: Tensor, LU_pivots: Tensor, unpack_data: bool = True,
              unpack_pivots: bool = True) -> PLU:
    """``(P, L, U)`` from :func:`lu_factor`'s packed result (empty tensors for what is not
    unpacked).

    >>> import kiln
    >>> lu, piv = kiln.linalg.lu_factor(kiln.tensor([[1.0, 2.0], [3.0, 4.0]]))
    >>> kiln.lu_unpack(lu, piv).P.tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    """
    LU_data = _matrix("lu_unpack", LU_data, "LU_data")
    if not isinstance(LU_pivots, Tensor) or LU_pivots.dtype.is_floating:
        raise DTypeError("lu_unpack: LU_pivots must be an integer tensor (lu_factor's pivots)")
    empty = ops.full(shape=(0,), value=0.0, dtype=LU_data.dtype)
    L, U = _unpack(LU_data) if unpack_data else (empty, empty)
    P = _perm_from_pivots(LU_pivots, LU_data.shape[-2], LU_data.dtype) if unpack_pivots \
        else empty
    return PLU(P, L, U)


def lu_solve(LU: Tensor, pivots: Tensor, B: Tensor, *, left: bool = True,
             adjoint: bool = False) -> Tensor:
    """X with A X = B from A's :func:`lu_factor` (``adjoint``: A^T X = B; ``left=False``:
    X A = B).

    >>> import kiln
    >>> A = kiln.tensor([[1.0, 2.0], [3.0, 4.0]])
    >>> lu, piv = kiln.linalg.lu_factor(A)
    >>> x = kiln.linalg.lu_solve(lu, piv, kiln.tensor([[5.0], [11.0]]))
    >>> [round(v, 4) for v in x[:, 0].tolist()]
    [1.0, 2.0]
    """
    LU = _matrix("linalg.lu_solve", LU, "LU", square=True)
    B = _matrix("linalg.lu_solve", B, "B")
    if not left:  # X A = B  <=>  A^T X^T = B^T
        return lu_solve(LU, pivots, B.mT, adjoint=not adjoint).mT
    L, U = _unpack(LU)
    P = _perm_from_pivots(pivots, LU.shape[-2], LU.dtype)
    if adjoint:  # A^T = U^T L^T P^T
        Y = solve_triangular(U.mT, B, upper=False)
        Z = solve_triangular(L.mT, Y, upper=True, unitriangular=True)
        return ops.matmul(P, Z)
    Y = ops.matmul(P.mT, B)
    Z = solve_triangular(L, Y, upper=False, unitriangular=True)
    return solve_triangular(U, Z, upper=True)


def lu_old(A: Tensor, pivot: bool = True, get_infos: bool = False) -> tuple:
    """torch.lu: ``(LU, pivots)``, and ``infos`` with ``get_infos``.

    >>> import kiln
    >>> kiln.lu(kiln.tensor([[1.0, 2.0], [3.0, 4.0]]))[1].tolist()
    [2, 2]
    """
    if get_infos:
        return tuple(lu_factor_ex(A, pivot=pivot))
    return tuple(lu_factor(A, pivot=pivot))


def lu_solve_old(b: Tensor, LU_data: Tensor, LU_pivots: Tensor) -> Tensor:
    """torch.lu_solve: :func:`lu_solve` with the right-hand side first.

    >>> import kiln
    >>> lu, piv = kiln.linalg.lu_factor(kiln.tensor([[2.0]]))
    >>> kiln.lu_solve(kiln.tensor([[4.0]]), lu, piv).tolist()
    [[2.0]]
    """
    return lu_solve(LU_data, LU_pivots, b)


# Householder reflectors ---------------------------------------------------------------------
class Geqrf(NamedTuple):
    a: Any
    tau: Any


def geqrf(A: Tensor) -> Geqrf:
    """LAPACK's geqrf: ``(a, tau)``, R on and above a's diagonal, the Householder vectors
    below it (their leading 1 implied), and the reflectors' scales ``tau`` (not
    differentiable, as in torch).

    >>> import kiln
    >>> a, tau = kiln.geqrf(kiln.tensor([[3.0], [4.0]]))
    >>> a[0].tolist(), tau.tolist()
    ([-5.0], [1.600000023841858])
    """
    A = _matrix("geqrf", A)
    m, n = A.shape[-2], A.shape[-1]
    packed = ops.linalg_geqrf(A)
    return Geqrf(packed[..., :m, :], packed[..., m, :min(m, n)])


def _reflector(A: Tensor, i: int) -> Tensor:
    """v_i (..., m): zeros above row i, 1 at i, A's column i below."""
    m = A.shape[-2]
    rows = ops.arange(start=0, stop=m, step=1, dtype=A.dtype)
    below = (rows > i).to(A.dtype)
    at = (rows == i).to(A.dtype)
    return A[..., :, i] * below + at


def _check_householder(fn: str, A: Tensor, tau: Tensor) -> int:
    A = _matrix(fn, A)
    if not isinstance(tau, Tensor) or tau.ndim < 1:
        raise ArgumentError(f"{fn}: tau must be a tensor (..., k), got {type(tau).__name__}")
    _same_dtype(fn, A, tau)
    k = tau.shape[-1]
    if k > A.shape[-1] or k > A.shape[-2]:
        raise ShapeError(f"{fn}: tau has {k} scales, more than A {fmt_shape(A.shape)} has "
                         "columns or rows")
    return k


def _apply(C: Tensor, v: Tensor, scale: Tensor, left: bool) -> Tensor:
    """(I - scale v v^T) C (left) or C (I - scale v v^T)."""
    s = scale.unsqueeze(-1).unsqueeze(-1)
    if left:
        return C - s * ops.matmul(v.unsqueeze(-1), ops.matmul(v.unsqueeze(-2), C))
    return C - s * ops.matmul(ops.matmul(C, v.unsqueeze(-1)), v.unsqueeze(-2))


def householder_product(A: Tensor, tau: Tensor) -> Tensor:
    """The first n columns of H_1 ... H_k, H_i = I - tau_i v_i v_i^T with v_i in A's
    column i below the diagonal (LAPACK's orgqr; Q of :func:`geqrf`).

    >>> import kiln
    >>> a, tau = kiln.geqrf(kiln.tensor([[3.0], [4.0]]))
    >>> [round(v, 4) for v in kiln.linalg.householder_product(a, tau)[:, 0].tolist()]
    [-0.6, -0.8]
    """
    k = _check_householder("linalg.householder_product", A, tau)
    m, n = A.shape[-2], A.shape[-1]
    Q = ops.eye(n=m, m=n, dtype=A.dtype)
    Q = Q.expand(*A.shape[:-2], m, n) if A.ndim > 2 else Q
    for i in reversed(range(k)):
        Q = _apply(Q, _reflector(A, i), tau[..., i], left=True)
    return Q


def ormqr(A: Tensor, tau: Tensor, C: Tensor, left: bool = True,
          transpose: bool = False) -> Tensor:
    """Q C, Q^T C (``transpose``), C Q or C Q^T (``left=False``), Q = H_1 ... H_k the m x m
    product of :func:`geqrf`'s reflectors, applied one by one (LAPACK's ormqr).

    >>> import kiln
    >>> a, tau = kiln.geqrf(kiln.tensor([[3.0], [4.0]]))
    >>> [round(v, 4) for v in kiln.ormqr(a, tau, kiln.eye(2))[:, 0].tolist()]
    [-0.6, -0.8]
    """
    k = _check_householder("ormqr", A, tau)
    C = _matrix("ormqr", C, "C")
    _same_dtype("ormqr", A, C)
    order = range(k)
    # H_1 applied last to Q C and to C Q^T, first to Q^T C and to C Q
    if left != transpose:
        order = reversed(order)
    for i in order:
        C = _apply(C, _reflector(A, i), tau[..., i], left=left)
    return C


# built on the decompositions ------------------------------------------------------------------
def _tolerances(fn: str, S: Tensor, atol: Any, rtol: Any, m: int, n: int, eps: float) -> Tensor:
    smax = S[..., :1] if S.shape[-1] else S.sum(-1, keepdim=True)
    a = 0.0 if atol is None else atol
    if rtol is None:
        r = (max(m, n) * eps) if atol is None or _is_zero(atol) else 0.0
    else:
        r = rtol
    a_t = a.unsqueeze(-1) if isinstance(a, Tensor) and a.ndim else a
    r_t = r.unsqueeze(-1) if isinstance(r, Tensor) and r.ndim else r
    return ops.maximum(smax * r_t + 0.0 * smax, a_t + 0.0 * smax)


def _is_zero(v: Any) -> bool:
    return not isinstance(v, Tensor) and v == 0


def pinv(A: Tensor, rcond: Any = None, hermitian: bool = False, *, atol: Any = None,
         rtol: Any = None) -> Tensor:
    """The Moore-Penrose pseudo-inverse (singular values at or below max(atol, rtol * the
    largest one) count as zero; rtol defaults to max(m, n) * eps when atol is unset).

    >>> import kiln
    >>> kiln.linalg.pinv(kiln.tensor([[2.0, 0.0], [0.0, 0.0]])).tolist()
    [[0.5, 0.0], [0.0, 0.0]]
    """
    A = _matrix("linalg.pinv", A)
    if rcond is not None:  # torch's older name for rtol
        rtol = rcond
    m, n = A.shape[-2], A.shape[-1]
    U, S, Vh = svd(A, full_matrices=False)
    eps = float(np.finfo(A.dtype.np_dtype).eps)
    tol = _tolerances("linalg.pinv", S, atol, rtol, m, n, eps)
    keep = S > tol
    safe = ops.where(keep, S, ops.full(shape=(), value=1.0, dtype=S.dtype))
    s_inv = ops.where(keep, 1.0 / safe, ops.full(shape=(), value=0.0, dtype=S.dtype))
    return ops.matmul(Vh.mT * s_inv.unsqueeze(-2), U.mT)


def pinverse(A: Tensor, rcond: float = 1e-15) -> Tensor:
    """torch.pinverse: :func:`pinv` with ``rtol=rcond``.

    >>> import kiln
    >>> kiln.pinverse(kiln.tensor([[4.0]])).tolist()
    [[0.25]]
    """
    return pinv(A, rtol=rcond)


def matrix_rank(A: Tensor, tol: Any = None, hermitian: bool = False, *, atol: Any = None,
                rtol: Any = None) -> Tensor:
    """The number of singular values above the tolerance (as :func:`pinv`), int64.

    >>> import kiln
    >>> kiln.linalg.matrix_rank(kiln.tensor([[1.0, 2.0], [2.0, 4.0]])).item()
    1
    """
    A = _matrix("linalg.matrix_rank", A)
    if tol is not None:
        atol, rtol = tol, 0.0
    m, n = A.shape[-2], A.shape[-1]
    S = svdvals(A).detach()
    eps = float(np.finfo(A.dtype.np_dtype).eps)
    tol_t = _tolerances("linalg.matrix_rank", S, atol, rtol, m, n, eps)
    return (S > tol_t).to(_int64()).sum(-1)


def cond(A: Tensor, p: Any = None) -> Tensor:
    """The condition number in the ``p``-norm (None or 2: largest over smallest singular
    value; -2 the inverse; 'fro', 'nuc', inf, -inf, 1, -1: norm(A) * norm(inv(A))).

    >>> import kiln
    >>> kiln.linalg.cond(kiln.tensor([[2.0, 0.0], [0.0, 0.5]])).item()
    4.0
    """
    from kiln.core.linalg import matrix_norm

    A = _matrix("linalg.cond", A)
    if p is None or p in (2, -2):
        S = svdvals(A)
        big, small = S[..., 0], S[..., -1]
        return big / small if p != -2 else small / big
    A = _matrix("linalg.cond", A, square=True)
    return matrix_norm(A, p) * matrix_norm(inv(A), p)


def lstsq(A: Tensor, B: Tensor, rcond: Any = None, *, driver: Any = None) -> Lstsq:
    """Least-squares solution of A X = B (minimum norm, through the pseudo-inverse). What
    else comes back follows torch's CPU drivers: ``gelsy`` (the default) computes ``rank``;
    ``gelsd`` and ``gelss`` also ``singular_values`` and, for tall full-rank A, the squared
    ``residuals``; ``gels`` only the residuals. The others are empty tensors.

    >>> import kiln
    >>> A = kiln.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    >>> kiln.linalg.lstsq(A, kiln.tensor([[1.0], [2.0], [3.0]])).solution.tolist()
    [[1.0], [2.0]]
    """
    A = _matrix("linalg.lstsq", A)
    if not isinstance(B, Tensor):
        raise ArgumentError(f"linalg.lstsq: B must be a kiln.Tensor, got {type(B).__name__}")
    _same_dtype("linalg.lstsq", A, B)
    driver = "gelsy" if driver is None else driver
    if driver not in ("gelsy", "gelsd", "gelss", "gels"):
        raise ValueArgumentError(f"linalg.lstsq: driver must be one of 'gels', 'gelsy', "
                                 f"'gelsd', 'gelss' or None, got {driver!r}")
    vector = B.ndim == A.ndim - 1
    B2 = B.unsqueeze(-1) if vector else B
    m, n = A.shape[-2], A.shape[-1]
    eps = float(np.finfo(A.dtype.np_dtype).eps)
    rtol = (max(m, n) * eps) if rcond is None or rcond < 0 else rcond
    P = pinv(A, rtol=rtol)
    P2, B3 = _broadcast_pair("linalg.lstsq", P, B2)
    X = ops.matmul(P2, B3)
    empty = ops.full(shape=(0,), value=0.0, dtype=A.dtype)
    rank = matrix_rank(A, atol=0.0, rtol=rtol) if driver != "gels" else \
        ops.full(shape=(0,), value=0, dtype=_int64())
    values = svdvals(A) if driver in ("gelsd", "gelss") else empty
    residuals = empty
    if driver != "gelsy" and m > n and bool((rank == n).all().item() if rank.ndim or
                                              rank.shape == () else True):
        A2, _ = _broadcast_pair("linalg.lstsq", A, B2)
        r = ops.matmul(A2, X) - B3
        residuals = (r * r).sum(-2)
        if vector:
            residuals = residuals.squeeze(-1)
    return Lstsq(X.squeeze(-1) if vector else X, residuals, rank, values)


def _int64() -> Any:
    from kiln.core.dtypes import int64

    return int64


def matrix_power(A: Tensor, n: int) -> Tensor:
    """A multiplied by itself ``n`` times (identity for 0, powers of the inverse below 0),
    by repeated squaring.

    >>> import kiln
    >>> kiln.linalg.matrix_power(kiln.tensor([[1.0, 1.0], [0.0, 1.0]]), 3).tolist()
    [[1.0, 3.0], [0.0, 1.0]]
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise ArgumentError(f"linalg.matrix_power: n must be an int, got {type(n).__name__}")
    if not isinstance(A, Tensor) or A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise ShapeError(f"linalg.matrix_power: A must be batches of square matrices, got "
                         f"{getattr(A, 'shape', type(A).__name__)}")
    if n < 0:
        A, n = inv(A), -n
    size = A.shape[-1]
    if n == 0:
        eye = ops.eye(n=size, m=size, dtype=A.dtype)
        return eye.expand(*A.shape) if A.ndim > 2 else eye
    result = None
    base = A
    while n:
        if n & 1:
            result = base if result is None else ops.matmul(result, base)
        n >>= 1
        if n:
            base = ops.matmul(base, base)
    return result


def multi_dot(tensors: Sequence[Tensor]) -> Tensor:
    """The product of a chain of matrices (the first may be a row vector, the last a column
    vector), left to right.

    >>> import kiln
    >>> kiln.linalg.multi_dot([kiln.ones(2), kiln.ones(2, 3), kiln.ones(3)]).item()
    6.0
    """
    items = list(tensors)
    if len(items) < 2:
        raise ArgumentError(f"linalg.multi_dot: expected at least 2 tensors, got {len(items)}")
    for i, t in enumerate(items):
        if not isinstance(t, Tensor):
            raise ArgumentError(f"linalg.multi_dot: tensors[{i}] must be a kiln.Tensor, got "
                                f"{type(t).__name__}")
        ok = t.ndim in (1, 2) if i in (0, len(items) - 1) else t.ndim == 2
        if not ok:
            raise ShapeError(f"linalg.multi_dot: tensors[{i}] must be 2-D (the first and last "
                             f"may be 1-D), got shape {fmt_shape(t.shape)}")
    first_vec, last_vec = items[0].ndim == 1, items[-1].ndim == 1
    if first_vec:
        items[0] = items[0].unsqueeze(0)
    if last_vec:
        items[-1] = items[-1].unsqueeze(-1)
    out = items[0]
    for t in items[1:]:
        out = ops.matmul(out, t)
    if first_vec:
        out = out.squeeze(0)
    if last_vec:
        out = out.squeeze(-1)
    return out


def vecdot(x: Tensor, y: Tensor, *, dim: int = -1) -> Tensor:
    """The dot product of vectors along ``dim`` (batch dims broadcast).

    >>> import kiln
    >>> kiln.linalg.vecdot(kiln.tensor([1.0, 2.0]), kiln.tensor([3.0, 4.0])).item()
    11.0
    """
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise ArgumentError("linalg.vecdot: x and y must be kiln.Tensors")
    return (x * y).sum(dim)


def vander(x: Tensor, *, N: int | None = None) -> Tensor:
    """The Vandermonde matrix of ``x``: columns x^0, x^1, ..., x^(N-1) (N = len(x)).

    >>> import kiln
    >>> kiln.linalg.vander(kiln.tensor([2.0, 3.0])).tolist()
    [[1.0, 2.0], [1.0, 3.0]]
    """
    if not isinstance(x, Tensor):
        raise ArgumentError(f"linalg.vander: x must be a kiln.Tensor, got {type(x).__name__}")
    if x.ndim == 0:
        x = x.reshape(1)
    n = x.shape[-1] if N is None else N
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueArgumentError(f"linalg.vander: N must be a non-negative int, got {N!r}")
    if n == 0:
        return ops.full(shape=(*x.shape, 0), value=0, dtype=x.dtype)
    cols = [ops.full(shape=tuple(x.shape), value=1, dtype=x.dtype)]
    for _ in range(1, n):
        cols.append(cols[-1] * x)
    return ops.cat(*[c.unsqueeze(-1) for c in cols], dim=-1)


def tensorinv(A: Tensor, ind: int = 2) -> Tensor:
    """The inverse of A read as a matrix: the first ``ind`` dims are its rows.

    >>> import kiln
    >>> kiln.linalg.tensorinv(kiln.eye(4).reshape(4, 2, 2), ind=1).shape
    (2, 2, 4)
    """
    if not isinstance(A, Tensor) or ind <= 0:
        raise ValueArgumentError(f"linalg.tensorinv: ind must be a positive int, got {ind!r}")
    rows, cols = tuple(A.shape[:ind]), tuple(A.shape[ind:])
    r, c = math.prod(rows), math.prod(cols)
    if r != c:
        raise ShapeError(f"linalg.tensorinv: the first {ind} dims ({r} elements) and the rest "
                         f"({c}) must make a square matrix")
    return inv(A.reshape(r, c)).reshape(*cols, *rows)


def tensorsolve(A: Tensor, B: Tensor, dims: Sequence[int] | None = None) -> Tensor:
    """X with tensordot(A, X, X.ndim) = B (``dims``: A's dims moved to the end first).

    >>> import kiln
    >>> kiln.linalg.tensorsolve(kiln.eye(4).reshape(2, 2, 4), kiln.ones(2, 2)).shape
    (4,)
    """
    if not isinstance(A, Tensor) or not isinstance(B, Tensor):
        raise ArgumentError("linalg.tensorsolve: A and B must be kiln.Tensors")
    if dims is not None:
        dims = [d % A.ndim for d in dims]
        order = [d for d in range(A.ndim) if d not in dims] + list(dims)
        A = A.permute(*order)
    rest = tuple(A.shape[B.ndim:])
    r, c = math.prod(B.shape), math.prod(rest)
    if r != c:
        raise ShapeError(f"linalg.tensorsolve: A {fmt_shape(A.shape)} and B "
                         f"{fmt_shape(B.shape)} do not make a square system")
    return solve(A.reshape(r, c), B.reshape(r)).reshape(*rest)


LINALG = ("inv", "inv_ex", "det", "slogdet", "solve", "solve_ex", "solve_triangular",
          "cholesky", "cholesky_ex", "eigh", "eigvalsh", "svd", "svdvals", "qr", "pinv",
          "matrix_rank", "cond", "lstsq", "matrix_power", "multi_dot", "vecdot", "vander",
          "tensorinv", "tensorsolve", "lu_factor", "lu_factor_ex", "lu", "lu_solve",
          "householder_product")
# torch's top-level names (kiln.X) and Tensor methods, with the function each one is
TOP_LEVEL = {"det": det, "inverse": inv, "slogdet": slogdet, "logdet": logdet,
             "svd": svd_old, "qr": qr_old, "cholesky": cholesky_old,
             "cholesky_solve": cholesky_solve, "cholesky_inverse": cholesky_inverse,
             "pinverse": pinverse, "matrix_power": matrix_power,
             "triangular_solve": triangular_solve, "lu": lu_old, "lu_unpack": lu_unpack,
             "lu_solve": lu_solve_old, "geqrf": geqrf, "ormqr": ormqr,
             "orgqr": householder_product}


def install(cls: type) -> None:
    """Attach torch's linear-algebra Tensor methods (``A.det()``, ``A.inverse()`` ...)."""
    for name, fn in TOP_LEVEL.items():
        setattr(cls, name, fn)
