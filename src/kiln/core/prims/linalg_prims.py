"""Linear-algebra primitives: inverse, determinant, solves, Cholesky, QR, SVD, eigh.

Each is one op of the registry: a meta that checks shapes, a NumPy kernel (``numpy.linalg``,
batched over leading dims), and a vjp written with Kiln ops (torch's formulas). Cholesky and
eigh read the lower triangle of a matrix taken to be symmetric; their gradient is torch's
symmetric one, right for symmetric perturbations (the only ones the input means).

A decomposition with several results returns them *packed* in one tensor, so that it is
computed once and has one vjp; the public functions of :mod:`kiln.core.linalg_decomp` slice
them apart:

- ``linalg_svd``: ``(..., m + 1 + n, p)``: rows ``[0, m)`` are U, row ``m`` is S, rows
  ``[m + 1, m + 1 + n)`` are V (not Vh); ``p`` is ``k = min(m, n)`` (or ``max(m, n)`` with
  ``full``, each part zero-padded);
- ``linalg_qr``: ``(..., m + n, p)``: Q in rows ``[0, m)``, R transposed below (``p`` is
  ``k``, or ``m`` with ``full``);
- ``linalg_eigh``: ``(..., 1 + n, n)``: the eigenvalues, then the eigenvectors (columns);
- ``linalg_slogdet``: ``(..., 2)``: sign and log|det|;
- ``linalg_lu``: ``(..., 2 m + 1, max(m, n))``: the packed LU factors (L below the unit
  diagonal, U on and above) in rows ``[0, m)``, the permutation matrix P (A = P L U) in rows
  ``[m, 2 m)``, and LAPACK's 1-based pivots in the last row.

Kind ``linalg``: the C backend refuses these ops by name (it has no LAPACK kernels yet);
eager, traced, AOT and interpreted graphs run them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln.core.prims.registry import OpDef, TensorMeta, register
from kiln.core.prims.shapes import fmt_shape, require_float, require_tensor
from kiln.errors import AutogradError, LinAlgError, ShapeError


def _matrix(op: str, a: Any, arg: str = "A", square: bool = False) -> TensorMeta:
    a = require_tensor(op, a, arg)
    require_float(op, a, arg)
    if a.ndim < 2:
        raise ShapeError(f"{op}: {arg} must have at least 2 dims (..., m, n), got shape "
                         f"{fmt_shape(a.shape)}")
    if square and a.shape[-1] != a.shape[-2]:
        raise ShapeError(f"{op}: {arg} must be batches of square matrices, got shape "
                         f"{fmt_shape(a.shape)}")
    return a


def _quiet(fn: Any) -> Any:
    """A kernel that turns NumPy's LinAlgError into Kiln's (named after the op)."""
    def eager(*xs: np.ndarray, **attrs: Any) -> np.ndarray:
        try:
            with np.errstate(all="ignore"):
                return fn(*xs, **attrs)
        except np.linalg.LinAlgError as e:
            raise LinAlgError(f"{fn.__name__.lstrip('_')}: {e} (the input is singular or not "
                              "positive definite)") from None

    eager.__name__ = fn.__name__
    return eager


def _ops() -> Any:
    from kiln.core import prims as ops

    return ops


def _t(x: Any) -> Any:
    return x.mT


def _mm(a: Any, b: Any) -> Any:
    return _ops().matmul(a, b)


def _eye_like(n: int, like: Any) -> Any:
    return _ops().eye(n=n, m=n, dtype=like.dtype)


def _tril(x: Any, diagonal: int = 0) -> Any:
    from kiln.core.mathops import tril

    return tril(x, diagonal)


def _diag_embed(v: Any) -> Any:
    """(..., n) -> (..., n, n) with ``v`` on the diagonal."""
    return v.unsqueeze(-1) * _eye_like(v.shape[-1], v)


def _diagonal(x: Any) -> Any:
    return (x * _eye_like(x.shape[-1], x)).sum(-1)


# inverse, determinant ----------------------------------------------------------------------
def _inv(a: np.ndarray) -> np.ndarray:
    return np.linalg.inv(a)


def _inv_vjp(c: Any, g: Any) -> tuple:
    x_t = _t(c.out)
    return (-_mm(_mm(x_t, g), x_t),)


register(OpDef("linalg_inv", lambda a: _matrix("linalg_inv", a, square=True), _quiet(_inv),
               _inv_vjp, "linalg", "linalg_inv(A): the inverse of each square matrix."))


def _det_meta(a: Any) -> TensorMeta:
    a = _matrix("linalg_det", a, square=True)
    return TensorMeta(a.shape[:-2], a.dtype)


def _det(a: np.ndarray) -> np.ndarray:
    return np.asarray(np.linalg.det(a), dtype=a.dtype)


def _det_vjp(c: Any, g: Any) -> tuple:
    ops = _ops()
    a = c.args[0]
    # d det = det * tr(A^-1 dA): gA = g det A^-T (for an invertible A; torch's too)
    inv_t = _t(ops.linalg_inv(a))
    scale = (g * c.out).unsqueeze(-1).unsqueeze(-1)
    return (scale * inv_t,)


register(OpDef("linalg_det", _det_meta, _quiet(_det), _det_vjp, "linalg",
               "linalg_det(A): the determinant of each square matrix."))


def _slogdet_meta(a: Any) -> TensorMeta:
    a = _matrix("linalg_slogdet", a, square=True)
    return TensorMeta(a.shape[:-2] + (2,), a.dtype)


def _slogdet(a: np.ndarray) -> np.ndarray:
    sign, logabs = np.linalg.slogdet(a)
    return np.stack([sign, logabs], axis=-1).astype(a.dtype)


def _slogdet_vjp(c: Any, g: Any) -> tuple:
    ops = _ops()
    g_log = g[..., 1:2]  # the sign has no gradient
    inv_t = _t(ops.linalg_inv(c.args[0]))
    return (g_log.unsqueeze(-1) * inv_t,)


register(OpDef("linalg_slogdet", _slogdet_meta, _quiet(_slogdet), _slogdet_vjp, "linalg",
               "linalg_slogdet(A): (..., 2): the sign and log|det| of each square matrix."))


# solves ------------------------------------------------------------------------------------
def _solve_meta(a: Any, b: Any, **attrs: Any) -> TensorMeta:
    a = _matrix("linalg_solve", a, square=True)
    b = _matrix("linalg_solve", b, "B")
    if a.dtype != b.dtype or a.shape[:-2] != b.shape[:-2] or a.shape[-1] != b.shape[-2]:
        raise ShapeError(f"linalg_solve primitive: A {fmt_shape(a.shape)} ({a.dtype}) and B "
                         f"{fmt_shape(b.shape)} ({b.dtype}) must share batch dims and dtype, "
                         "with B's rows = A's size (kiln.linalg.solve broadcasts)")
    return TensorMeta(b.shape, b.dtype)


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.solve(a, b)


def _solve_vjp(c: Any, g: Any) -> tuple:
    ops = _ops()
    a = c.args[0]
    gb = ops.linalg_solve(_t(a), g)
    ga = -_mm(gb, _t(c.out)) if c.needs_grad(0) else None
    return (ga, gb)


register(OpDef("linalg_solve", _solve_meta, _quiet(_solve), _solve_vjp, "linalg",
               "linalg_solve(A, B): X with A X = B (same batch dims)."))


def _triangle(a: np.ndarray, upper: bool, unitriangular: bool) -> np.ndarray:
    t = np.triu(a) if upper else np.tril(a)
    if unitriangular:
        n = a.shape[-1]
        t = t * (1 - np.eye(n, dtype=a.dtype)) + np.eye(n, dtype=a.dtype)
    return t


def _solve_triangular(a: np.ndarray, b: np.ndarray, *, upper: bool,
                      unitriangular: bool) -> np.ndarray:
    return np.linalg.solve(_triangle(a, upper, unitriangular), b)


def _solve_triangular_vjp(c: Any, g: Any) -> tuple:
    ops = _ops()
    a = c.args[0]
    upper, unit = c.attrs["upper"], c.attrs["unitriangular"]
    gb = ops.linalg_solve_triangular(_t(a), g, upper=not upper, unitriangular=unit)
    ga = None
    if c.needs_grad(0):
        full = -_mm(gb, _t(c.out))
        ga = _t(_tril(_t(full), -1 if unit else 0)) if upper else _tril(full, -1 if unit else 0)
    return (ga, gb)


register(OpDef("linalg_solve_triangular",
               lambda a, b, **at: _solve_meta(a, b), _quiet(_solve_triangular),
               _solve_triangular_vjp, "linalg",
               "linalg_solve_triangular(A, B, upper=, unitriangular=): X with T X = B, T the "
               "upper or lower triangle of A (unit diagonal with unitriangular).",
               attrs=("upper", "unitriangular")))


# Cholesky ----------------------------------------------------------------------------------
def _cholesky(a: np.ndarray) -> np.ndarray:
    return np.linalg.cholesky(a)


def _cholesky_vjp(c: Any, g: Any) -> tuple:
    ops = _ops()
    low = c.out
    n = low.shape[-1]
    # Murray (2016): with P = Phi(L^T gL) (lower triangle, half diagonal), the symmetric
    # gradient is sym(L^-T P L^-1)
    p = _tril(_mm(_t(low), g))
    p = p - 0.5 * _diag_embed(_diagonal(p))
    eye = _eye_like(n, low)
    linv = ops.linalg_solve_triangular(low, eye + 0.0 * low, upper=False, unitriangular=False)
    s = _mm(_mm(_t(linv), p), linv)
    return (0.5 * (s + _t(s)),)


register(OpDef("linalg_cholesky",
               lambda a: _matrix("linalg_cholesky", a, square=True), _quiet(_cholesky),
               _cholesky_vjp, "linalg",
               "linalg_cholesky(A): the lower Cholesky factor L (A = L L^T; reads A's lower "
               "triangle)."))


# eigh --------------------------------------------------------------------------------------
def _eigh_meta(a: Any) -> TensorMeta:
    a = _matrix("linalg_eigh", a, square=True)
    return TensorMeta(a.shape[:-2] + (a.shape[-1] + 1, a.shape[-1]), a.dtype)


def _eigh(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(a, UPLO="L")
    return np.concatenate([w[..., None, :], v], axis=-2).astype(a.dtype)


def _gap_inverse(w: Any, square: bool) -> Any:
    """F_ij = 1 / (w_j - w_i) off the diagonal, 0 on it (``square``: of w_j^2 - w_i^2)."""
    if square:
        w = w * w
    diff = w.unsqueeze(-2) - w.unsqueeze(-1)
    eye = _eye_like(w.shape[-1], w)
    return (1.0 - eye) / (diff + eye)


def _eigh_vjp(c: Any, g: Any) -> tuple:
    n = c.args[0].shape[-1]
    out = c.out
    w, v = out[..., 0, :], out[..., 1:n + 1, :]
    gw, gv = g[..., 0, :], g[..., 1:n + 1, :]
    vtgv = _mm(_t(v), gv)
    inner = _diag_embed(gw) + _gap_inverse(w, False) * 0.5 * (vtgv - _t(vtgv))
    s = _mm(_mm(v, inner), _t(v))
    return (0.5 * (s + _t(s)),)


register(OpDef("linalg_eigh", _eigh_meta, _quiet(_eigh), _eigh_vjp, "linalg",
               "linalg_eigh(A): (..., n + 1, n): the eigenvalues (ascending) of the symmetric "
               "matrix in A's lower triangle, then its eigenvectors as columns."))


# SVD ---------------------------------------------------------------------------------------
def _svd_meta(a: Any, *, full: bool) -> TensorMeta:
    a = _matrix("linalg_svd", a)
    m, n = a.shape[-2], a.shape[-1]
    width = max(m, n) if full else min(m, n)
    return TensorMeta(a.shape[:-2] + (m + 1 + n, width), a.dtype)


def _pad(x: np.ndarray, width: int) -> np.ndarray:
    extra = width - x.shape[-1]
    if extra == 0:
        return x
    return np.concatenate([x, np.zeros(x.shape[:-1] + (extra,), x.dtype)], axis=-1)


def _svd(a: np.ndarray, *, full: bool) -> np.ndarray:
    m, n = a.shape[-2], a.shape[-1]
    width = max(m, n) if full else min(m, n)
    if a.size == 0:  # as torch: identity singular vectors, no values
        batch = a.shape[:-2]
        u = np.broadcast_to(np.eye(m, dtype=a.dtype), batch + (m, m))
        v = np.broadcast_to(np.eye(n, dtype=a.dtype), batch + (n, n))
        s = np.zeros(batch + (min(m, n),), a.dtype)
        if not full:
            u, v = u[..., :width], v[..., :width]
        return np.concatenate([_pad(u, width), _pad(s[..., None, :], width), _pad(v, width)],
                              axis=-2)
    u, s, vh = np.linalg.svd(a, full_matrices=full)
    parts = [_pad(u, width), _pad(s[..., None, :], width), _pad(np.swapaxes(vh, -1, -2), width)]
    return np.concatenate(parts, axis=-2).astype(a.dtype)


def svd_parts(packed: Any, m: int, n: int, k: int) -> tuple[Any, Any, Any]:
    """U (..., m, k), S (..., k), V (..., n, k) of a packed ``linalg_svd`` result (the first
    ``k`` columns of each part)."""
    cols = packed[..., :k]
    return cols[..., :m, :], cols[..., m, :], cols[..., m + 1:m + 1 + n, :]


def _svd_vjp(c: Any, g: Any) -> tuple:
    a = c.args[0]
    m, n = a.shape[-2], a.shape[-1]
    k = min(m, n)
    # torch's svd_backward (real case); with full matrices only the first k columns count,
    # as in torch
    u, s, v = svd_parts(c.out, m, n, k)
    gu, gs, gv = svd_parts(g, m, n, k)
    utgu = _mm(_t(u), gu)
    vtgv = _mm(_t(v), gv)
    gap = _gap_inverse(s, True)
    s_mat = _diag_embed(s)
    inner = _mm(gap * (utgu - _t(utgu)), s_mat) + _mm(s_mat, gap * (vtgv - _t(vtgv))) \
        + _diag_embed(gs)
    ga = _mm(_mm(u, inner), _t(v))
    s_inv = _diag_embed(1.0 / s)
    if m > k:
        proj = _eye_like(m, u) - _mm(u, _t(u))
        ga = ga + _mm(_mm(_mm(proj, gu), s_inv), _t(v))
    if n > k:
        proj = _eye_like(n, v) - _mm(v, _t(v))
        ga = ga + _mm(_mm(u, s_inv), _mm(_t(gv), proj))
    return (ga,)


register(OpDef("linalg_svd", _svd_meta, _quiet(_svd), _svd_vjp, "linalg",
               "linalg_svd(A, full=): U, S and V packed in one tensor (see "
               "kiln.core.prims.linalg_prims).", attrs=("full",)))


# QR ----------------------------------------------------------------------------------------
def _qr_meta(a: Any, *, full: bool) -> TensorMeta:
    a = _matrix("linalg_qr", a)
    m, n = a.shape[-2], a.shape[-1]
    width = m if full else min(m, n)
    return TensorMeta(a.shape[:-2] + (m + n, width), a.dtype)


def _qr(a: np.ndarray, *, full: bool) -> np.ndarray:
    m, n = a.shape[-2], a.shape[-1]
    width = m if full else min(m, n)
    if a.size == 0:
        q = np.broadcast_to(np.eye(m, width, dtype=a.dtype), a.shape[:-2] + (m, width))
        return np.concatenate([q, np.zeros(a.shape[:-2] + (n, width), a.dtype)], axis=-2)
    q, r = np.linalg.qr(a, mode="complete" if full else "reduced")
    return np.concatenate([q, np.swapaxes(r, -1, -2)], axis=-2).astype(a.dtype)


def _copyltu(x: Any) -> Any:
    """The lower triangle mirrored above the diagonal."""
    low = _tril(x, -1)
    return low + _t(low) + _diag_embed(_diagonal(x))


def _qr_square_grad(q: Any, r: Any, gq: Any, gr: Any) -> Any:
    """gA for A = Q R with R square upper triangular (m >= n)."""
    ops = _ops()
    mmat = _mm(r, _t(gr)) - _mm(_t(gq), q)
    b = gq + _mm(q, _copyltu(mmat))
    # b R^-T: solve R X^T = b^T
    x_t = ops.linalg_solve_triangular(r, _t(b), upper=True, unitriangular=False)
    return _t(x_t)


def _qr_vjp(c: Any, g: Any) -> tuple:
    ops = _ops()
    a = c.args[0]
    m, n = a.shape[-2], a.shape[-1]
    if c.attrs["full"] and m > n:
        raise AutogradError("linalg.qr: the QR decomposition is not differentiable with "
                            "mode='complete' and more rows than columns (as in torch); use "
                            "mode='reduced'")
    k = min(m, n)
    q, r = c.out[..., :m, :k], _t(c.out[..., m:m + n, :k])
    gq, gr = g[..., :m, :k], _t(g[..., m:m + n, :k])
    if m >= n:
        return (_qr_square_grad(q, r, gq, gr),)
    # wide: A = [X | Y], R = [U | V], Y = Q V
    u = r[..., :m]
    gu, gv = gr[..., :m], gr[..., m:]
    y = a[..., m:]
    gx = _qr_square_grad(q, u, gq + _mm(y, _t(gv)), gu)
    gy = _mm(q, gv)
    return (ops.cat(gx, gy, dim=-1),)


register(OpDef("linalg_qr", _qr_meta, _quiet(_qr), _qr_vjp, "linalg",
               "linalg_qr(A, full=): Q and R^T packed in one tensor (see "
               "kiln.core.prims.linalg_prims).", attrs=("full",)))


# LU ----------------------------------------------------------------------------------------
def _lu_meta(a: Any) -> TensorMeta:
    a = _matrix("linalg_lu", a)
    m, n = a.shape[-2], a.shape[-1]
    return TensorMeta(a.shape[:-2] + (2 * m + 1, max(m, n)), a.dtype)


def _lu(a: np.ndarray) -> np.ndarray:
    """LAPACK's getrf with partial pivoting, row by row over the batch: A = P L U."""
    m, n = a.shape[-2], a.shape[-1]
    k, width = min(m, n), max(m, n)
    batch = a.shape[:-2]
    lu = np.array(a, dtype=np.float64 if a.dtype == np.float64 else np.float32, copy=True)
    lu = lu.reshape((-1, m, n))
    rows = np.arange(lu.shape[0])
    perm = np.tile(np.arange(m), (lu.shape[0], 1))
    pivots = np.zeros((lu.shape[0], k), dtype=np.int64)
    for j in range(k):
        p = j + np.argmax(np.abs(lu[:, j:, j]), axis=1)
        pivots[:, j] = p + 1  # LAPACK's 1-based pivots
        swap = p != j
        if swap.any():
            lu[rows[swap], j], lu[rows[swap], p[swap]] = \
                lu[rows[swap], p[swap]].copy(), lu[rows[swap], j].copy()
            perm[rows[swap], j], perm[rows[swap], p[swap]] = \
                perm[rows[swap], p[swap]].copy(), perm[rows[swap], j].copy()
        pivot = lu[:, j, j]
        safe = np.where(pivot == 0, 1.0, pivot)
        lu[:, j + 1:, j] = np.where(pivot[:, None] == 0, 0.0, lu[:, j + 1:, j] / safe[:, None])
        lu[:, j + 1:, j + 1:] -= lu[:, j + 1:, j:j + 1] * lu[:, j:j + 1, j + 1:]
    # P with A = P L U: row i of P U L is row perm[i] of A, so P[perm[i], i] = 1
    p_mat = np.zeros((lu.shape[0], m, m), lu.dtype)
    p_mat[rows[:, None], perm, np.arange(m)[None, :]] = 1.0
    out = np.zeros((lu.shape[0], 2 * m + 1, width), lu.dtype)
    out[:, :m, :n] = lu
    out[:, m:2 * m, :m] = p_mat
    out[:, 2 * m, :k] = pivots
    return out.reshape(batch + (2 * m + 1, width)).astype(a.dtype)


def lu_parts(packed: Any, m: int, n: int) -> tuple[Any, Any, Any]:
    """LU (..., m, n), P (..., m, m) and the pivots (..., k, float) of a packed
    ``linalg_lu`` result."""
    k = min(m, n)
    return packed[..., :m, :n], packed[..., m:2 * m, :m], packed[..., 2 * m, :k]


def _lu_square_grad(low: Any, up: Any, gl: Any, gu: Any) -> Any:
    """gB for B = L U (L unit lower, U upper, both k x k): L^-T [tril(L^T gL, -1) +
    triu(gU U^T)] U^-T (torch's linalg_lu_backward)."""
    ops = _ops()
    phi = _tril(_mm(_t(low), gl), -1) + _t(_tril(_t(_mm(gu, _t(up)))))
    x = ops.linalg_solve_triangular(_t(low), phi, upper=True, unitriangular=True)
    # x U^-T: solve U X^T = x^T
    return _t(ops.linalg_solve_triangular(up, _t(x), upper=True, unitriangular=False))


def _lu_vjp(c: Any, g: Any) -> tuple:
    ops = _ops()
    a = c.args[0]
    m, n = a.shape[-2], a.shape[-1]
    k = min(m, n)
    lu, p, _ = lu_parts(c.out, m, n)
    glu = g[..., :m, :n]
    low_full = _tril(lu, -1)[..., :, :k] + _eye_rect(m, k, lu)
    up_full = _t(_tril(_t(lu)))[..., :k, :]
    gl_full = _tril(glu, -1)[..., :, :k]
    gu_full = _t(_tril(_t(glu)))[..., :k, :]
    if m == n:
        gb = _lu_square_grad(low_full, up_full, gl_full, gu_full)
    elif m < n:  # wide: A = P L [U1 | U2]
        u1, u2 = up_full[..., :, :m], up_full[..., :, m:]
        gu1, gu2 = gu_full[..., :, :m], gu_full[..., :, m:]
        # U2 = L^-1 P^T A2: its gradient reaches A2 and L
        g_a2 = ops.linalg_solve_triangular(_t(low_full), gu2, upper=True, unitriangular=True)
        gl_total = gl_full - _tril(_mm(g_a2, _t(u2)), -1)
        gb = ops.cat(_lu_square_grad(low_full, u1, gl_total, gu1), g_a2, dim=-1)
    else:  # tall: P^T A = [L1; L2] U
        l1, l2 = low_full[..., :n, :], low_full[..., n:, :]
        gl1, gl2 = gl_full[..., :n, :], gl_full[..., n:, :]
        # L2 = B2 U^-1: its gradient reaches B2 and U
        g_b2 = _t(ops.linalg_solve_triangular(up_full, _t(gl2), upper=True,
                                              unitriangular=False))
        gu_total = gu_full - _t(_tril(_t(_mm(_t(l2), g_b2))))
        gb = ops.cat(_lu_square_grad(l1, up_full, gl1, gu_total), g_b2, dim=-2)
    return (_mm(p, gb),)


def _eye_rect(m: int, k: int, like: Any) -> Any:
    return _ops().eye(n=m, m=k, dtype=like.dtype)


register(OpDef("linalg_lu", _lu_meta, _quiet(_lu), _lu_vjp, "linalg",
               "linalg_lu(A): LU with partial pivoting (A = P L U): LU, P and the pivots "
               "packed in one tensor (see kiln.core.prims.linalg_prims)."))


# Householder QR (LAPACK's geqrf) ----------------------------------------------------------
def _geqrf_meta(a: Any) -> TensorMeta:
    a = _matrix("linalg_geqrf", a)
    return TensorMeta(a.shape[:-2] + (a.shape[-2] + 1, a.shape[-1]), a.dtype)


def _geqrf(a: np.ndarray) -> np.ndarray:
    m, n = a.shape[-2], a.shape[-1]
    k = min(m, n)
    out = np.zeros(a.shape[:-2] + (m + 1, n), a.dtype)
    if a.size:
        h, tau = np.linalg.qr(a, mode="raw")
        out[..., :m, :] = np.swapaxes(h, -1, -2)
        out[..., m, :k] = tau
    return out


register(OpDef("linalg_geqrf", _geqrf_meta, _quiet(_geqrf), None, "linalg",
               "linalg_geqrf(A): LAPACK's geqrf: R and the Householder vectors in rows [0, m), "
               "the scales tau in the last row (not differentiable, as in torch).",
               differentiable=False))

LINALG_PRIMITIVES = ("linalg_inv", "linalg_det", "linalg_slogdet", "linalg_solve",
                     "linalg_solve_triangular", "linalg_cholesky", "linalg_eigh", "linalg_svd",
                     "linalg_qr", "linalg_lu", "linalg_geqrf")
