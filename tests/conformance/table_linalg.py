"""Conformance entries of kiln.linalg's decompositions and solves and torch's top-level
linear-algebra names (kiln.core.linalg_decomp). The C backend refuses the decompositions by
name (no LAPACK kernels yet), so their forms run eager, traced, with AOT autograd and the
gradient check; composites of matrix products only (multi_dot, vecdot, vander,
matrix_power) run in every mode.

Singular vectors and eigenvectors are unique only up to sign, which LAPACK builds choose
differently: ``svd``, ``eigh`` and ``qr`` are compared in full here on diagonal inputs
(``domain="diag"``, where every build agrees), through their values (``svdvals``,
``eigvalsh``) on random ones, and in full, sign-free, in tests/opinfo_linalg.py. Cholesky and
eigh read a symmetric matrix's lower triangle and give torch's symmetric gradient, which
finite differences of one element do not see: their forms skip the gradient check here
(tests/opinfo_linalg.py checks it on symmetrized inputs)."""

from __future__ import annotations

from harness import entry, f, t

NO_C = ("eager", "trace", "aot", "grad")


def sq(*shape: int, domain: str = "wellcond") -> object:
    return t(*shape, domain=domain)


def fn(*args: object, **kwargs: object) -> object:
    """A form without the C backend (the decompositions have no C kernel)."""
    return f(*args, _modes=NO_C, **kwargs)


def fv(*args: object, **kwargs: object) -> object:
    """A form whose singular vectors LAPACK may flip under a finite-difference step: no C,
    no gradient check (tests/opinfo_linalg.py checks it, sign-free)."""
    return f(*args, _modes=("eager", "trace", "aot"), _grad=False, **kwargs)


def _lu(n: int) -> tuple:
    """An LU factorization's arguments: a packed LU (far from singular) and valid pivots."""
    return sq(n, n), t(n, dtype="int32", domain="pivots")


def fs(*args: object, **kwargs: object) -> object:
    """A form on a symmetric positive-definite input: no C, no one-element gradient check."""
    return f(*args, _modes=("eager", "trace", "aot"), _grad=False, **kwargs)


ENTRIES = [
    entry("linalg.inv", fn(sq(3, 3)), fn(sq(2, 4, 4)), fn(sq(0, 3, 3))),
    entry("inverse", fn(sq(3, 3))),
    entry("Tensor.inverse", fn(sq(2, 2, 2))),
    entry("linalg.det", fn(sq(3, 3)), fn(sq(2, 4, 4)), fn(sq(1, 1))),
    entry("det", fn(sq(2, 3, 3))),
    entry("Tensor.det", fn(sq(3, 3))),
    entry("linalg.slogdet", fn(sq(3, 3)), fn(sq(2, 2, 2))),
    entry("slogdet", fn(sq(3, 3))),
    entry("logdet", fn(sq(3, 3))),
    entry("linalg.solve", fn(sq(3, 3), t(3)), fn(sq(3, 3), t(3, 2)), fn(sq(2, 3, 3), t(3, 4)),
          fn(sq(3, 3), t(2, 3, 1)), fn(sq(3, 3), t(2, 3), left=False)),
    entry("linalg.solve_triangular", fn(sq(3, 3), t(3, 2), upper=True),
          fn(sq(3, 3), t(3, 2), upper=False), fn(sq(2, 3, 3), t(2, 3), upper=True, left=False),
          fn(sq(3, 3), t(3, 1), upper=False, unitriangular=True)),
    entry("triangular_solve", fn(t(3, 2), sq(3, 3)), fn(t(3, 2), sq(3, 3), upper=False),
          fn(t(3, 2), sq(3, 3), transpose=True)),
    entry("linalg.cholesky", fs(sq(3, 3, domain="spd")), fs(sq(2, 4, 4, domain="spd")),
          fs(sq(3, 3, domain="spd"), upper=True)),
    entry("cholesky_solve", fn(t(3, 2), sq(3, 3, domain="spd"))),
    entry("cholesky_inverse", fn(sq(3, 3, domain="spd"))),
    entry("linalg.eigvalsh", fs(sq(3, 3, domain="spd")), fs(sq(2, 4, 4, domain="spd"))),
    entry("linalg.svdvals", fn(t(3, 3)), fn(t(4, 2)), fn(t(2, 3, 5))),
    entry("linalg.matrix_norm", fn(t(3, 4), ord=2), fn(t(3, 4), ord="nuc"),
          fn(t(2, 3, 3), ord=-2)),
    entry("linalg.pinv", fn(t(3, 4)), fn(t(2, 4, 3))),
    entry("pinverse", fn(t(3, 2))),
    entry("linalg.matrix_rank", f(t(3, 4), _modes=("eager",), _grad=False)),
    entry("linalg.cond", fn(sq(3, 3)), fn(sq(3, 3), p="fro"), fn(sq(3, 3), p=1)),
    entry("linalg.lstsq", f(t(4, 3), t(4, 2), _modes=("eager",), _grad=False)),
    entry("linalg.matrix_power", f(t(3, 3), 3), f(t(2, 3, 3), 0), fn(sq(3, 3), -2)),
    entry("matrix_power", f(t(2, 2), 2)),
    entry("linalg.multi_dot", f([t(2, 3), t(3, 4), t(4, 2)]), f([t(3), t(3, 4), t(4)])),
    entry("linalg.vecdot", f(t(3), t(3)), f(t(2, 3), t(3))),
    entry("linalg.vander", f(t(3)), f(t(3), N=4)),
    entry("linalg.tensorinv", fn(t(4, 2, 2), ind=1)),
    entry("linalg.tensorsolve", fn(t(2, 2, 4), t(2, 2))),
    entry("linalg.svd", fv(t(3, 3, domain="diag")), fv(t(4, 3, domain="diag"), False),
          fv(t(3, 4, domain="diag"))),
    entry("svd", fv(t(3, 3, domain="diag")), fv(t(4, 2, domain="diag"), some=False)),
    entry("linalg.eigh", fs(t(3, 3, domain="diag")), fs(t(3, 3, domain="diag"), UPLO="U")),
    entry("cholesky", fs(sq(3, 3, domain="spd")), fs(sq(3, 3, domain="spd"), True)),
    entry("linalg.cholesky_ex", fs(sq(3, 3, domain="spd"))),
    entry("linalg.inv_ex", fn(sq(3, 3))),
    entry("linalg.solve_ex", fn(sq(3, 3), t(3))),
    entry("qr", fn(t(3, 3, domain="diag")), f(t(4, 2, domain="diag"), False,
                                               _modes=("eager", "trace", "aot"), _grad=False)),
    entry("linalg.lu_factor", fn(t(3, 3)), fn(t(2, 3, 5)), fn(t(5, 3))),
    entry("linalg.lu_factor_ex", fn(t(3, 3))),
    entry("linalg.lu", fn(t(3, 3)), fn(t(2, 4, 2))),
    entry("lu", fn(t(3, 3))),
    entry("linalg.lu_solve", f(*_lu(3), t(3, 2), _modes=NO_C),
          f(*_lu(3), t(2, 3), left=False, _modes=NO_C),
          f(*_lu(3), t(3, 1), adjoint=True, _modes=NO_C)),
    entry("lu_solve", f(t(3, 2), *_lu(3), _modes=NO_C)),
    entry("lu_unpack", f(*_lu(3), _modes=NO_C), f(*_lu(3), unpack_pivots=False, _modes=NO_C)),
    entry("geqrf", f(t(3, 3), _modes=("eager", "trace", "aot"), _grad=False),
          f(t(2, 4, 3), _modes=("eager", "trace", "aot"), _grad=False), grad=False),
    entry("linalg.householder_product", f(t(4, 3), t(2)), f(t(2, 3, 3), t(2, 3))),
    entry("orgqr", f(t(4, 2), t(2))),
    entry("ormqr", f(t(4, 3), t(3), t(4, 2)), f(t(4, 3), t(3), t(4, 2), transpose=True),
          f(t(4, 3), t(3), t(2, 4), left=False),
          f(t(2, 4, 3), t(2, 3), t(2, 2, 4), left=False, transpose=True)),
    entry("linalg.qr", fn(t(3, 3)), fn(t(4, 2)),
          f(t(3, 3), mode="r", _modes=("eager", "trace", "aot"))),
]
