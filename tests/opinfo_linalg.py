"""Op-table entries of the linear-algebra primitives (kiln.core.prims.linalg_prims), through
their public functions: NumPy references, torch oracles, gradients by finite differences.

Singular vectors and eigenvectors are unique only up to sign (and LAPACK builds choose
differently), so the entries of svd, eigh and qr compare what does not depend on that
choice: the reconstruction, the values, and the projections U U^T, V V^T. Cholesky and eigh
read the lower triangle of a matrix meant to be symmetric, and their gradient is torch's
symmetric one: their entries symmetrize the input first, so finite differences (one element
at a time) see the function the gradient is for.

The C backend has no kernels for these ops and refuses them by name (tests/c); the C
op-table tests skip entries whose primitives are of kind ``linalg``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from opinfo_base import FLOAT_DTYPES, OpInfo, Sample
from opinfo_prims import add

import kiln

SQUARE = ((3, 3), (2, 4, 4), (1, 1))
RECT = ((3, 3), (4, 2), (2, 3, 5), (2, 5, 3), (1, 4))


def _well_conditioned(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    n = shape[-1]
    return rng.uniform(-1.0, 1.0, shape) + 2.0 * n * np.eye(n)


def _spd(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    a = rng.uniform(-1.0, 1.0, shape)
    return a @ np.swapaxes(a, -1, -2) + shape[-1] * np.eye(shape[-1])


def _samples(make: Callable, shapes: tuple, extra: Callable | None = None
             ) -> Callable[[str, np.random.Generator], Iterator[Sample]]:
    """One sample per shape, then a transposed view (non-contiguous) and an empty batch of
    matrices (size 0)."""
    def gen(dtype: str, rng: np.random.Generator) -> Iterator[Sample]:
        for shape in shapes:
            a = make(rng, shape).astype(dtype)
            b = () if extra is None else (extra(rng, shape).astype(dtype),)
            yield Sample((a, *b))
        shape = shapes[0]
        view = np.swapaxes(make(rng, shape[:-2] + shape[-2:][::-1]).astype(dtype), -1, -2)
        b = () if extra is None else (extra(rng, shape).astype(dtype),)
        yield Sample((view, *b), desc="transposed view")
        empty = (0,) + shape
        b = () if extra is None else (np.zeros((0,) + shape[:-1] + (2,), dtype),)
        yield Sample((np.zeros(empty, dtype), *b), desc="empty batch")

    return gen


def _random(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, shape)


def _rhs(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, shape[:-1] + (2,))


def _gauge_free_svd(U, S, Vh, matmul, outer):  # noqa: ANN001, ANN202
    """What an SVD determines: A itself, S, and the projections onto the singular spaces."""
    return (matmul(U * S[..., None, :], Vh), S, matmul(U, outer(U)), matmul(outer(Vh), Vh))


def _svd_kiln(a):  # noqa: ANN001, ANN202
    U, S, Vh = kiln.linalg.svd(a, full_matrices=False)
    return _gauge_free_svd(U, S, Vh, kiln.matmul, lambda x: x.mT)


def _svd_np(a):  # noqa: ANN001, ANN202
    U, S, Vh = np.linalg.svd(a, full_matrices=False)
    return _gauge_free_svd(U, S, Vh, np.matmul, lambda x: np.swapaxes(x, -1, -2))


def _svd_torch(a):  # noqa: ANN001, ANN202
    import torch

    U, S, Vh = torch.linalg.svd(a, full_matrices=False)
    return _gauge_free_svd(U, S, Vh, torch.matmul, lambda x: x.mT)


def _sym(a):  # noqa: ANN001, ANN202
    return (a + np.swapaxes(a, -1, -2)) / 2 if isinstance(a, np.ndarray) else (a + a.mT) / 2


def _eigh_kiln(a):  # noqa: ANN001, ANN202
    w, v = kiln.linalg.eigh(_sym(a))
    return w, kiln.matmul(v * w.unsqueeze(-2), v.mT)


def _eigh_np(a):  # noqa: ANN001, ANN202
    w, v = np.linalg.eigh(_sym(a))
    return w, np.matmul(v * w[..., None, :], np.swapaxes(v, -1, -2))


def _eigh_torch(a):  # noqa: ANN001, ANN202
    import torch

    w, v = torch.linalg.eigh(_sym(a))
    return w, torch.matmul(v * w.unsqueeze(-2), v.mT)


def _qr_kiln(a):  # noqa: ANN001, ANN202
    q, r = kiln.linalg.qr(a)
    return kiln.matmul(q, r), kiln.matmul(q, q.mT), r.abs()


def _qr_np(a):  # noqa: ANN001, ANN202
    q, r = np.linalg.qr(a)
    return np.matmul(q, r), np.matmul(q, np.swapaxes(q, -1, -2)), np.abs(r)


def _qr_torch(a):  # noqa: ANN001, ANN202
    import torch

    q, r = torch.linalg.qr(a)
    return torch.matmul(q, r), torch.matmul(q, q.mT), r.abs()


def _slogdet_np(a):  # noqa: ANN001, ANN202
    return tuple(np.linalg.slogdet(a))


def _tri_solve_np(a, b):  # noqa: ANN001, ANN202
    return np.linalg.solve(np.triu(a), b)


TOL = {"float32": (1e-4, 1e-4), "float64": (1e-9, 1e-9)}

add(OpInfo("linalg.inv", kiln.linalg.inv, np.linalg.inv, _samples(_well_conditioned, SQUARE),
           "torch.linalg.inv", FLOAT_DTYPES, primitives=("linalg_inv",), tol=TOL))
add(OpInfo("linalg.det", kiln.linalg.det, np.linalg.det, _samples(_well_conditioned, SQUARE),
           "torch.linalg.det", FLOAT_DTYPES, primitives=("linalg_det",), tol=TOL))
add(OpInfo("linalg.slogdet", kiln.linalg.slogdet, _slogdet_np,
           _samples(_well_conditioned, SQUARE), "torch.linalg.slogdet", FLOAT_DTYPES,
           primitives=("linalg_slogdet",), tol=TOL))
add(OpInfo("linalg.solve", kiln.linalg.solve, np.linalg.solve,
           _samples(_well_conditioned, SQUARE, _rhs), "torch.linalg.solve", FLOAT_DTYPES,
           primitives=("linalg_solve",), tol=TOL))
add(OpInfo("linalg.solve_triangular",
           lambda a, b: kiln.linalg.solve_triangular(a, b, upper=True), _tri_solve_np,
           _samples(_well_conditioned, SQUARE, _rhs),
           lambda a, b: __import__("torch").linalg.solve_triangular(a, b, upper=True),
           FLOAT_DTYPES, primitives=("linalg_solve_triangular",), tol=TOL))
add(OpInfo("linalg.cholesky", lambda a: kiln.linalg.cholesky(_sym(a)),
           lambda a: np.linalg.cholesky(_sym(a)), _samples(_spd, SQUARE),
           lambda a: __import__("torch").linalg.cholesky(_sym(a)), FLOAT_DTYPES,
           primitives=("linalg_cholesky",), tol=TOL))
add(OpInfo("linalg.eigh", _eigh_kiln, _eigh_np, _samples(_spd, SQUARE), _eigh_torch,
           FLOAT_DTYPES, primitives=("linalg_eigh",), tol=TOL, torch_tol=TOL))
add(OpInfo("linalg.svd", _svd_kiln, _svd_np, _samples(_random, RECT), _svd_torch,
           FLOAT_DTYPES, primitives=("linalg_svd",), tol=TOL))
add(OpInfo("linalg.qr", _qr_kiln, _qr_np, _samples(_random, RECT),
           _qr_torch, FLOAT_DTYPES, primitives=("linalg_qr",), tol=TOL))


def _lu_kiln(a):  # noqa: ANN001, ANN202
    lu, piv = kiln.linalg.lu_factor(a)
    return lu, piv


def _lu_np(a):  # noqa: ANN001, ANN202
    from kiln.core.prims.registry import REGISTRY

    m, n = a.shape[-2], a.shape[-1]
    packed = REGISTRY["linalg_lu"].eager(a)
    return packed[..., :m, :n], packed[..., 2 * m, :min(m, n)].astype(np.int32)


add(OpInfo("linalg.lu_factor", _lu_kiln, _lu_np, _samples(_random, RECT),
           "torch.linalg.lu_factor", FLOAT_DTYPES, primitives=("linalg_lu",), tol=TOL))


def _geqrf_np(a):  # noqa: ANN001, ANN202
    m, n = a.shape[-2], a.shape[-1]
    if a.size == 0:
        return np.zeros(a.shape, a.dtype), np.zeros(a.shape[:-2] + (min(m, n),), a.dtype)
    h, tau = np.linalg.qr(a, mode="raw")
    return np.swapaxes(h, -1, -2), tau


add(OpInfo("geqrf", lambda a: tuple(kiln.geqrf(a)), _geqrf_np, _samples(_random, RECT),
           "torch.geqrf", FLOAT_DTYPES, supports_grad=False, primitives=("linalg_geqrf",),
           tol=TOL))
